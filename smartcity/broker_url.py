"""Where the MQTT broker is and how to log in to it: one parser of broker URLs, one way to apply it.

``mqtt://user:password@host:port`` (port 1883) or ``mqtts://…`` (TLS, port 8883). User and password
are percent-decoded (``%40`` for ``@``, ``%3A`` for ``:``). TLS checks the broker's certificate
against the CA file given (``SMARTCITY_MQTT_CA_FILE``) or else the system's trust store. Ingest,
the API, the simulators and the benchmark all reach the broker through `BrokerAddress`, so a
broker that requires a login or TLS works for every one of them or for none.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as mqtt

from smartcity.logs import redact_url

__all__ = [
    "DEFAULT_PORTS",
    "BrokerAddress",
    "BrokerUrlError",
    "apply_address",
    "parse_broker_url",
    "tls_context",
]

# "tcp" is what paho and many tools write for plain MQTT; accepted as a synonym of "mqtt".
DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883}


class BrokerUrlError(ValueError):
    """A broker URL (or its CA file) cannot be used; the message says what to change."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A broker's host and port, the login (if any) and whether to speak TLS."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None  # with tls: the CA that signed the broker's certificate

    @property
    def url(self) -> str:
        """Return the address as a URL with the password masked, fit for logs and messages."""
        login = ""
        if self.username is not None:
            login = quote(self.username, safe="") + (":***" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{login}{host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        """Return the same broker reached with another login (a device's own credentials)."""
        return replace(self, username=username, password=password)


def parse_broker_url(url: str, ca_file: Path | str | None = None) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…``.

    Raises:
        BrokerUrlError: another scheme, no host, a bad port, a path or query, or a CA file that is
            missing or given without ``mqtts``.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:  # urlsplit's own messages name the port or the bracketed host
        raise BrokerUrlError(f"broker URL {redact_url(url)!r} is malformed: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BrokerUrlError(
            f"broker URL {redact_url(url)!r} must start with mqtt:// or mqtts:// (TLS), "
            f"not {scheme or 'nothing'}"
        )
    if not parts.hostname:
        raise BrokerUrlError(f"broker URL {redact_url(url)!r} names no host (mqtt://host:port)")
    if port == 0:
        raise BrokerUrlError(f"broker URL {redact_url(url)!r}: port must be 1-65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerUrlError(f"broker URL {redact_url(url)!r} must end after host:port (no path or query)")
    tls = scheme == "mqtts"
    ca_path = Path(ca_file) if ca_file not in (None, "") else None
    if ca_path is not None:
        if not tls:
            raise BrokerUrlError(f"a CA file ({ca_path}) is only used with mqtts:// URLs, not {scheme}://")
        if not ca_path.is_file():
            raise BrokerUrlError(f"CA file {ca_path} does not exist")
    return BrokerAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
        ca_file=ca_path,
    )


@functools.lru_cache(maxsize=16)
def tls_context(address: BrokerAddress) -> ssl.SSLContext:
    """Return a client TLS context that verifies the broker against the address's CA (or the system's).

    One context per address, shared by every client that uses it (callers must not change it): a
    simulated fleet opens thousands of connections, and loading a CA file for each would cost more
    than the handshakes.
    """
    # create_default_context checks the certificate chain and the host name (TLS 1.2 or newer).
    context = ssl.create_default_context(cafile=str(address.ca_file) if address.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def apply_address(client: mqtt.Client, address: BrokerAddress, *, credentials: bool = True) -> None:
    """Give a paho client the address's login and TLS; connect with ``address.host, address.port``.

    ``credentials=False`` leaves the login alone, for clients that carry their own (simulated
    devices log in as themselves).
    """
    if credentials and address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set_context(tls_context(address))
