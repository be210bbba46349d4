"""The "Smart Environment — Paser" dashboard: air quality and ISPU, weather, rivers, water, noise."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards.alerts import transitions_annotation
from dashboards.panels import (
    Board,
    device_variable,
    district_variable,
    geomap_panel,
    planner_series,
    stat_panel,
    timeseries_panel,
)
from dashboards.scales import ispu_concentration_steps, ispu_index_steps, metric, river_level_steps
from smartcity.catalog import DEVICE_KINDS, LOCAL_TIMEZONE
from smartcity.db.queries import panels as queries

__all__ = ["UID", "build_environment"]

UID = "smartcity-environment"

# Rate of rise in cm/h from a level in metres.
_CM_PER_M = 100


def _rate_of_rise_sql() -> str:
    if (unit := metric("water_level").unit) != "m":
        raise ValueError(f"rate of rise is drawn in cm/h from a level in metres, not {unit}")
    return queries.rate_of_rise_series("water_level", LOCAL_TIMEZONE, _CM_PER_M)


def _air_quality(board: Board) -> None:
    board.row("Air quality (ISPU)")
    board.add(
        geomap_panel(
            "ISPU by district",
            "Each district's air-quality index (ISPU, Permen LHK P.14/2020) at the end of the "
            "time range, coloured by its category; hover for the category and the dominant "
            "pollutant. Districts without enough particulate data show no index.",
            queries.SITE_ISPU_MAP, color_field="ispu", text_field="name", steps=ispu_index_steps(),
            width=8, height=16),
    )
    for pollutant, label in (("pm25", "PM2.5"), ("pm10", "PM10")):
        board.add(timeseries_panel(
            f"{label} per district",
            f"Mean {label} of the chosen devices per district and interval. The coloured lines "
            "are the ISPU category boundaries (Baik, Sedang, Tidak Sehat, Sangat Tidak Sehat, "
            "Berbahaya); ISPU itself averages over 24 h, so a short peak above a line is not yet "
            "a category change.",
            planner_series(pollutant, "avg", "site"), metric_name=pollutant,
            steps=ispu_concentration_steps(pollutant), lines=True, width=16))


def _weather(board: Board) -> None:
    board.row("Weather")
    board.add(
        timeseries_panel("Temperature per district",
                         "Mean air temperature of the weather stations per district and interval.",
                         planner_series("temperature", "avg", "site"), metric_name="temperature",
                         width=8),
        timeseries_panel("Humidity per district",
                         "Mean relative humidity of the weather stations per district and interval.",
                         planner_series("humidity", "avg", "site"), metric_name="humidity", width=8),
        timeseries_panel("Rain per district",
                         "Rain per interval: the sum of the reports of the district's stations (a "
                         "district with two stations sums both).",
                         planner_series("rainfall", "sum", "site"), metric_name="rainfall", bars=True,
                         width=8),
    )


def _rivers(board: Board) -> None:
    board.row("Rivers")
    board.add(
        timeseries_panel(
            "River level per gauge",
            "Each gauge's last level per interval, in metres above gauge zero. Dashed lines: the "
            "flood alert stages Waspada, Siaga and Awas (illustrative levels, the same for every "
            "gauge; from the metric catalogue).",
            planner_series("water_level", "last", "device"), metric_name="water_level",
            steps=river_level_steps(), lines=True, width=10),
        timeseries_panel(
            "River rate of rise",
            "How fast each gauge's level rises (negative: falls), in cm per hour, from its last "
            "level per interval against the interval before. A rise of tens of cm/h after heavy "
            "rain upstream is the early warning.",
            _rate_of_rise_sql(), unit="suffix: cm/h", width=8),
        stat_panel("River level now",
                   "Each gauge's latest level in the time range, coloured by flood alert stage.",
                   planner_series("water_level", "last", "device"), metric_name="water_level",
                   steps=river_level_steps(), fmt="time_series", width=6, height=8),
    )


def _water_quality(board: Board) -> None:
    board.row("Water quality")
    sonde = DEVICE_KINDS["water_quality_sonde"]
    for name in sonde.metrics:
        m = metric(name)
        board.add(timeseries_panel(
            f"{m.description} per sonde",
            f"Mean {m.description.lower()} ({m.unit}) of each water-quality sonde per interval.",
            planner_series(name, "avg", "device"), metric_name=name, width=8))


def _noise(board: Board) -> None:
    board.row("Noise")
    board.add(
        timeseries_panel("Noise level per monitor",
                         "Mean A-weighted sound level of each noise monitor per interval.",
                         planner_series("noise_level", "avg", "device"), metric_name="noise_level"),
        timeseries_panel("Loudest per monitor",
                         "The loudest report of each noise monitor per interval.",
                         planner_series("noise_level", "max", "device"), metric_name="noise_level"),
    )


def build_environment() -> dashboard.Dashboard:
    """Build the Smart Environment dashboard."""
    board = Board(
        UID, "Smart Environment — Paser",
        "Air quality (ISPU), weather, river levels, water quality and noise across Kabupaten Paser.",
        ["smartcity", "environment"],
        [district_variable(), device_variable("environment")])
    # Flood, haze and silence alerts of the chosen districts, as the evaluator stored them.
    board.annotate("Alerts", transitions_annotation(), "red")
    _air_quality(board)
    _weather(board)
    _rivers(board)
    _water_quality(board)
    _noise(board)
    return board.build()
