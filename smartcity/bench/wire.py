"""A minimal MQTT v5 publish-only client (OASIS MQTT 5.0 §3.1–3.4), cheap enough to load-test with.

Paho spends ~100 µs of CPU per QoS 1 message (one ``send`` per packet, a Python object per PUBACK),
so on a small machine paho publishers take the cores the system under test needs. This client
writes many PUBLISH packets with one ``sendall`` and parses PUBACKs in bulk. It knows CONNECT
(with user name and password), CONNACK (for Receive Maximum), PUBLISH at QoS 0/1, PUBACK and
DISCONNECT; keep-alive is off. TLS (``mqtts://``) wraps the socket with the same context every other
client uses (`smartcity.broker_url.tls_context`).
"""

from __future__ import annotations

import select
import socket
import ssl
import struct

from smartcity.broker_url import BrokerAddress, tls_context

__all__ = ["RawPublisher", "encode_connect", "encode_publish", "encode_varint"]

_CONNACK_STRING_PROPS = {0x12, 0x1A, 0x1C, 0x1F, 0x15}  # UTF-8 strings
_PROP_SIZES = {0x11: 4, 0x13: 2, 0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}
_RECEIVE_MAXIMUM = 0x21


def encode_varint(value: int) -> bytes:
    """Encode a Variable Byte Integer (§1.5.5)."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int) -> bytes:
    """Encode a PUBLISH packet without properties (§3.3)."""
    header = struct.pack("!H", len(topic)) + topic
    if qos:
        header += struct.pack("!H", packet_id)
    body = header + b"\x00" + payload  # property length 0
    return bytes((0x30 | (qos << 1),)) + encode_varint(len(body)) + body


def _decode_varint(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """Return (value, next position), or None when ``data`` ends inside the integer."""
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def _receive_maximum(props: bytes) -> int:
    """Return CONNACK's Receive Maximum (65535 when absent, §3.2.2.3.3)."""
    pos = 0
    while pos < len(props):
        prop = props[pos]
        pos += 1
        if prop == _RECEIVE_MAXIMUM:
            return int(struct.unpack_from("!H", props, pos)[0])
        if prop in _PROP_SIZES:
            pos += _PROP_SIZES[prop]
        elif prop in _CONNACK_STRING_PROPS or prop == 0x16:
            pos += 2 + struct.unpack_from("!H", props, pos)[0]
        elif prop == 0x26:  # user property: two strings
            for _ in range(2):
                pos += 2 + struct.unpack_from("!H", props, pos)[0]
        else:
            raise ConnectionError(f"unexpected CONNACK property 0x{prop:02x}")
    return 65535


# Non-blocking TLS sockets raise these where plain ones raise BlockingIOError (or return nothing).
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _utf8_field(value: str | bytes) -> bytes:
    """Encode a length-prefixed string or binary field (§1.5.4, §1.5.6)."""
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def encode_connect(client_id: str, username: str | None = None, password: str | None = None) -> bytes:
    """Encode a CONNECT packet: clean start, no keep-alive, no will, optional login (§3.1)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    variable = b"\x00\x04MQTT\x05" + bytes((flags,)) + struct.pack("!H", 0) + b"\x00"
    body = variable + _utf8_field(client_id)
    if username is not None:
        body += _utf8_field(username)
    if password is not None:
        body += _utf8_field(password.encode())
    return b"\x10" + encode_varint(len(body)) + body


class RawPublisher:
    """One MQTT v5 connection that publishes and counts acknowledgements."""

    def __init__(self, address: BrokerAddress, client_id: str) -> None:
        self._buffer = bytearray()
        self._next_id = 0
        self.acked = 0
        self.refused = 0
        sock = socket.create_connection((address.host, address.port), timeout=15)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if address.tls:
                sock = tls_context(address).wrap_socket(sock, server_hostname=address.host)
            self._sock = sock
            self.receive_maximum = self._connect(encode_connect(client_id, address.username,
                                                                address.password))
        except BaseException:  # refused, or the TLS handshake failed: do not leak the socket
            sock.close()
            raise
        self._sock.setblocking(False)

    def _connect(self, connect_packet: bytes) -> int:
        self._sock.sendall(connect_packet)
        while (packet := self._next_packet()) is None:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ConnectionError("the broker closed the connection before CONNACK")
            self._buffer += chunk
        kind, body = packet
        if kind != 0x20 or len(body) < 2:
            raise ConnectionError(f"expected CONNACK, got packet type 0x{kind:02x}")
        if body[1] >= 0x80:
            raise ConnectionError(f"the broker refused the connection: reason code 0x{body[1]:02x}")
        decoded = _decode_varint(body, 2)
        return _receive_maximum(bytes(body[decoded[1]:decoded[1] + decoded[0]])) if decoded else 65535

    def _next_packet(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < 2:
            return None
        decoded = _decode_varint(self._buffer, 1)
        if decoded is None or len(self._buffer) < decoded[1] + decoded[0]:
            return None
        length, start = decoded
        kind, body = self._buffer[0] & 0xF0, bytes(self._buffer[start:start + length])
        del self._buffer[:start + length]
        return kind, body

    def next_packet_id(self) -> int:
        """Return the next packet identifier (1…65535, cycling)."""
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def send(self, packets: list[bytes]) -> None:
        """Write encoded packets with as few system calls as the socket allows."""
        data = memoryview(b"".join(packets))
        while data:
            try:
                sent = self._sock.send(data)
            except _WOULD_BLOCK:
                self.poll(0.01)  # the broker is behind: read its acks while the send buffer drains
                continue
            data = data[sent:]

    def poll(self, timeout: float) -> None:
        """Read whatever the broker sent within ``timeout`` and count the PUBACKs in it."""
        # TLS may hold decrypted bytes the kernel no longer reports as readable.
        buffered = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
        if not buffered:
            readable, _, _ = select.select([self._sock], [], [], timeout)
            if not readable:
                return
        try:
            chunk = self._sock.recv(1 << 16)
        except _WOULD_BLOCK:
            return
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        self._buffer += chunk
        while (packet := self._next_packet()) is not None:
            kind, body = packet
            if kind == 0x40:  # PUBACK; a body of 2 bytes means success
                self.acked += 1
                self.refused += len(body) > 2 and body[2] >= 0x80
            elif kind == 0xE0:
                reason = body[0] if body else 0
                raise ConnectionError(f"the broker disconnected us: reason code 0x{reason:02x}")

    def close(self) -> None:
        """Send DISCONNECT (normal) and close the socket."""
        try:
            self._sock.setblocking(True)
            self._sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self._sock.close()
