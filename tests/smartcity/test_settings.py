"""Settings: environment and file sources, fail-fast validation, and a complete .env.example."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from smartcity.settings import (
    ApiSettings,
    IngestSettings,
    Settings,
    UnknownSettingError,
    load_settings,
    setting_keys,
)

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting() -> None:
    documented = set(re.findall(r"^#?\s*(SMARTCITY_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(),
                                re.MULTILINE))
    assert documented == setting_keys() and len(documented) > 20


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMARTCITY_INGEST__BATCH_MAX_MESSAGES", "250")
    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtt://broker.example:1884")
    settings = load_settings()
    assert settings.ingest.batch_max_messages == 250
    assert (settings.broker.host, settings.broker.port) == ("broker.example", 1884)
    assert settings.uses_embedded_database and not settings.uses_embedded_broker


def test_settings_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    env_file = tmp_path / "paser.env"
    env_file.write_text("SMARTCITY_API__PORT=9000\nSMARTCITY_LOG_LEVEL=debug\n")
    monkeypatch.setenv("SMARTCITY_SETTINGS_FILE", str(env_file))
    monkeypatch.setenv("SMARTCITY_LOG_LEVEL", "warning")
    settings = load_settings()
    assert settings.api.port == 9000
    assert settings.log_level == "WARNING"


@pytest.mark.parametrize(("key", "value", "named"), [
    ("SMARTCITY_DATABASE_URL", "mysql://x", "SMARTCITY_DATABASE_URL"),
    ("SMARTCITY_MQTT_URL", "http://x", "SMARTCITY_MQTT_URL"),
    ("SMARTCITY_API__PORT", "70000", "port"),
    ("SMARTCITY_LOG_LEVEL", "LOUD", "SMARTCITY_LOG_LEVEL"),
    ("SMARTCITY_ROLLUP__TIMEZONE", "Asia/Atlantis", "SMARTCITY_ROLLUP__TIMEZONE.*not an IANA"),
    # Days are made of hours: a zone 5:30 from UTC cannot have daily rollups.
    ("SMARTCITY_ROLLUP__TIMEZONE", "Asia/Kolkata", "SMARTCITY_ROLLUP__TIMEZONE.*whole number of hours"),
    ("SMARTCITY_ROLLUP__INTERVAL_S", "0", "interval_s"),
    ("SMARTCITY_INDEX__AVERAGING_HOURS", '{"pm1": 24}',
     "SMARTCITY_INDEX__AVERAGING_HOURS: unknown pollutant.s. pm1; known: pm25, pm10"),
    ("SMARTCITY_INDEX__AVERAGING_HOURS", '{"o3": 0}', "averaging_hours.o3"),
    ("SMARTCITY_INDEX__MIN_COVERAGE", "1.5", "min_coverage"),
])
def test_bad_values_fail_fast_naming_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             key: str, value: str, named: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=named):
        load_settings()


def test_a_dotenv_file_may_hold_other_tools_variables(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=compose-only\nSMARTCITY_API__PORT=8100\n")
    assert load_settings().api.port == 8100


@pytest.mark.parametrize("where", ["environment", "file"])
def test_a_misspelt_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               where: str) -> None:
    monkeypatch.chdir(tmp_path)
    if where == "file":
        (tmp_path / ".env").write_text("SMARTCITY_INGEST__BATCH_MAX_MESAGES=10\n")
    else:
        monkeypatch.setenv("SMARTCITY_INGEST__BATCH_MAX_MESAGES", "10")
    with pytest.raises(UnknownSettingError, match="SMARTCITY_INGEST__BATCH_MAX_MESAGES"):
        load_settings()


def test_rollup_defaults_keep_the_lag_bound_and_take_a_zone(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    rollup = load_settings().rollup
    assert (rollup.interval_s, rollup.max_lag_s, rollup.timezone) == (5.0, 60.0, "Asia/Makassar")
    assert rollup.metrics_port not in (0, load_settings().ingest.metrics_port)
    monkeypatch.setenv("SMARTCITY_ROLLUP__TIMEZONE", "America/New_York")  # DST, whole hours both ways
    assert load_settings().rollup.timezone == "America/New_York"


def test_index_averaging_hours_given_replace_only_those_defaults(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().index.averaging_hours == {
        "pm10": 24, "pm25": 24, "so2": 24, "co": 8, "o3": 1, "no2": 1, "hc": 3}
    monkeypatch.setenv("SMARTCITY_INDEX__AVERAGING_HOURS", '{"o3": 8, "no2": 24}')
    monkeypatch.setenv("SMARTCITY_INDEX__MIN_COVERAGE", "0.5")
    settings = load_settings()
    assert settings.index.averaging_hours == {
        "pm10": 24, "pm25": 24, "so2": 24, "co": 8, "o3": 8, "no2": 24, "hc": 3}
    assert settings.index.min_coverage == 0.5


def test_a_service_logs_in_to_the_broker_with_its_own_url_or_the_shared_one() -> None:
    shared = Settings(mqtt_url="mqtt://shared:pw@broker.example:1883")
    assert shared.service_broker("ingest") == shared.broker == shared.service_broker("api")
    own = Settings(mqtt_url="mqtt://shared:pw@broker.example:1883",
                   ingest=IngestSettings(mqtt_url="mqtt://smartcity-ingest-1:s3cret@broker.example:1883"),
                   api=ApiSettings(mqtt_url=""))
    ingest = own.service_broker("ingest")
    assert (ingest.username, ingest.password) == ("smartcity-ingest-1", "s3cret")
    assert ingest.host == "broker.example"
    assert own.service_broker("api") == own.broker  # empty, as .env.example writes it: not given
    embedded = Settings(ingest=IngestSettings(mqtt_url="mqtt://smartcity-ingest-1:pw@127.0.0.1:1884"))
    assert embedded.uses_embedded_broker and embedded.service_broker("ingest").port == 1884


@pytest.mark.parametrize("key", ["SMARTCITY_INGEST__MQTT_URL", "SMARTCITY_API__MQTT_URL"])
def test_a_service_broker_url_no_client_can_use_is_refused_naming_its_key(
        monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    for name in [name for name in os.environ if name.startswith("SMARTCITY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(key, "http://smartcity-x-1:secret-pw@broker:1883")
    with pytest.raises(ValidationError, match=key) as caught:
        load_settings()
    assert "secret-pw" not in str(caught.value)  # URLs carry passwords: never echoed
