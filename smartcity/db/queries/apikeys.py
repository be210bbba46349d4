"""SQL of the API keys: create, list, revoke, look up for a request and record its use.

The comment above each statement gives its parameters → the rows it returns.
"""

from __future__ import annotations

from typing import Final

__all__ = ["INSERT_KEY", "REVOKE_KEY", "SELECT_KEYS", "SELECT_KEY_FOR_CHECK", "TOUCH_KEY"]

_COLUMNS: Final = "key_id, name, scope, created_at, last_used_at, revoked_at"

# (key_id, name, scope, digest) → one key row.
INSERT_KEY: Final = (
    "INSERT INTO api_keys (key_id, name, scope, digest) VALUES (%s, %s, %s, %s)"
    f" RETURNING {_COLUMNS}"
)

# {"all": bool} → key rows, oldest first; revoked ones only when "all" is true.
SELECT_KEYS: Final = (
    f"SELECT {_COLUMNS} FROM api_keys WHERE %(all)s OR revoked_at IS NULL ORDER BY created_at, key_id"
)

# (key_id,) → the revoked key's row; none when no such key (a key revoked before keeps its time).
REVOKE_KEY: Final = (
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s"
    f" RETURNING {_COLUMNS}"
)

# (key_id,) → (digest, scope, revoked) of the key, or no row.
SELECT_KEY_FOR_CHECK: Final = (
    "SELECT digest, scope, revoked_at IS NOT NULL FROM api_keys WHERE key_id = %s"
)

# (key_id,) → nothing: the key was used just now.
TOUCH_KEY: Final = "UPDATE api_keys SET last_used_at = now() WHERE key_id = %s"
