"""The "Smart Living — public services" dashboard: street lights, waste bins, water supply."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards.panels import (
    Board,
    device_variable,
    district_variable,
    planner_call,
    planner_series,
    table_panel,
    timeseries_panel,
)
from dashboards.scales import grafana_unit, metric

__all__ = ["BIN_FULL_PERCENT", "LAMP_DEAD_MAX_W", "UID", "build_living"]

UID = "smartcity-living"

# A bin this full is due for collection (the fill sensor's scale is the catalogue's 0–100 %).
BIN_FULL_PERCENT = 80.0
# A lamp switched on that draws less than this is dead: a working street light draws tens of
# watts, a dead one only its driver's standby (well under a watt).
LAMP_DEAD_MAX_W = 5.0


def _failed_lamps_cte() -> str:
    # Per lamp and interval: on for the whole interval (min of lamp_on is 1) yet never drawing
    # power (max of lamp_power below the dead-lamp bound).
    return ("WITH switched AS (SELECT key, time, value\n"
            f"  FROM {planner_call('lamp_on', 'min', 'device')}),\n"
            "drawn AS (SELECT key, time, value\n"
            f"  FROM {planner_call('lamp_power', 'max', 'device')}),\n"
            "failed AS (SELECT s.key, s.time FROM switched s JOIN drawn p USING (key, time)\n"
            f"  WHERE s.value = 1 AND p.value < {LAMP_DEAD_MAX_W})\n")


def _street_lights(board: Board) -> None:
    board.row("Street lights")
    dead = (f"A lamp counts as failed in an interval when it reported on (lamp_on = 1) throughout "
            f"it yet never drew {LAMP_DEAD_MAX_W:g} W or more (lamp_power ≈ 0): the controller "
            "switched it on but the lamp is dark.")
    board.add(
        timeseries_panel(
            "Street lights on",
            "Share of the chosen street lights switched on, per district and interval "
            "(the mean of lamp_on, as a percentage).",
            'SELECT time AS "time", value * 100 AS value, key AS metric\n'
            f"FROM {planner_call('lamp_on', 'avg', 'site')}\nORDER BY 1, 3",
            unit=grafana_unit("%"), width=8),
        timeseries_panel(
            "Street-light power per district",
            "Total power the district's chosen street lights draw: each lamp's mean power per "
            "interval, summed over the district.",
            'SELECT a.time AS "time", sum(a.value) AS value, d.site_id AS metric\n'
            f"FROM {planner_call('lamp_power', 'avg', 'device')} a\n"
            "JOIN devices d ON d.device_id = a.key\nGROUP BY 1, 3\nORDER BY 1, 3",
            metric_name="lamp_power", width=8),
        timeseries_panel(
            "Failed lamps per district",
            f"How many of the district's lamps were failed in each interval. {dead}",
            _failed_lamps_cte()
            + 'SELECT f.time AS "time", count(*) AS value, d.site_id AS metric\n'
              "FROM failed f JOIN devices d ON d.device_id = f.key\nGROUP BY 1, 3\nORDER BY 1, 3",
            unit="none", bars=True, width=8),
        table_panel(
            "Failed lamps",
            f"Every lamp failed during the time range, the most recent first. {dead} "
            "Times are the starts of the intervals.",
            _failed_lamps_cte()
            + "SELECT f.key AS lamp, d.site_id AS district, min(f.time) AS first_failed,\n"
              "       max(f.time) AS last_failed, count(*) AS intervals\n"
              "FROM failed f JOIN devices d ON d.device_id = f.key\n"
              "GROUP BY f.key, d.site_id\nORDER BY last_failed DESC, lamp",
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
            "SELECT b.key AS bin, d.site_id AS district, b.value AS fill_level, b.time AS reported\n"
            "FROM (SELECT DISTINCT ON (key) key, time, value\n"
            f"      FROM {planner_call('fill_level', 'last', 'device')}\n"
            "      ORDER BY key, time DESC) b\n"
            "JOIN devices d ON d.device_id = b.key\n"
            f"WHERE b.value >= {BIN_FULL_PERCENT}\n"
            "ORDER BY b.value DESC, b.key",
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
