"""The "Platform health" dashboard: ingest rate, quarantine, devices online, rollup lag."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards.panels import Board, district_variable, stat_panel, table_panel, timeseries_panel
from smartcity.catalog import LOCAL_TIMEZONE
from smartcity.contract import STATUS_PAYLOADS
from smartcity.db.queries import panels as queries
from smartcity.settings import RollupSettings

__all__ = ["UID", "build_platform"]

UID = "smartcity-platform"

# Red from the lag at which the refresher starts logging warnings (its default setting).
_MAX_LAG_S = float(RollupSettings.model_fields["max_lag_s"].default)


def build_platform() -> dashboard.Dashboard:
    """Build the Platform health dashboard."""
    board = Board(
        UID, "Platform health",
        "Is data arriving, being refused, and being rolled up? Ingest rate, quarantine, devices "
        "online and the rollup refresher's lag.",
        ["smartcity", "platform"],
        [district_variable()])
    board.row("Ingest")
    board.add(
        timeseries_panel(
            "Readings ingested per second",
            "Stored readings per second of the chosen districts' devices, all metrics together, "
            "by the time they were measured (a backfill shows at its measured times).",
            queries.readings_per_second_series(LOCAL_TIMEZONE), unit="suffix: /s", width=12),
        timeseries_panel(
            "Quarantined messages by reason",
            "Messages the ingest refused, per reason code and interval (a message with several "
            "reasons counts under each). All districts: an unknown device has none.",
            queries.QUARANTINE_BY_REASON, unit="none", bars=True, width=12),
    )
    board.row("Devices and rollups")
    board.add(
        stat_panel("Devices by status",
                   "Devices of the chosen districts online, offline (their broker connection's "
                   "last will fired or they said so) and never heard from (unknown).",
                   queries.device_status_counts((*STATUS_PAYLOADS, "unknown")), unit="none", width=8),
        stat_panel("Rollup lag",
                   "Age of the oldest reading still waiting for the rollup refresher. Aggregates "
                   "stay exact whatever it is (pending hours are read raw); a lag that keeps "
                   "growing means the refresher is down or behind, and long ranges get slower.",
                   queries.ROLLUP_LAG, unit="s", steps=("green", [(_MAX_LAG_S, "red")]), width=4),
        table_panel("Devices, longest silent first",
                    "Every device of the chosen districts with its status and when it last sent "
                    "a reading; `silent_s` is the time since, in seconds.",
                    queries.DEVICES_LAST_SEEN, unit="s", width=12, height=10),
    )
    return board.build()
