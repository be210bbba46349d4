"""Settings of what the platform computes and simulates, and of the Grafana it publishes to."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from smartcity.catalog import DEVICE_KINDS

__all__ = [
    "DEFAULT_AVERAGING_HOURS",
    "GrafanaSettings",
    "IndexSettings",
    "SimulatorSettings",
]


# The hours each pollutant's mean is taken over for the air-quality indices. Particulates: 24 h,
# as the regulation's table is read (shared reference). The gases follow the averaging times their
# columns descend from (the 1997 table, PP 22/2021's ambient standards): SO2 24 h, CO 8 h, O3 and
# NO2 1 h, HC 3 h. README "Air-quality indices" states this reading.
DEFAULT_AVERAGING_HOURS: dict[str, int] = {
    "pm10": 24, "pm25": 24, "so2": 24, "co": 8, "o3": 1, "no2": 1, "hc": 3}
_INDEX_POLLUTANTS = DEVICE_KINDS["air_quality_station"].metrics


class IndexSettings(BaseModel):
    """The air-quality indices (ISPU, US AQI) of ``GET /api/v1/ispu``."""

    # pollutant → hours; the keys given replace those defaults, the others stay.
    averaging_hours: dict[str, Annotated[int, Field(ge=1, le=168)]] = Field(
        default_factory=lambda: dict(DEFAULT_AVERAGING_HOURS))
    # Share of a window's hours that must hold readings before its mean is used.
    min_coverage: float = Field(0.75, gt=0, le=1)

    @field_validator("averaging_hours")
    @classmethod
    def _check_averaging_hours(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(_INDEX_POLLUTANTS))
        if unknown:
            raise ValueError(f"SMARTCITY_INDEX__AVERAGING_HOURS: unknown pollutant(s) {', '.join(unknown)};"
                             f" known: {', '.join(_INDEX_POLLUTANTS)}")
        return {**DEFAULT_AVERAGING_HOURS, **value}


class SimulatorSettings(BaseModel):
    """The simulated fleet that stands in for hardware."""

    interval_s: float = Field(10.0, gt=0)
    seed: int = 20261127
    # The devices log in as themselves with passwords derived from this secret (README "Simulated
    # sensors"). None: `smartcity up` keeps one in <data_dir>/fleet-secret; `simulate` without one
    # uses the login of SMARTCITY_MQTT_URL for every device.
    fleet_secret: SecretStr | None = None

    @field_validator("fleet_secret", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class GrafanaSettings(BaseModel):
    """A running Grafana that ``smartcity dashboards publish`` pushes to, and how it reaches the database."""

    url: str | None = None  # http(s)://host:3000 (a sub-path is kept); None: publish refuses
    token: SecretStr | None = None  # a service-account token with the Editor role (or Admin)
    timeout_s: float = Field(10.0, gt=0)
    # The data source as Grafana sees it, not as this machine does: host:port from Grafana's side,
    # and a login role that is a member of smartcity_grafana (README "Grafana"). The password is
    # needed to create the data source; an update without one keeps the password Grafana has.
    db_host: str = "timescaledb:5432"
    db_name: str = "smartcity"
    db_user: str = "grafana"
    db_password: SecretStr | None = None
    db_sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"

    @field_validator("url", "token", "db_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An empty variable, as .env.example writes the unset ones, means "not given".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value) if value is not None else None
        if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("SMARTCITY_GRAFANA__URL must be http(s)://host[:port][/path]")
        return value
