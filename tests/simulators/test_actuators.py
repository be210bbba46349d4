"""A simulated street light obeys commands in its model: on, off and dim override the photocell from
the moment they arrive (before it, the photocell's values bit for bit), a schedule switches at its
local times; a bad payload is refused with a reason, never an exception. That a light never
commanded samples as before is the unchanged tests of tests/simulators/test_models.py."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simulators.actuators import CommandLog, control_of, obey, parse_command
from simulators.fleet import device_rng
from simulators.models import ModelState
from simulators.models import street_light as light
from simulators.models.control import LampControl
from smartcity.contract import Command

# 2026-11-30 00:00 WITA (UTC+8): the lamp is on by its photocell at night, off by day.
MIDNIGHT_WITA = datetime(2026, 11, 29, 16, 0, tzinfo=UTC).timestamp()
NOON = MIDNIGHT_WITA + 12 * 3600
ISSUED = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # noon WITA


def _command(**fields: object) -> Command:
    return Command.model_validate({"command_id": "cmd-test-0001", "issued_at": ISSUED, **fields})


def _run(times: np.ndarray, control_at: float | None = None,
         command: Command | None = None) -> dict[str, np.ndarray]:
    """Sample one light at ``times``, obeying ``command`` from ``control_at`` on (between calls)."""
    rng, state = device_rng(7, "light-test-01"), ModelState()
    if command is None or control_at is None:
        return light.sample(rng, times, state)
    before = times[times < control_at]
    after = times[times >= control_at]
    first = light.sample(rng, before, state)
    obey(state, command, "tanah-grogot", control_at)
    second = light.sample(rng, after, state)
    return {name: np.concatenate([first[name], second[name]]) for name in first}


@pytest.mark.parametrize(("fields", "on", "fraction"), [
    ({"action": "on"}, 1.0, 1.0),
    ({"action": "off"}, 0.0, 0.0),
    ({"action": "dim", "level": 40}, 1.0, 0.4),
    ({"action": "dim", "level": 0}, 0.0, 0.0),
])
def test_on_off_and_dim_override_the_photocell_from_the_moment_they_arrive(
        fields: dict[str, object], on: float, fraction: float) -> None:
    times = NOON + np.arange(-3600.0, 86_400.0, 600.0)  # from 11:00 to 11:00 next day, WITA
    plain = _run(times)
    obeyed = _run(times, NOON, _command(**fields))
    before = times < NOON
    # Before the command, the photocell's values, bit for bit.
    for name in ("lamp_on", "lamp_power"):
        np.testing.assert_array_equal(obeyed[name][before], plain[name][before])
    # From it on, day and night alike: the commanded state, at the commanded share of rated power.
    assert set(obeyed["lamp_on"][~before]) == {on}
    rated = plain["lamp_power"][plain["lamp_on"] == 1.0]
    assert rated.size and np.all(rated > 59)  # a working lamp of 60–120 W this night
    np.testing.assert_allclose(obeyed["lamp_power"][~before],
                               fraction * np.median(rated), rtol=0.08, atol=1e-9)
    # The meter runs on what it draws: a day at 40 % uses 40 % of a day at full power.
    used = obeyed["energy"][-1] - obeyed["energy"][before][-1]
    expected_kwh = fraction * np.median(rated) * 24 / 1000
    assert used == pytest.approx(expected_kwh, rel=0.05, abs=1e-9)
    assert np.all(np.diff(obeyed["energy"]) >= 0)


def test_a_schedule_switches_at_its_local_times_every_day() -> None:
    command = _command(action="schedule", schedule=[
        {"at": "19:00", "action": "on"}, {"at": "23:30", "action": "dim", "level": 30},
        {"at": "05:00", "action": "off"}])
    times = NOON + np.arange(0.0, 2 * 86_400.0, 300.0)
    obeyed = _run(times, NOON, command)
    hours = np.mod((times - MIDNIGHT_WITA) / 3600.0, 24.0)
    expected_on = (hours >= 19.0) | (hours < 5.0)
    np.testing.assert_array_equal(obeyed["lamp_on"], expected_on.astype(float))
    full = obeyed["lamp_power"][(hours >= 19.0) & (hours < 23.5)]
    dimmed = obeyed["lamp_power"][(hours >= 23.5) | (hours < 5.0)]
    assert np.median(dimmed) == pytest.approx(0.3 * np.median(full), rel=0.05)


def test_a_schedule_before_its_first_time_of_day_keeps_yesterday_s_last_entry() -> None:
    control = control_of(_command(action="schedule", schedule=[
        {"at": "06:00", "action": "off"}, {"at": "18:00", "action": "dim", "level": 50}]),
        "tanah-grogot", 0.0)
    assert control.utc_offset_s == 8 * 3600  # Asia/Makassar, the site's zone
    at = MIDNIGHT_WITA + np.array([0.0, 5.99 * 3600, 6 * 3600, 17.99 * 3600, 18 * 3600])
    np.testing.assert_array_equal(control.levels(at), [50, 50, 0, 0, 50])


def test_a_control_is_a_level_or_a_schedule() -> None:
    with pytest.raises(ValueError, match="not both or neither"):
        LampControl(since=0.0)
    with pytest.raises(ValueError, match="not both or neither"):
        LampControl(since=0.0, level=10, schedule=((0.0, 100.0),))


@pytest.mark.parametrize(("payload", "kind", "reason"), [
    (b"not json", "street_light", "invalid"),
    (b"{}", "street_light", "invalid"),
    (b'{"command_id": "cmd-test-0001", "action": "dim", "level": 400,'
     b' "issued_at": "2026-11-30T04:00:00Z"}', "street_light", "invalid"),
    (b'{"command_id": "cmd-test-0001", "action": "on", "issued_at": "2026-11-30T04:00:00"}',
     "street_light", "invalid"),  # no offset
    (b'{"command_id": "cmd-test-0001", "action": "on", "issued_at": "2026-11-30T04:00:00Z"}',
     "water_meter", "refused"),
    (b"\xff\xfe", "street_light", "invalid"),
])
def test_a_bad_command_is_refused_with_a_reason(payload: bytes, kind: str, reason: str) -> None:
    command, why, detail = parse_command(payload, kind)
    assert (command, why) == (None, reason) and detail


def test_a_good_command_parses_and_ignored_ones_are_counted() -> None:
    command, why, _ = parse_command(
        b'{"command_id": "cmd-test-0001", "action": "dim", "level": 5,'
        b' "issued_at": "2026-11-30T12:00:00+08:00"}', "street_light")
    assert command is not None and (command.action, command.level, why) == ("dim", 5, "")
    log = CommandLog()
    for _ in range(3):
        log.ignored_command("light-test-01", "invalid", "not JSON")
    assert log.ignored == 3
