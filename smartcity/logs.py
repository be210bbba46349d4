"""Logging set-up shared by every command: readable text, or one JSON object per line.

Log text often carries what devices and HTTP clients sent (a topic, a device id, a path), so both
formats escape control characters: a NUL, an ANSI escape or a line break in such a value shows as
``\\x00``, ``\\x1b``, ``\\n`` instead of corrupting the terminal or forging a log line. Tracebacks
keep their own line breaks (in JSON they end up as ``\\n`` inside one string anyway).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import TracebackType

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "escape_control", "redact_url"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators some viewers obey.
_CONTROL = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
            for code in _CONTROL}
_ESCAPES_KEEP_NEWLINES = {code: text for code, text in _ESCAPES.items() if code != ord("\n")}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def escape_control(text: str, *, keep_newlines: bool = False) -> str:
    """Return ``text`` with control characters written as escapes (``\\x00``, ``\\n`` …)."""
    return text.translate(_ESCAPES_KEEP_NEWLINES if keep_newlines else _ESCAPES)


class TextFormatter(logging.Formatter):
    """The human-readable format, with control characters in messages and exceptions escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_control(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 - logging's name
        return escape_control(super().formatException(ei), keep_newlines=True)


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # JSON would escape these too (as \u0000); escaping first keeps both formats alike.
            "message": escape_control(record.getMessage()),
            "pid": record.process,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = escape_control(self.formatException(record.exc_info), keep_newlines=True)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, log_format: str) -> None:
    """Send logs of ``level`` and above to stderr as ``text`` or ``json``."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, fit for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    login, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = login.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"
