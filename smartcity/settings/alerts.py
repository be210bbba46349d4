"""Settings of the alert evaluator (``smartcity alerts run``) and of the rule file everyone reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from smartcity.settings.fields import mqtt_url_setting, postgres_url_setting

__all__ = ["AlertsSettings"]


class AlertsSettings(BaseModel):
    """Where the rules are, how often they are judged, and how transitions are sent on."""

    # The rule file (README "Alert rules"); None: the Paser defaults shipped with the platform.
    # The evaluator, the API's rule listing and the Grafana provisioning all read this one file.
    rules_file: Path | None = None
    interval_s: float = Field(30.0, gt=0)  # seconds between evaluation cycles
    # A minute is judged once it ended this long ago, so readings still in flight (devices'
    # batches, ingest's own batching) are in before the window is read.
    settle_s: float = Field(60.0, ge=0)
    # After an outage the evaluator judges every missed minute, as far back as this; older minutes
    # are skipped (and logged), since an alert for a flood of last week helps nobody now.
    max_catch_up_h: float = Field(72.0, gt=0)
    # A login of the role smartcity_alerts (README "Database roles"); None: SMARTCITY_DATABASE_URL,
    # or the embedded cluster (where `smartcity up` passes its own login).
    database_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        return postgres_url_setting(value, "SMARTCITY_ALERTS__DATABASE_URL")

    # The evaluator's own broker login, an account of role alerts; None: SMARTCITY_MQTT_URL's.
    mqtt_url: str | None = None

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        return mqtt_url_setting(value, "SMARTCITY_ALERTS__MQTT_URL")

    # Webhooks: each attempt waits at most webhook_timeout_s; a failed one is retried after
    # webhook_backoff_initial_s, doubling up to webhook_backoff_max_s, at most webhook_max_attempts
    # times in all; then the delivery is given up (and counted in the metrics).
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_backoff_initial_s: float = Field(2.0, gt=0)
    webhook_backoff_max_s: float = Field(300.0, gt=0)
    webhook_max_attempts: int = Field(10, ge=1)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9110, ge=0, le=65535)  # 0: no metrics endpoint
