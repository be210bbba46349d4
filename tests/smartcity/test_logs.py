"""Structured logs: one JSON object per line with the fields a log shipper needs."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from smartcity.logs import JsonFormatter, TextFormatter, configure_logging, escape_control, redact_url


def test_json_lines_carry_time_level_logger_message_and_extras() -> None:
    record = logging.makeLogRecord({
        "name": "ingest.pipeline", "levelno": logging.WARNING, "levelname": "WARNING",
        "msg": "batch of %d messages not stored", "args": (12,), "created": 1764208800.25,
        "device_id": "aq-kuaro-01",
    })
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["time"] == "2025-11-27T02:00:00.250+00:00"
    assert entry["level"] == "warning" and entry["logger"] == "ingest.pipeline"
    assert entry["message"] == "batch of 12 messages not stored"
    assert entry["device_id"] == "aq-kuaro-01"


def test_exceptions_are_kept_in_one_line() -> None:
    try:
        raise ValueError("bad payload")
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad payload" in orjson.loads(line)["exception"]


def _record(msg: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "api.errors", "levelno": logging.ERROR, "levelname": "ERROR",
                                  "msg": msg, "args": args, "exc_info": exc_info})


@pytest.mark.parametrize(("raw", "escaped"), [
    ("aq\x00kuaro", "aq\\x00kuaro"),
    ("\x1b[2J", "\\x1b[2J"),
    ("line\nforged INFO line", "line\\nforged INFO line"),
    ("cr\rtab\tdel\x7f", "cr\\rtab\\tdel\\x7f"),
    ("c1\x85sep\u2028end", "c1\\x85sep\\u2028end"),
    ("kecamatan Tanah Grogot — µg/m³", "kecamatan Tanah Grogot — µg/m³"),  # printable text untouched
])
def test_control_characters_are_escaped_in_text_and_json(raw: str, escaped: str) -> None:
    assert escape_control(raw) == escaped
    text = TextFormatter("%(levelname)s %(name)s: %(message)s").format(_record("GET %s failed", raw))
    assert text == f"ERROR api.errors: GET {escaped} failed"
    line = JsonFormatter().format(_record("GET %s failed", raw))
    assert orjson.loads(line)["message"] == f"GET {escaped} failed"
    assert "\n" not in text and "\n" not in line


def test_tracebacks_keep_their_lines_but_escape_the_rest() -> None:
    try:
        raise ValueError("device \x00\x1b[31m")
    except ValueError:
        record = _record("failed", exc_info=sys.exc_info())
    text = TextFormatter().format(record)
    assert text.count("\n") >= 3  # a readable multi-line traceback
    assert "ValueError: device \\x00\\x1b[31m" in text and "\x00" not in text and "\x1b" not in text
    entry = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: device \\x00\\x1b[31m" in entry["exception"]


def test_configure_logging_installs_the_escaping_formatters() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for log_format, formatter in (("text", TextFormatter), ("json", JsonFormatter)):
            configure_logging("INFO", log_format)
            assert isinstance(root.handlers[0].formatter, formatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://smartcity:s3cr%40t@127.0.0.1:55432/smartcity",
     "postgresql://smartcity:***@127.0.0.1:55432/smartcity"),
    ("mqtt://ingest:p:w@broker:1883", "mqtt://ingest:***@broker:1883"),
    ("mqtt://ingest@broker:1883", "mqtt://ingest@broker:1883"),
    ("mqtt://broker:1883", "mqtt://broker:1883"),
])
def test_urls_are_logged_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
