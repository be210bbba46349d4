"""Structured logs: one JSON object per line with the fields a log shipper needs."""

from __future__ import annotations

import logging

import orjson

from smartcity.logs import JsonFormatter


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
        import sys

        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad payload" in orjson.loads(line)["exception"]
