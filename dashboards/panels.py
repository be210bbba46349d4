"""Panel, variable and dashboard helpers shared by the three dashboards.

Every panel reads the one TimescaleDB data source with raw SQL and has an explicit
``maxDataPoints``, so ``$__interval`` follows from the time range alone (Grafana divides the
range by it), which is what the macro tests compute. Panel ids and refIds are handed out in
build order, so the generated JSON is stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import geomap, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import geomap as geomap_model

from dashboards.query import Format, PostgresQueryBuilder, datasource_ref
from dashboards.scales import grafana_unit, metric, thresholds
from smartcity.catalog import LOCAL_TIMEZONE, Metric
from smartcity.db.queries import panels as queries
from smartcity.db.queries.panels import GroupBy

__all__ = [
    "TIME_SERIES_POINTS",
    "Board",
    "Steps",
    "device_variable",
    "district_variable",
    "geomap_panel",
    "planner_series",
    "stat_panel",
    "table_panel",
    "timeseries_panel",
]

# Points across a time-series panel: about one per 3–4 pixels of a half-width panel. A 90-day
# range then asks the planner for 6 h buckets, a 15-minute one for Grafana's 1 m floor.
TIME_SERIES_POINTS = 500
# Single-value and table panels still state one: a stat's $__interval is then the whole range.
SUMMARY_POINTS = 100

Steps = tuple[str, list[tuple[float, str]]]

def planner_series(metric_name: str, agg: str, group_by: GroupBy) -> str:
    """Return SQL for one series per district or device of ``agg`` of a metric per ``$__interval``."""
    return queries.aggregate_series(metric(metric_name).name, agg, group_by, LOCAL_TIMEZONE)


def district_variable() -> dashboard_builder.QueryVariable:
    """Return the ``district`` variable: the sites, several at once or all."""
    sql = queries.DISTRICT_OPTIONS
    return (dashboard_builder.QueryVariable("district")
            .label("District")
            .description("Kecamatan of Kabupaten Paser; panels show the devices sited there.")
            .datasource(datasource_ref())
            .query(sql).definition(sql)
            .multi(True).include_all(True).allow_custom_value(False)
            .current(dashboard.VariableOption(selected=True, text=["All"], value=["$__all"]))
            .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(dashboard.VariableSort.DISABLED))


def device_variable(domain: str) -> dashboard_builder.QueryVariable:
    """Return the ``device`` variable: devices in the chosen districts whose kind reports ``domain``."""
    sql = queries.device_options(domain)
    return (dashboard_builder.QueryVariable("device")
            .label("Device")
            .description(f"{domain.capitalize()} devices in the chosen districts.")
            .datasource(datasource_ref())
            .query(sql).definition(sql)
            .multi(True).include_all(True).allow_custom_value(False)
            .current(dashboard.VariableOption(selected=True, text=["All"], value=["$__all"]))
            # Re-read when the district changes (Grafana refreshes dependent variables) and on load.
            .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(dashboard.VariableSort.ALPHABETICAL_ASC))


def _target(sql: str, fmt: Format, ref_id: str = "A") -> PostgresQueryBuilder:
    return PostgresQueryBuilder(ref_id, sql, fmt)


def _unit_of(m: Metric | None, unit: str | None) -> str | None:
    if unit is not None:
        return unit
    return None if m is None else grafana_unit(m.unit)


def timeseries_panel(title: str, description: str, sql: str, *, metric_name: str | None = None,
                     unit: str | None = None, steps: Steps | None = None, lines: bool = False,
                     bars: bool = False, width: int = 12, height: int = 8) -> timeseries.Panel:
    """Return a time-series panel of one raw-SQL query (format time_series).

    ``metric_name`` takes the unit from the catalogue and its minimum as the axis floor unless
    that is negative (-5 m below a gauge's zero, -10 °C: plausibility bounds, not values worth
    drawing down to); its maximum is such a bound too, so above, the axis follows the data;
    ``steps`` colour the series and, with ``lines``, are drawn as dashed lines.
    """
    m = None if metric_name is None else metric(metric_name)
    panel = (timeseries.Panel().title(title).description(description)
             .datasource(datasource_ref())
             .with_target(_target(sql, "time_series"))
             .max_data_points(TIME_SERIES_POINTS)
             .span(width).height(height)
             .line_width(1).fill_opacity(10)
             .show_points(common.VisibilityMode.NEVER)
             .legend(common_builder.VizLegendOptions().show_legend(True)
                     .display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM))
             .tooltip(common_builder.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING)))
    if (u := _unit_of(m, unit)) is not None:
        panel = panel.unit(u)
    if m is not None and m.min_value >= 0:
        panel = panel.axis_soft_min(m.min_value)
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    if steps is not None:
        panel = panel.thresholds(thresholds(*steps))
        if lines:
            panel = panel.thresholds_style(common_builder.GraphThresholdsStyleConfig()
                                           .mode(common.GraphThresholdsStyleMode.DASHED))
    return panel


def stat_panel(title: str, description: str, sql: str, *, metric_name: str | None = None,
               unit: str | None = None, steps: Steps | None = None, fmt: Format = "table",
               width: int = 6, height: int = 6) -> stat.Panel:
    """Return a stat panel: every numeric field of the last row, one value each.

    ``metric_name`` takes unit, minimum and maximum from the catalogue.
    """
    m = None if metric_name is None else metric(metric_name)
    panel = (stat.Panel().title(title).description(description)
             .datasource(datasource_ref())
             .with_target(_target(sql, fmt))
             .max_data_points(SUMMARY_POINTS)
             .span(width).height(height)
             .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .color_mode(common.BigValueColorMode.BACKGROUND)
             .graph_mode(common.BigValueGraphMode.NONE))
    if (u := _unit_of(m, unit)) is not None:
        panel = panel.unit(u)
    if m is not None:
        panel = panel.min(m.min_value).max(m.max_value)
    if steps is not None:
        panel = panel.thresholds(thresholds(*steps))
    return panel


def table_panel(title: str, description: str, sql: str, *, unit: str | None = None,
                steps: Steps | None = None, width: int = 12, height: int = 8) -> table.Panel:
    """Return a table panel of one raw-SQL query (format table)."""
    panel = (table.Panel().title(title).description(description)
             .datasource(datasource_ref())
             .with_target(_target(sql, "table"))
             .max_data_points(SUMMARY_POINTS)
             .span(width).height(height))
    if unit is not None:
        panel = panel.unit(unit)
    if steps is not None:
        panel = panel.thresholds(thresholds(*steps))
    return panel


def geomap_panel(title: str, description: str, sql: str, *, color_field: str, text_field: str,
                 steps: Steps, width: int = 12, height: int = 12) -> geomap.Panel:
    """Return a map of markers at the rows' latitude/longitude, coloured by ``color_field``'s thresholds."""
    markers: dict[str, Any] = {
        "showLegend": True,
        "style": {
            "color": {"field": color_field, "fixed": steps[0]},
            "size": {"fixed": 12},
            "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
            "text": {"field": text_field, "fixed": "", "mode": "field"},
            "textConfig": {"fontSize": 12, "offsetY": -16, "textAlign": "center", "textBaseline": "bottom"},
        },
    }
    layer = (common_builder.MapLayerOptions().type("markers").name(title)
             .config(markers)
             .location(common_builder.FrameGeometrySource()
                       .mode(common.FrameGeometrySourceMode.COORDS)
                       .latitude("latitude").longitude("longitude")))
    return (geomap.Panel().title(title).description(description)
            .datasource(datasource_ref())
            .with_target(_target(sql, "table"))
            .max_data_points(SUMMARY_POINTS)
            .span(width).height(height)
            .thresholds(thresholds(*steps))
            .view(geomap.MapViewConfig().id("fit").all_layers(True))
            .basemap(common_builder.MapLayerOptions().type("default").name("Basemap"))
            .layers([layer])
            .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS)))


class Board:
    """A dashboard being built: numbers panels and refIds in the order they are added."""

    def __init__(self, uid: str, title: str, description: str, tags: Sequence[str],
                 variables: Sequence[dashboard_builder.QueryVariable]) -> None:
        self._builder = (dashboard_builder.Dashboard(title).uid(uid).description(description)
                         .tags(list(tags)).timezone(LOCAL_TIMEZONE)
                         .time("now-24h", "now").refresh("1m").readonly()
                         .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
                         .variables(list(variables)))
        self._next_id = 1

    def row(self, title: str) -> Board:
        """Start a row of panels."""
        self._builder = self._builder.with_row(dashboard_builder.Row(title).id(self._take_id()))
        return self

    def add(self, *panels: cogbuilder.Builder[dashboard.Panel]) -> Board:
        """Add panels in order, left to right and then down."""
        for panel in panels:
            panel.id(self._take_id())  # type: ignore[attr-defined]
            self._builder = self._builder.with_panel(panel)
        return self

    def annotate(self, name: str, raw_sql: str, color: str) -> Board:
        """Add an annotation query (columns time, text, tags) on the platform's data source."""
        query = PostgresQueryBuilder("Anno", raw_sql, "table")
        self._builder = self._builder.annotation(
            dashboard_builder.AnnotationQuery().name(name).datasource(datasource_ref()).enable(True)
            .icon_color(color).target(query))
        return self

    def build(self) -> dashboard.Dashboard:
        """Return the dashboard model."""
        return self._builder.build()

    def _take_id(self) -> int:
        taken, self._next_id = self._next_id, self._next_id + 1
        return taken
