"""The Grafana data source every panel, alert rule and provisioning file names: one definition."""

from __future__ import annotations

from typing import Final

__all__ = ["DATASOURCE_NAME", "DATASOURCE_TYPE", "DATASOURCE_UID"]

# Fixed, so dashboards and alert rules can name it before Grafana has ever seen it.
DATASOURCE_UID: Final = "smartcity-timescaledb"
DATASOURCE_TYPE: Final = "grafana-postgresql-datasource"
DATASOURCE_NAME: Final = "Smart City Paser (TimescaleDB)"
