"""MQTT device credentials, hashed the way Mosquitto's password file stores them.

The format is Mosquitto 2's ``$7$<iterations>$<salt>$<hash>`` (PBKDF2-HMAC-SHA512, base64), so the
broker can be given a password file generated straight from the ``devices`` table.

A simulated fleet stands in for many devices at once, so its passwords are derived from one fleet
secret (HMAC-SHA256 of the device id): the simulator holds the secret the way each real device
holds its own password, and every device is still registered with a hash of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["derive_password", "ensure_secret_file", "generate_password", "hash_password",
           "verify_password", "write_secret_file"]

# Mosquitto's default for $7$. The passwords are random 192-bit secrets, not words a person chose,
# so stretching them buys nothing and would cost every device's connect.
_ITERATIONS = 101
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


def derive_password(secret: bytes, device_id: str) -> str:
    """Return the password of ``device_id`` in a fleet whose passwords derive from ``secret``."""
    digest = hmac.new(secret, device_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def ensure_secret_file(path: Path) -> bytes:
    """Return the secret kept in ``path``, creating a random one (mode 0600) if there is none."""
    if path.exists():
        secret = path.read_text().strip()
        if secret:
            return secret.encode()
    secret = secrets.token_urlsafe(32)
    write_secret_file(path, secret + "\n")
    return secret.encode()


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600), creating parents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that existed keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(text)
