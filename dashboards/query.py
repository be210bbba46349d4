"""The PostgreSQL query of Grafana's built-in data source, which grafana-foundation-sdk lacks.

A raw-SQL target (``rawQuery``, ``editorMode: code``) on the one data source every panel uses;
registered with the SDK's runtime so dashboard JSON read back by the SDK keeps its targets typed.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common

from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID

__all__ = ["Format", "PostgresQuery", "PostgresQueryBuilder", "datasource_ref", "register"]

Format = Literal["time_series", "table"]


def datasource_ref() -> common.DataSourceRef:
    """Return a reference to the platform's TimescaleDB data source."""
    return common.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class PostgresQuery(cogvariants.Dataquery):
    """One raw-SQL target of a panel."""

    def __init__(self, ref_id: str = "", raw_sql: str = "", format: Format = "time_series",
                 datasource: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = format
        self.datasource = datasource or {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
        # Raw SQL typed in the code editor; keys Grafana adds when a dashboard is saved from its UI
        # (hide, sql, …) land here too, so reading JSON back loses none of them.
        self.extra: dict[str, Any] = {"editorMode": "code", "rawQuery": True, **(extra or {})}

    def to_json(self) -> dict[str, object]:
        """Return the target as Grafana stores it."""
        return {**self.extra, "datasource": self.datasource, "format": self.format,
                "rawSql": self.raw_sql, "refId": self.ref_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Read a target back from dashboard JSON.

        Raises:
            ValueError: the target's format is neither time_series nor table.
        """
        fmt = data.get("format", "time_series")
        if fmt not in ("time_series", "table"):
            raise ValueError(f"query {data.get('refId')!r}: format must be time_series or table, not {fmt!r}")
        extra = {k: v for k, v in data.items() if k not in ("datasource", "format", "rawSql", "refId")}
        return cls(str(data.get("refId", "")), str(data.get("rawSql", "")), fmt,
                   data.get("datasource"), extra)


class PostgresQueryBuilder(cogbuilder.Builder[PostgresQuery]):
    """Build a :class:`PostgresQuery` the way the SDK's own query builders work."""

    def __init__(self, ref_id: str, raw_sql: str, format: Format) -> None:
        self._internal = PostgresQuery(ref_id, raw_sql, format)

    def build(self) -> PostgresQuery:
        """Return the query."""
        return self._internal


def register() -> None:
    """Teach the SDK's JSON reader that targets of our data source type are PostgreSQL queries."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=PostgresQuery.from_json))
