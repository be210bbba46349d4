"""The device registry: register devices and read them back. Shared by the CLI, API and `up`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from smartcity.broker.roles import ACCOUNT_PREFIX, is_service_name
from smartcity.catalog import DEVICE_KINDS, SITES, is_valid_device_id
from smartcity.credentials import generate_password, hash_password, verify_password
from smartcity.db.queries import devices as device_sql

__all__ = [
    "DeviceError",
    "DeviceExists",
    "DeviceRecord",
    "DeviceRegistration",
    "get_device",
    "list_devices",
    "register_device",
    "set_device_passwords",
]


class DeviceError(ValueError):
    """A device cannot be registered as asked: bad id, kind, site or coordinates."""


class DeviceExists(DeviceError):
    """A device with that id is registered already."""


@dataclass(frozen=True)
class DeviceRegistration:
    """A newly registered device with its MQTT credentials (the password is shown once)."""

    device_id: str
    kind: str
    site_id: str
    mqtt_username: str
    mqtt_password: str


@dataclass(frozen=True)
class DeviceRecord:
    """A registered device as stored."""

    device_id: str
    kind: str
    site_id: str
    latitude: float | None
    longitude: float | None
    status: str
    last_seen: datetime | None
    created_at: datetime
    revoked_at: datetime | None = None  # revoked: the broker refuses it, its readings stay

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (times as RFC 3339 text)."""
        return {
            "device_id": self.device_id, "kind": self.kind, "site_id": self.site_id,
            "latitude": self.latitude, "longitude": self.longitude, "status": self.status,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _check(device_id: str, kind: str, site_id: str, latitude: float | None,
           longitude: float | None) -> None:
    if not is_valid_device_id(device_id):
        raise DeviceError(f"device id {device_id!r} must match ^[a-z0-9][a-z0-9_-]{{2,63}}$")
    if is_service_name(device_id):
        # The broker's device ACL patterns apply to every login, service accounts included.
        raise DeviceError(f"device id {device_id!r} starts with {ACCOUNT_PREFIX!r}, which is "
                          "reserved for the platform's service accounts")
    if kind not in DEVICE_KINDS:
        raise DeviceError(f"unknown device kind {kind!r}; known: {', '.join(DEVICE_KINDS)}")
    if site_id not in SITES:
        raise DeviceError(f"unknown site {site_id!r}; known: {', '.join(SITES)}")
    if (latitude is None) != (longitude is None):
        raise DeviceError("give both --lat and --lon, or neither")
    if latitude is not None and not -90 <= latitude <= 90:
        raise DeviceError(f"latitude {latitude} is outside -90..90")
    if longitude is not None and not -180 <= longitude <= 180:
        raise DeviceError(f"longitude {longitude} is outside -180..180")


def register_device(conn: psycopg.Connection, device_id: str, kind: str, site_id: str,
                    latitude: float | None = None, longitude: float | None = None, *,
                    password: str | None = None) -> DeviceRegistration:
    """Register a device with its MQTT credentials (``password``, or a new random one).

    Raises:
        DeviceError: the id, kind, site or coordinates are invalid.
        DeviceExists: the id is taken.
    """
    _check(device_id, kind, site_id, latitude, longitude)
    password = generate_password() if password is None else password
    with conn.transaction():
        row = conn.execute(
            device_sql.INSERT_DEVICE,
            (device_id, kind, site_id, latitude, longitude, device_id, hash_password(password)),
        ).fetchone()
    if row is None:
        raise DeviceExists(f"device {device_id!r} is registered already")
    return DeviceRegistration(device_id, kind, site_id, device_id, password)


def get_device(conn: psycopg.Connection, device_id: str) -> DeviceRecord | None:
    """Return the device called ``device_id``, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(device_sql.SELECT_DEVICE, (device_id,)).fetchone()
    return DeviceRecord(**row) if row else None


def list_devices(conn: psycopg.Connection, site_id: str | None = None,
                 kind: str | None = None) -> list[DeviceRecord]:
    """Return the registered devices, optionally of one site and/or kind, ordered by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(device_sql.SELECT_DEVICES, {"site": site_id, "kind": kind}).fetchall()
    return [DeviceRecord(**row) for row in rows]


def set_device_passwords(conn: psycopg.Connection, passwords: dict[str, str]) -> int:
    """Make each registered device of ``passwords`` log in with its password there; return how
    many hashes changed (a device whose hash already matches keeps it, unknown ids are skipped)."""
    rows = conn.execute(device_sql.SELECT_PASSWORD_HASHES, (list(passwords),)).fetchall()
    stored: dict[str, str] = dict(rows)
    stale = [device_id for device_id, hashed in stored.items()
             if not verify_password(passwords[device_id], hashed)]
    with conn.transaction():
        for device_id in stale:
            conn.execute(device_sql.UPDATE_PASSWORD_HASH,
                         (hash_password(passwords[device_id]), device_id))
    return len(stale)
