"""The one settings tree (``Settings``), how it is loaded, and the keys it understands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BaseModel, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smartcity.broker_url import BrokerAddress, BrokerUrlError, parse_broker_url
from smartcity.settings.alerts import AlertsSettings
from smartcity.settings.domain import GrafanaSettings, IndexSettings, SimulatorSettings
from smartcity.settings.fields import mqtt_url_setting
from smartcity.settings.services import (
    ApiSettings,
    EmbeddedSettings,
    IngestSettings,
    RetentionSettings,
    RollupSettings,
    SupervisorSettings,
)

__all__ = [
    "Settings",
    "UnknownSettingError",
    "load_settings",
    "setting_keys",
]


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
    alerts: AlertsSettings = AlertsSettings()

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("SMARTCITY_DATABASE_URL must start with postgresql://")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _checkmqtt_url_setting(cls, value: str | None) -> str | None:
        return mqtt_url_setting(value, "SMARTCITY_MQTT_URL")

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

    def service_broker(self, service: Literal["ingest", "api", "alerts"]) -> BrokerAddress:
        """Return where ``service`` connects and how it logs in: its own URL if set, else ``broker``."""
        own: str | None = getattr(self, service).mqtt_url
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
