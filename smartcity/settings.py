"""Settings for every service, read once at the entry point and passed down.

Environment variables use the ``SMARTCITY_`` prefix and ``__`` between section and key
(``SMARTCITY_INGEST__BATCH_MAX_ROWS``). An optional dotenv file is read too: ``.env`` in the
working directory, or the file named by ``SMARTCITY_SETTINGS_FILE``. Environment wins over file.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from smartcity.broker_url import BrokerAddress, BrokerUrlError, parse_broker_url
from smartcity.catalog import DEVICE_KINDS

__all__ = [
    "ApiSettings",
    "EmbeddedSettings",
    "GrafanaSettings",
    "IndexSettings",
    "IngestSettings",
    "RetentionSettings",
    "RollupSettings",
    "Settings",
    "SimulatorSettings",
    "SupervisorSettings",
    "UnknownSettingError",
    "load_settings",
    "setting_keys",
]

Port = Annotated[int, Field(ge=1, le=65535)]


def _postgres_url(value: str | None, key: str) -> str | None:
    """Return a database URL setting as given, or None when empty; refuse any other scheme."""
    if isinstance(value, str) and not value.strip():
        return None  # an empty variable, as .env.example writes the unset ones: not given
    if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{key} must start with postgresql://")
    return value


def _mqtt_url(value: str | None, key: str) -> str | None:
    """Return a broker URL setting as given, or None when empty; refuse what no client can use."""
    if isinstance(value, str) and not value.strip():
        return None
    if value is not None:
        try:
            parse_broker_url(value)
        except BrokerUrlError as err:
            raise ValueError(f"{key}: {err}") from None
    return value


class EmbeddedSettings(BaseModel):
    """The private Mosquitto and PostgreSQL that ``smartcity up`` starts when no URL is given."""

    data_dir: Path = Path(".smartcity")
    postgres_port: Port = 55432
    mqtt_port: Port = 1883
    postgres_bin_dir: Path | None = None  # default: the newest major that has timescaledb
    mosquitto_bin: Path | None = None  # default: `mosquitto` on PATH or /usr/sbin/mosquitto
    # When the embedded broker snapshots its persistence (Mosquitto's autosave_interval, in seconds,
    # or in changes with autosave_on_changes): a broker crash loses what it PUBACKed since the last
    # snapshot. None: smartcity/mosquitto.conf's values (README "Broker persistence").
    mosquitto_autosave_interval: int | None = Field(None, ge=0)
    mosquitto_autosave_on_changes: bool | None = None
    # A TLS listener of the embedded broker, beside the plain loopback one (README "Broker identity
    # and ACLs"). PEM files, readable by the `mosquitto` user when the platform runs as root.
    mqtt_tls_port: Port | None = None
    mqtt_tls_host: str = "127.0.0.1"  # 0.0.0.0: devices on the network may connect
    mqtt_tls_certfile: Path | None = None
    mqtt_tls_keyfile: Path | None = None
    mqtt_tls_cafile: Path | None = None

    @model_validator(mode="after")
    def _tls_listener_is_complete(self) -> EmbeddedSettings:
        given = self.mqtt_tls_certfile is not None and self.mqtt_tls_keyfile is not None
        if self.mqtt_tls_port is not None and not given:
            raise ValueError("SMARTCITY_EMBEDDED__MQTT_TLS_PORT needs SMARTCITY_EMBEDDED__MQTT_TLS_CERTFILE"
                             " and SMARTCITY_EMBEDDED__MQTT_TLS_KEYFILE")
        if self.mqtt_tls_port is not None and self.mqtt_tls_port == self.mqtt_port:
            raise ValueError("SMARTCITY_EMBEDDED__MQTT_TLS_PORT must differ from"
                             " SMARTCITY_EMBEDDED__MQTT_PORT")
        return self


class SupervisorSettings(BaseModel):
    """How ``smartcity up`` restarts a child process (ingest, API, simulator) that dies."""

    # The first restart waits backoff_initial_s; each further crash doubles it up to backoff_max_s.
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    # A child that has run this long is healthy again: its next crash waits backoff_initial_s.
    stable_after_s: float = Field(60.0, gt=0)
    # More than max_restarts crashes of one child within restart_window_s is a crash loop:
    # restarting will not help, so the platform stops with status 1.
    max_restarts: int = Field(5, ge=0)
    restart_window_s: float = Field(60.0, gt=0)


class IngestSettings(BaseModel):
    """The MQTT-to-database ingest worker."""

    # A login of the role smartcity_ingest (README "Database roles"); None: SMARTCITY_DATABASE_URL,
    # or the embedded cluster (where `smartcity up` passes its own ingest login).
    database_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        return _postgres_url(value, "SMARTCITY_INGEST__DATABASE_URL")

    # The worker's own broker login, an account of role ingest (README "Broker identity and ACLs");
    # None: SMARTCITY_MQTT_URL's. The broker binds client ids to logins, so each worker needs its own.
    mqtt_url: str | None = None

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        return _mqtt_url(value, "SMARTCITY_INGEST__MQTT_URL")

    client_id: str = "smartcity-ingest-1"
    # Empty: a plain subscription, which Mosquitto keeps across its own restarts. Set a group
    # name for N workers sharing the load ($share/<group>/…); see the README on what that costs.
    share_group: str = ""
    batch_max_messages: int = Field(1000, ge=1)
    batch_max_age_ms: int = Field(100, ge=1)
    # Several batches' worth, so the broker keeps sending while a batch is being committed.
    receive_maximum: int = Field(5000, ge=1, le=65535)
    session_expiry_s: int = Field(3600, ge=0)
    future_window_s: int = Field(300, ge=0)
    past_window_days: int = Field(400, ge=1)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=0, le=65535)  # 0: no metrics endpoint


class RollupSettings(BaseModel):
    """The refresher that keeps the 1-minute, hourly and daily rollups current (`smartcity rollup`)."""

    # Seconds between catch-ups. The rollups trail the readings by at most about this plus one
    # catch-up; queries stay exact whatever the lag (pending hours are read raw).
    interval_s: float = Field(5.0, gt=0)
    max_lag_s: float = Field(60.0, gt=0)  # a warning is logged while the lag is above this
    max_marks: int = Field(20000, ge=1)  # pending marks claimed per refresh transaction
    timezone: str = "Asia/Makassar"  # the zone the daily rollups are kept in
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9109, ge=0, le=65535)  # 0: no metrics endpoint

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zone = ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"SMARTCITY_ROLLUP__TIMEZONE: {value!r} is not an IANA time zone"
                             " (e.g. Asia/Makassar, Asia/Jakarta, UTC)") from None
        # Days are made of hourly rollups, so the zone must sit a whole number of hours from UTC
        # (the database refuses others too); winter and summer, for zones with daylight saving.
        year = datetime.now(UTC).year
        for month in (1, 7):
            offset = datetime(year, month, 1, tzinfo=zone).utcoffset()
            if offset is not None and offset.total_seconds() % 3600:
                raise ValueError(f"SMARTCITY_ROLLUP__TIMEZONE: {value} is {offset} from UTC; daily"
                                 " rollups need a zone a whole number of hours from UTC")
        return value


class RetentionSettings(BaseModel):
    """How long each table keeps its data (None: for ever), and when old raw chunks are compressed."""

    raw_days: int | None = Field(90, ge=1)
    rollup_1m_days: int | None = Field(365, ge=1)
    rollup_1h_days: int | None = Field(None, ge=1)
    rollup_1d_days: int | None = Field(None, ge=1)
    interval_s: float = Field(3600.0, gt=0)  # how often the scheduled run enforces it
    # Community edition only (README "Retention"); None: off. Set on the Apache edition, the run
    # refuses rather than silently keeping raw chunks uncompressed.
    compress_raw_after_days: int | None = Field(None, ge=1)

    @field_validator("raw_days", "rollup_1m_days", "rollup_1h_days", "rollup_1d_days",
                     "compress_raw_after_days", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An empty variable, as .env.example writes the unset ones, means "kept for ever" / "off".
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    @model_validator(mode="after")
    def _check_order(self) -> RetentionSettings:
        # Each rollup is rebuilt from the next finer table, so a finer table that outlived a
        # coarser one could bring back buckets the coarser one had dropped, partly.
        keys = ("raw_days", "rollup_1m_days", "rollup_1h_days", "rollup_1d_days")
        for finer, coarser in zip(keys, keys[1:], strict=False):
            kept_finer, kept_coarser = getattr(self, finer), getattr(self, coarser)
            if kept_coarser is not None and (kept_finer is None or kept_finer > kept_coarser):
                said = "empty (for ever)" if kept_finer is None else kept_finer
                raise ValueError(
                    f"SMARTCITY_RETENTION__{finer.upper()}={said} keeps data longer than"
                    f" SMARTCITY_RETENTION__{coarser.upper()}={kept_coarser}: each rollup is rebuilt"
                    " from the finer table, so raw <= 1m <= 1h <= 1d (empty: for ever)")
        after = self.compress_raw_after_days
        if after is not None and self.raw_days is not None and after >= self.raw_days:
            raise ValueError(
                f"SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS={after} is not less than"
                f" SMARTCITY_RETENTION__RAW_DAYS={self.raw_days}: the chunks would be dropped first")
        return self

class ApiSettings(BaseModel):
    """The HTTP API."""

    # A login of the role smartcity_api (README "Database roles"); None: SMARTCITY_DATABASE_URL,
    # or the embedded cluster (where `smartcity up` passes its own API login).
    database_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        return _postgres_url(value, "SMARTCITY_API__DATABASE_URL")

    # The API's own broker login, an account of role api; None: SMARTCITY_MQTT_URL's.
    mqtt_url: str | None = None

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        return _mqtt_url(value, "SMARTCITY_API__MQTT_URL")

    host: str = "127.0.0.1"
    port: Port = 8000
    pool_max_size: int = Field(10, ge=1)
    aggregate_max_points: int = Field(10_000, ge=1)  # points one /aggregates answer may hold
    # Read routes without a key (the regency may publish air quality openly); off by default.
    public_read: bool = False
    # How long a presented key's row is trusted before it is looked up again: a revocation takes
    # effect within this many seconds, and last_used_at is written about this often per key.
    key_cache_s: float = Field(5.0, ge=0, le=300)
    # GET /readings: the largest page (`limit`), the rows one CSV answer streams, the longest
    # start..end, and the most series (device × metric) one request may merge.
    readings_max_page: int = Field(10_000, ge=1)
    readings_csv_max_rows: int = Field(1_000_000, ge=1)
    readings_max_range_days: int = Field(31, ge=1)
    readings_max_series: int = Field(100, ge=1)
    # The longest start–end range one /aggregates request may span, whatever its bucket; None: only
    # the points bound holds (a year-long 1d question and a millennium-long 99999mo one both pass).
    aggregate_max_range_days: int | None = Field(None, ge=1)
    # Request limits every route shares (api.limits): query string bytes, query parameters.
    max_query_length: int = Field(4096, ge=64)
    max_query_params: int = Field(100, ge=1)
    # A statement of the API's running longer is cancelled by the server (the request gets a 503).
    statement_timeout_ms: int = Field(30_000, ge=1)
    # Hardening (README "Request limits"): browser origins that may read answers (empty: no CORS
    # headers at all); the largest request body (POST /devices is under 1 KiB); token buckets per API
    # key and per client address (no key, or a failed key check): requests per second and burst,
    # 0 = off; proxies whose X-Forwarded-For names the client (empty: the socket peer is the client).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(64 * 1024, ge=1)
    rate_limit_key_per_s: float = Field(50.0, ge=0)
    rate_limit_key_burst: int = Field(500, ge=0)
    rate_limit_address_per_s: float = Field(20.0, ge=0)
    rate_limit_address_burst: int = Field(200, ge=0)
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # An environment variable gives one string: "a,b" (or empty) as well as JSON's ["a", "b"].
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    return json.loads(value)
                except ValueError:
                    raise ValueError("not a JSON list; give a,b or [\"a\", \"b\"]") from None
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if origin == "*" or parts.scheme not in ("http", "https") or not parts.hostname \
                    or parts.path or parts.query or parts.fragment:
                raise ValueError(f"SMARTCITY_API__CORS_ORIGINS: {origin!r} is not an origin; give"
                                 " scheme://host[:port] with no path, e.g. https://dashboard.paserkab.go.id"
                                 " (no '*': keys must not be readable by any page)")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_forwarded_allow_ips(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ip_network(item)
            except ValueError:
                raise ValueError(f"SMARTCITY_API__FORWARDED_ALLOW_IPS: {item!r} is not an IP address or"
                                 " network (e.g. 10.0.0.5, 172.18.0.0/16)") from None
        return value

    @model_validator(mode="after")
    def _check_rate_limits(self) -> ApiSettings:
        # A rate with no burst would refuse every request; no burst with no rate is plain "off".
        for which in ("key", "address"):
            rate = getattr(self, f"rate_limit_{which}_per_s")
            burst = getattr(self, f"rate_limit_{which}_burst")
            if (rate == 0) != (burst == 0):
                raise ValueError(f"SMARTCITY_API__RATE_LIMIT_{which.upper()}_PER_S={rate:g} and"
                                 f" SMARTCITY_API__RATE_LIMIT_{which.upper()}_BURST={burst}: set both"
                                 " above 0, or both to 0 (off)")
        return self


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


class Settings(BaseSettings):
    """Every setting of the platform, one section per service."""

    model_config = SettingsConfigDict(
        env_prefix="SMARTCITY_",
        env_nested_delimiter="__",
        env_file=".env",
        # A dotenv file may hold other tools' variables (docker compose reads it too); unknown
        # SMARTCITY_ keys are still refused, by load_settings, so a typo never goes unnoticed.
        extra="ignore",
        # URLs carry passwords: a validation error names the key and the problem, never the value.
        hide_input_in_errors=True,
    )

    database_url: str | None = None  # None: the embedded PostgreSQL
    # None: the embedded Mosquitto. mqtt://user:password@host:port, or mqtts:// for TLS.
    mqtt_url: str | None = None
    mqtt_ca_file: Path | None = None  # mqtts only: the CA that signed the broker's certificate
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    embedded: EmbeddedSettings = EmbeddedSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    index: IndexSettings = IndexSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    rollup: RollupSettings = RollupSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    retention: RetentionSettings = RetentionSettings()
    grafana: GrafanaSettings = GrafanaSettings()

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("SMARTCITY_DATABASE_URL must start with postgresql://")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        return _mqtt_url(value, "SMARTCITY_MQTT_URL")

    @model_validator(mode="after")
    def _check_mqtt_ca_file(self) -> Settings:
        # The same parser as every client uses, so settings accept exactly what will connect.
        if self.mqtt_ca_file is not None:
            if self.mqtt_url is None:
                raise ValueError("SMARTCITY_MQTT_CA_FILE needs SMARTCITY_MQTT_URL=mqtts://…")
            try:
                parse_broker_url(self.mqtt_url, self.mqtt_ca_file)
            except BrokerUrlError as err:
                raise ValueError(f"SMARTCITY_MQTT_CA_FILE: {err}") from None
        return self

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("SMARTCITY_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @property
    def uses_embedded_database(self) -> bool:
        """Tell whether the database is the private embedded cluster."""
        return self.database_url is None

    @property
    def uses_embedded_broker(self) -> bool:
        """Tell whether the broker is the private embedded Mosquitto."""
        return self.mqtt_url is None

    @property
    def broker(self) -> BrokerAddress:
        """Return where the broker is and how to log in: the URL's, or the embedded Mosquitto's."""
        if self.mqtt_url is None:
            return BrokerAddress("127.0.0.1", self.embedded.mqtt_port)
        return parse_broker_url(self.mqtt_url, self.mqtt_ca_file)

    def service_broker(self, service: Literal["ingest", "api"]) -> BrokerAddress:
        """Return where ``service`` connects and how it logs in: its own URL if set, else ``broker``."""
        own = self.ingest.mqtt_url if service == "ingest" else self.api.mqtt_url
        if own is None:
            return self.broker
        return parse_broker_url(own, self.mqtt_ca_file)


class UnknownSettingError(ValueError):
    """A ``SMARTCITY_`` variable names no setting (a typo, or a setting that was removed)."""


def setting_keys(model: type[BaseModel] = Settings, prefix: str = "SMARTCITY_") -> set[str]:
    """Return every environment variable name the settings understand."""
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= setting_keys(annotation, f"{prefix}{name.upper()}__")
        else:
            keys.add(f"{prefix}{name.upper()}")
    return keys


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and the optional settings file.

    Raises:
        UnknownSettingError: a ``SMARTCITY_`` variable in either names no setting.
        pydantic.ValidationError: a value is invalid (the message names the key).
    """
    env_file = os.environ.get("SMARTCITY_SETTINGS_FILE", ".env")
    given = set(os.environ)
    if Path(env_file).is_file():
        given |= set(dotenv_values(env_file))
    known = setting_keys() | {"SMARTCITY_SETTINGS_FILE"}
    unknown = sorted(k for k in given if k.upper().startswith("SMARTCITY_") and k.upper() not in known)
    if unknown:
        raise UnknownSettingError(f"unknown setting(s) {', '.join(unknown)}; .env.example lists them all")
    return Settings(_env_file=env_file, **overrides)
