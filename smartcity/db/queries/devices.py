"""SQL of the device registry: register a device, read one or many, their keys and latest values.

The CLI (`smartcity.devices`, sync) and the API (`api.queries.devices`, async) run these same
statements. The comment above each one gives its parameters → the rows it returns.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INSERT_DEVICE",
    "SELECT_DEVICE",
    "SELECT_DEVICES",
    "SELECT_DEVICE_KEYS",
    "SELECT_LATEST_VALUES",
    "SELECT_PASSWORD_HASHES",
    "UPDATE_PASSWORD_HASH",
]

_SELECT: Final = (
    "SELECT device_id, kind, site_id, latitude, longitude, status, last_seen, created_at, revoked_at"
    " FROM devices"
)

# (device_id, kind, site_id, latitude, longitude, mqtt_username, mqtt_password_hash) → (id,),
# or no row when the id is taken.
INSERT_DEVICE: Final = (
    "INSERT INTO devices (device_id, kind, site_id, latitude, longitude, mqtt_username,"
    " mqtt_password_hash) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (device_id) DO NOTHING RETURNING id"
)

# (device_id,) → one device row, or none.
SELECT_DEVICE: Final = _SELECT + " WHERE device_id = %s"

# {"site": site_id | None, "kind": kind | None} → device rows ordered by id; None matches all.
SELECT_DEVICES: Final = (
    _SELECT + " WHERE (%(site)s::text IS NULL OR site_id = %(site)s)"
    " AND (%(kind)s::text IS NULL OR kind = %(kind)s) ORDER BY device_id"
)

# (list of device ids,) → (device_id, mqtt_password_hash) of those registered.
SELECT_PASSWORD_HASHES: Final = (
    "SELECT device_id, mqtt_password_hash FROM devices WHERE device_id = ANY(%s)"
)

# (mqtt_password_hash, device_id) → (id,), or no row for an unknown device.
UPDATE_PASSWORD_HASH: Final = (
    "UPDATE devices SET mqtt_password_hash = %s WHERE device_id = %s RETURNING id"
)

# (list of device ids,) → (device_id, id) of those registered.
SELECT_DEVICE_KEYS: Final = "SELECT device_id, id FROM devices WHERE device_id = ANY(%s)"

# (device_id,) → (name, unit, value, time) per metric, ordered by metric id. One round trip: the
# LEFT JOIN yields a single all-NULL row for a known, silent device and no row for an unknown one.
SELECT_LATEST_VALUES: Final = (
    "SELECT m.name, m.unit, l.value, l.time"
    " FROM devices d"
    " LEFT JOIN (latest_readings l JOIN metrics m ON m.metric_id = l.metric)"
    "   ON l.device = d.id"
    " WHERE d.device_id = %s"
    " ORDER BY m.metric_id"
)
