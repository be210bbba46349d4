"""MQTT device credentials, hashed the way Mosquitto's password file stores them.

The format is Mosquitto 2's ``$7$<iterations>$<salt>$<hash>`` (PBKDF2-HMAC-SHA512, base64), so the
broker can later be given a password file generated straight from the ``devices`` table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["generate_password", "hash_password", "verify_password"]

_ITERATIONS = 101  # Mosquitto's default for $7$
_SALT_BYTES = 12


def generate_password() -> str:
    """Return a new random device password (shown once, never stored in clear)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """Hash ``password`` in Mosquitto's ``$7$`` format."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Tell whether ``password`` matches a ``$7$`` hash."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        expected = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(expected, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False
