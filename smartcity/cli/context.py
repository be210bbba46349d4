"""What the commands share: the stop signal, a database connection, JSON output."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click
import orjson
import psycopg

from smartcity.db.connect import connect, database_url
from smartcity.settings import Settings

__all__ = ["connect_database", "echo_json", "stop_event"]


def stop_event() -> threading.Event:
    """Return an event set by SIGINT or SIGTERM, so services can shut down cleanly."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        logging.getLogger("smartcity").info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (a command's --json output)."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def connect_database(settings: Settings) -> psycopg.Connection[Any]:
    """Open an autocommit connection for a command, or fail with a one-line CLI error."""
    try:
        return connect(database_url(settings), purpose="cli", autocommit=True)
    except psycopg.OperationalError as err:
        raise click.ClickException(f"cannot connect to the database: {err}") from None
