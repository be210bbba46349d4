"""History for a fleet, fast: sample days of readings at once and store them in bulk.

The bulk path stores exactly the rows ingest would store for the same observations (same
readings table, same dedupe key, latest values and last-seen updated), without the MQTT round
trip: a month of a fleet's history takes seconds, not a month. Models clip to the catalogue
ranges, so every sampled value is valid as it stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ingest.rows import Rows
from ingest.write import Writer
from simulators.fleet import DeviceSpec, SimulatedDevice
from simulators.scenarios import Scenario
from smartcity.catalog import METRICS
from smartcity.db.connect import connect
from smartcity.db.queries import devices as device_sql
from smartcity.db.queries import readings as readings_sql

__all__ = ["BackfillResult", "backfill", "parse_duration"]

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CHUNK_S = 86400.0  # one day per device at a time keeps memory flat for any fleet size


def parse_duration(text: str) -> float:
    """Parse ``30d``, ``12h``, ``90m``, ``2w`` or plain seconds into seconds.

    Raises:
        ValueError: the text is not a positive duration.
    """
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 3600") from None
    if not seconds > 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill stored."""

    devices: int
    readings: int
    stored: int
    seconds: float


def backfill(url: str, specs: Sequence[DeviceSpec], seed: int, span_s: float, interval_s: float,
             *, scenario: Scenario | None = None, end: float | None = None,
             progress: bool = True) -> BackfillResult:
    """Store ``span_s`` seconds of readings every ``interval_s`` for ``specs``, ending at ``end``.

    Devices must be registered. Times sit on a grid aligned to ``interval_s``, so running the same
    backfill twice stores nothing new (the readings key dedupes). The readings are analysed at the
    end, so the refresher that rolls them up plans with their real size. A scenario's episodes are timed
    from the first backfilled time, so a haze or flood falls inside the history.

    Raises:
        ValueError: a device is not registered.
    """
    end = time.time() if end is None else end
    start = end - span_s
    first = np.ceil(start / interval_s) * interval_s
    ids = _device_keys(url, [spec.device_id for spec in specs])
    writer = Writer(url)  # the rows are built here, not routed: no time window applies
    started, total, stored = time.monotonic(), 0, 0
    chunks = max(1, int(np.ceil((end - first) / _CHUNK_S)))
    try:
        with tqdm(total=len(specs) * chunks, unit="device-day", disable=not progress,
                  desc="backfill") as bar:
            for spec in specs:
                device = SimulatedDevice.create(spec, seed, scenario, anchor=float(first))
                key = ids[spec.device_id]
                for chunk_start in np.arange(first, end, _CHUNK_S):
                    times = np.arange(chunk_start, min(chunk_start + _CHUNK_S, end), interval_s)
                    rows = _rows(key, times, device.sample(times))
                    stored += writer.write_rows(rows).readings_stored
                    total += len(rows.readings)
                    bar.update()
    finally:
        writer.close()
    if stored:
        with connect(url, purpose="backfill", autocommit=True) as conn:
            conn.execute(readings_sql.ANALYZE_READINGS)
    result = BackfillResult(len(specs), total, stored, time.monotonic() - started)
    log.info("backfill stored %d of %d readings for %d devices in %.1f s", stored, total,
             len(specs), result.seconds)
    return result


def _rows(device: int, times: np.ndarray, samples: dict[str, np.ndarray]) -> Rows:
    rows = Rows()
    for name, values in samples.items():
        metric = METRICS[name].id
        rows.readings.extend(zip(times.tolist(), [device] * len(times), [metric] * len(times),
                                 values.tolist(), strict=True))
    if len(times):
        rows.last_seen[device] = float(times[-1])
    return rows


def _device_keys(url: str, device_ids: list[str]) -> dict[str, int]:
    with connect(url, purpose="backfill") as conn:
        found: dict[str, int] = dict(conn.execute(device_sql.SELECT_DEVICE_KEYS, (device_ids,)).fetchall())
    missing = sorted(set(device_ids) - set(found))
    if missing:
        raise ValueError(f"{len(missing)} devices are not registered, e.g. {missing[:3]}; "
                         "register them first (smartcity simulate --register)")
    return found
