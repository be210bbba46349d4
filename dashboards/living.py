"""The "Smart Living — public services" dashboard: street lights, waste bins, water supply."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards.panels import (
    Board,
    device_variable,
    district_variable,
    planner_series,
    table_panel,
    timeseries_panel,
)
from dashboards.scales import grafana_unit, metric
from smartcity.catalog import LOCAL_TIMEZONE
from smartcity.db.queries import panels as queries

__all__ = ["BIN_FULL_PERCENT", "LAMP_DEAD_MAX_W", "UID", "build_living"]

UID = "smartcity-living"

# A bin this full is due for collection (the fill sensor's scale is the catalogue's 0–100 %).
BIN_FULL_PERCENT = 80.0
# A lamp switched on that draws less than this is dead: a working street light draws tens of
# watts, a dead one only its driver's standby (well under a watt).
LAMP_DEAD_MAX_W = 5.0
# The street light's switch state (0/1) and power draw (W), as the catalogue names them.
_LAMP_METRICS = (metric("lamp_on").name, metric("lamp_power").name)


def _street_lights(board: Board) -> None:
    board.row("Street lights")
    dead = (f"A lamp counts as failed in an hour when it reported on (lamp_on = 1) throughout "
            f"the hour yet never drew {LAMP_DEAD_MAX_W:g} W or more (lamp_power ≈ 0): the controller "
            "switched it on but the lamp is dark. Judged per hour whatever the interval: an "
            "interval longer than a night is never on throughout.")
    board.add(
        timeseries_panel(
            "Street lights on",
            "Share of the chosen street lights switched on, per district and interval "
            "(the mean of lamp_on, as a percentage).",
            queries.scaled_series(metric("lamp_on").name, "avg", "site", LOCAL_TIMEZONE, 100),
            unit=grafana_unit("%"), width=8),
        timeseries_panel(
            "Street-light power per district",
            "Total power the district's chosen street lights draw: each lamp's mean power per "
            "interval, summed over the district.",
            queries.site_total_series(metric("lamp_power").name, "avg", LOCAL_TIMEZONE),
            metric_name="lamp_power", width=8),
        timeseries_panel(
            "Failed lamps per district",
            f"How many of the district's lamps were failed in some hour of each interval. {dead}",
            queries.failed_lamps_series(*_LAMP_METRICS, LOCAL_TIMEZONE, LAMP_DEAD_MAX_W),
            unit="none", bars=True, width=8),
        table_panel(
            "Failed lamps",
            f"Every lamp failed during the time range, the most recent first. {dead} "
            "Times are the starts of the hours.",
            queries.failed_lamps_table(*_LAMP_METRICS, LOCAL_TIMEZONE, LAMP_DEAD_MAX_W),
            width=24),
    )


def _waste(board: Board) -> None:
    board.row("Waste bins")
    steps = ("green", [(BIN_FULL_PERCENT, "red")])
    board.add(
        timeseries_panel(
            "Bin fill level",
            f"Each chosen bin's fullest report per interval. Above the red line "
            f"({BIN_FULL_PERCENT:g} %) a bin needs collecting; a sudden drop is a collection round.",
            planner_series("fill_level", "max", "device"), metric_name="fill_level",
            steps=steps, lines=True, width=14),
        table_panel(
            "Bins needing collection",
            f"Bins whose last report in the time range is at least {BIN_FULL_PERCENT:g} % full, "
            "fullest first; `reported` is the start of the interval of that report.",
            queries.latest_at_least_table(metric("fill_level").name, LOCAL_TIMEZONE, BIN_FULL_PERCENT),
            unit=grafana_unit(metric("fill_level").unit), steps=steps, width=10),
    )


def _water(board: Board) -> None:
    board.row("Water supply")
    board.add(
        timeseries_panel(
            "Water consumption per district",
            "Water delivered through the district's chosen meters per interval: the rise of the "
            "meters' cumulative volume (the planner's `increase` aggregate, summed per district).",
            planner_series("water_volume", "increase", "site"), metric_name="water_volume",
            bars=True, width=14),
        timeseries_panel(
            "Water pressure per district",
            "Mean supply pressure at the district's chosen meters per interval; a fall with "
            "steady consumption points at a leak or a pump.",
            planner_series("water_pressure", "avg", "site"), metric_name="water_pressure", width=10),
    )


def build_living() -> dashboard.Dashboard:
    """Build the Smart Living dashboard."""
    board = Board(
        UID, "Smart Living — public services",
        "Street lights, waste bins and the water supply across Kabupaten Paser.",
        ["smartcity", "living"],
        [district_variable(), device_variable("living")])
    _street_lights(board)
    _waste(board)
    _water(board)
    return board.build()
