"""SQL of broker identity: service accounts, device revocation, and the logins the broker files list.

`smartcity.broker` runs these. The comment above each one gives its parameters → the rows it returns.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHANNEL",
    "INSERT_ACCOUNT",
    "LISTEN",
    "REVOKE_ACCOUNT",
    "REVOKE_DEVICE",
    "ROTATE_ACCOUNT",
    "SELECT_ACCOUNT",
    "SELECT_ACCOUNTS",
    "SELECT_ACTIVE_ACCOUNTS",
    "SELECT_ACTIVE_DEVICE_LOGINS",
    "SELECT_DEVICE_REVOCATION",
    "SELECT_LOGIN_FOR_UPDATE",
    "UPSERT_ACCOUNT",
]

# The channel migration 013's triggers notify when a login or its rights may have changed.
CHANNEL: Final = "smartcity_broker_auth"

# () → nothing; the session then receives CHANNEL's notifications.
LISTEN: Final = "LISTEN smartcity_broker_auth"

_ACCOUNT: Final = "SELECT username, role, created_at, revoked_at FROM broker_accounts"

# (username, role, password_hash) → (username,), or no row when an active account has that name.
# A revoked account's name may be taken again: it becomes active with the new role and password.
INSERT_ACCOUNT: Final = (
    "INSERT INTO broker_accounts (username, role, password_hash) VALUES (%s, %s, %s)"
    " ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role,"
    " password_hash = EXCLUDED.password_hash, created_at = now(), revoked_at = NULL"
    " WHERE broker_accounts.revoked_at IS NOT NULL"
    " RETURNING username"
)

# (username,) → (role, password_hash, revoked_at), the row locked until the transaction ends; or no row.
SELECT_LOGIN_FOR_UPDATE: Final = (
    "SELECT role, password_hash, revoked_at FROM broker_accounts WHERE username = %s FOR UPDATE"
)

# (username, role, password_hash) → (username,): the account exists, active, with this role and
# password, whatever it was before (a revoked account starts anew: created now).
UPSERT_ACCOUNT: Final = (
    "INSERT INTO broker_accounts (username, role, password_hash) VALUES (%s, %s, %s)"
    " ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role,"
    " password_hash = EXCLUDED.password_hash, revoked_at = NULL,"
    " created_at = CASE WHEN broker_accounts.revoked_at IS NULL THEN broker_accounts.created_at"
    " ELSE now() END"
    " RETURNING username"
)

# (password_hash, username) → (username,) of the active account given a new password, or no row.
ROTATE_ACCOUNT: Final = (
    "UPDATE broker_accounts SET password_hash = %s WHERE username = %s AND revoked_at IS NULL"
    " RETURNING username"
)

# (username,) → (username, role, created_at, revoked_at), or no row.
SELECT_ACCOUNT: Final = _ACCOUNT + " WHERE username = %s"

# {"all": bool} → account rows ordered by name; revoked ones only when "all" is true.
SELECT_ACCOUNTS: Final = _ACCOUNT + " WHERE %(all)s OR revoked_at IS NULL ORDER BY username"

# (username,) → (revoked_at,) of the account revoked now, or no row when none was active.
REVOKE_ACCOUNT: Final = (
    "UPDATE broker_accounts SET revoked_at = now() WHERE username = %s AND revoked_at IS NULL"
    " RETURNING revoked_at"
)

# (device_id,) → (revoked_at,) of the device revoked now, or no row when none was active.
REVOKE_DEVICE: Final = (
    "UPDATE devices SET revoked_at = now() WHERE device_id = %s AND revoked_at IS NULL"
    " RETURNING revoked_at"
)

# (device_id,) → (revoked_at,) (NULL while active), or no row for an unknown device.
SELECT_DEVICE_REVOCATION: Final = "SELECT revoked_at FROM devices WHERE device_id = %s"

# () → (username, password_hash) of every device that may log in, by name. The login name is the
# device id itself, which the ACL's %u patterns rely on; ids with the service prefix (possible only
# in rows older than migration 013) are left out so they can never pose as a service.
SELECT_ACTIVE_DEVICE_LOGINS: Final = (
    "SELECT device_id, mqtt_password_hash FROM devices"
    " WHERE revoked_at IS NULL AND left(device_id, 10) <> 'smartcity-' ORDER BY device_id"
)

# () → (username, role, password_hash) of every active service account, by name.
SELECT_ACTIVE_ACCOUNTS: Final = (
    "SELECT username, role, password_hash FROM broker_accounts WHERE revoked_at IS NULL"
    " ORDER BY username"
)
