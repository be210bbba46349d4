"""Settings of the platform's processes: embedded services, supervisor, ingest, rollups, retention, API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from smartcity.settings.fields import Port, mqtt_url_setting, postgres_url_setting

__all__ = [
    "ApiSettings",
    "EmbeddedSettings",
    "IngestSettings",
    "RetentionSettings",
    "RollupSettings",
    "SupervisorSettings",
]


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
        return postgres_url_setting(value, "SMARTCITY_INGEST__DATABASE_URL")

    # The worker's own broker login, an account of role ingest (README "Broker identity and ACLs");
    # None: SMARTCITY_MQTT_URL's. The broker binds client ids to logins, so each worker needs its own.
    mqtt_url: str | None = None

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _checkmqtt_url_setting(cls, value: str | None) -> str | None:
        return mqtt_url_setting(value, "SMARTCITY_INGEST__MQTT_URL")

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
        return postgres_url_setting(value, "SMARTCITY_API__DATABASE_URL")

    # The API's own broker login, an account of role api; None: SMARTCITY_MQTT_URL's.
    mqtt_url: str | None = None

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _checkmqtt_url_setting(cls, value: str | None) -> str | None:
        return mqtt_url_setting(value, "SMARTCITY_API__MQTT_URL")

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
    # A command to an actuator times out this long after it was issued when no reading of the
    # device has shown the commanded state (README "Commands to actuators").
    command_timeout_s: float = Field(60.0, gt=0, le=86_400)
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
