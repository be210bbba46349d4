"""Units, ranges and thresholds of panels, read from the metric catalogue and the ISPU table.

Nothing here restates a number: units and min/max come from ``smartcity.catalog``, the ISPU bands
and colours from the ISPU table (``ispu_table``), river alert stages from the catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import dashboard

from smartcity.airquality import ISPU_CATEGORIES, ISPU_INDEX_POINTS, ISPU_TABLE
from smartcity.catalog import METRICS, RIVER_WARNING_LEVELS_M, Metric

__all__ = [
    "IspuBands",
    "grafana_unit",
    "ispu_concentration_steps",
    "ispu_index_steps",
    "ispu_table",
    "metric",
    "river_level_steps",
    "thresholds",
]

# Grafana's own unit ids where one means exactly the catalogue's unit; any other unit is shown
# as its catalogue text after the value (Grafana's custom `suffix:` unit).
_GRAFANA_UNITS: Mapping[str, str] = {
    "°C": "celsius",
    "%": "percent",
    "hPa": "pressurehpa",
    "mm": "lengthmm",
    "m/s": "velocityms",
    "°": "degree",
    "m": "lengthm",
    "W": "watt",
    "kWh": "kwatth",
    "m³": "m3",
    "bar": "pressurebar",
}

# Alert stages from lowest to highest: the colours of a river panel's lines.
_STAGE_COLORS: Sequence[str] = ("yellow", "orange", "red")


@dataclass(frozen=True, slots=True)
class IspuBands:
    """The ISPU table as the dashboards need it: index points, breakpoints, band colours."""

    index_points: tuple[int, ...]  # 0, 50, 100, … (the regulation's columns)
    breakpoints: Mapping[str, tuple[float, ...]]  # pollutant → concentration at each index point
    colors: tuple[str, ...]  # one per band, lowest first


def ispu_table() -> IspuBands:
    """Return the ISPU table (Permen LHK P.14/2020): the one place the dashboards read it from."""
    return IspuBands(ISPU_INDEX_POINTS, ISPU_TABLE, tuple(c.color for c in ISPU_CATEGORIES))


def metric(name: str) -> Metric:
    """Return the catalogue's metric ``name``.

    Raises:
        KeyError: the catalogue has no such metric (a panel names a metric that does not exist).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; the catalogue has {', '.join(sorted(METRICS))}") from None


def grafana_unit(unit: str) -> str:
    """Return Grafana's unit id for a catalogue unit."""
    return _GRAFANA_UNITS.get(unit, f"suffix: {unit}")


def thresholds(base_color: str, steps: Sequence[tuple[float, str]]) -> dashboard_builder.ThresholdsConfig:
    """Return absolute thresholds: ``base_color`` below the first step, each step's colour from its value."""
    values = [value for value, _ in steps]
    if values != sorted(values) or len(set(values)) != len(values):
        raise ValueError(f"threshold steps must rise strictly, not {values}")
    return (dashboard_builder.ThresholdsConfig()
            .mode(dashboard.ThresholdsMode.ABSOLUTE)
            .steps([dashboard.Threshold(value=None, color=base_color),
                    *(dashboard.Threshold(value=value, color=color) for value, color in steps)]))


def ispu_concentration_steps(pollutant: str) -> tuple[str, list[tuple[float, str]]]:
    """Return the base colour and (concentration, colour) steps of the ISPU bands of ``pollutant``."""
    bands = ispu_table()
    points = bands.breakpoints[pollutant]
    # The table's last column ends the scale: no band starts there.
    return bands.colors[0], list(zip(points[1:-1], bands.colors[1:], strict=True))


def ispu_index_steps() -> tuple[str, list[tuple[float, str]]]:
    """Return the base colour and (index, colour) steps of the ISPU categories.

    A site's ISPU is an integer rounded up, and a band ends at its index point inclusive
    (0–50 Baik, 51–100 Sedang, …): a band starts one above the previous point.
    """
    bands = ispu_table()
    return bands.colors[0], [(point + 1, color) for point, color in
                             zip(bands.index_points[1:-1], bands.colors[1:], strict=True)]


def river_level_steps() -> tuple[str, list[tuple[float, str]]]:
    """Return the base colour and (level, colour) steps of the river alert stages."""
    levels = sorted(RIVER_WARNING_LEVELS_M.values())
    if len(levels) != len(_STAGE_COLORS):
        raise ValueError(f"{len(levels)} river alert stages but {len(_STAGE_COLORS)} colours for them")
    return "green", list(zip(levels, _STAGE_COLORS, strict=True))
