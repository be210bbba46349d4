"""The simulated fleet's credentials: one secret, a password per device, registered like any device's."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
from pydantic import SecretStr

from simulators.fleet import build_fleet, with_credentials
from smartcity.credentials import derive_password, ensure_secret_file, verify_password
from smartcity.devices import register_device, set_device_passwords
from smartcity.launcher import fleet_secret, register_fleet
from smartcity.settings import EmbeddedSettings, Settings, SimulatorSettings


def _stored_hash(db: psycopg.Connection, device_id: str) -> str:
    row = db.execute("SELECT mqtt_password_hash FROM devices WHERE device_id = %s", (device_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_passwords_derive_per_device_and_per_secret() -> None:
    first = derive_password(b"secret-one", "aq-kuaro-01")
    assert first == derive_password(b"secret-one", "aq-kuaro-01")
    assert first != derive_password(b"secret-one", "aq-kuaro-02")
    assert first != derive_password(b"secret-two", "aq-kuaro-01")
    assert len(first) == 43 and first.isascii() and "=" not in first  # 256 bits, URL-safe


def test_the_secret_file_is_created_private_once_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "fleet-secret"
    secret = ensure_secret_file(path)
    assert len(secret) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret_file(path) == secret
    path.write_text("\n")  # an emptied file is not a secret: a new one is made
    replaced = ensure_secret_file(path)
    assert replaced != secret and path.read_text().strip().encode() == replaced


def test_the_setting_wins_over_the_kept_secret(tmp_path: Path) -> None:
    kept = Settings(embedded=EmbeddedSettings(data_dir=tmp_path))
    assert fleet_secret(kept) == (tmp_path / "fleet-secret").read_text().strip().encode()
    given = Settings(embedded=EmbeddedSettings(data_dir=tmp_path / "other"),
                     simulator=SimulatorSettings(fleet_secret=SecretStr("from-the-environment")))
    assert fleet_secret(given) == b"from-the-environment"
    assert not (tmp_path / "other" / "fleet-secret").exists()
    external = Settings(embedded=EmbeddedSettings(data_dir=tmp_path / "ext"), mqtt_url="mqtt://broker:1883")
    assert fleet_secret(external) is None  # the devices use the URL's login
    assert not (tmp_path / "ext").exists()


def test_the_fleet_registers_its_derived_passwords_and_rehashes_older_ones(
        database_url: str, db: psycopg.Connection) -> None:
    specs = with_credentials(build_fleet(3, seed=11), b"fleet-secret")
    assert all(spec.mqtt_username == spec.device_id for spec in specs)
    # One device was registered before the fleet had a secret, with a random password.
    older = register_device(db, specs[0].device_id, specs[0].kind, specs[0].site_id)
    assert older.mqtt_password != specs[0].mqtt_password

    assert register_fleet(database_url, specs) == 2
    for spec in specs:
        assert spec.mqtt_password is not None
        assert verify_password(spec.mqtt_password, _stored_hash(db, spec.device_id))
    assert not verify_password(older.mqtt_password, _stored_hash(db, specs[0].device_id))

    # A second run finds every hash right and changes none of them.
    hashes = {spec.device_id: _stored_hash(db, spec.device_id) for spec in specs}
    assert register_fleet(database_url, specs) == 0
    assert {spec.device_id: _stored_hash(db, spec.device_id) for spec in specs} == hashes


def test_setting_passwords_skips_unknown_devices_and_counts_changes(db: psycopg.Connection) -> None:
    device = register_device(db, "wx-pw-check-01", "weather_station", "kuaro")
    assert set_device_passwords(db, {device.device_id: device.mqtt_password, "wx-unknown-09": "x"}) == 0
    assert set_device_passwords(db, {device.device_id: "a-new-password"}) == 1
    assert verify_password("a-new-password", _stored_hash(db, device.device_id))
    assert db.execute("SELECT count(*) FROM devices WHERE device_id = 'wx-unknown-09'").fetchone() == (0,)
