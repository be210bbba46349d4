"""Run an embedded broker's logins from the registry: its files rendered, then kept in step.

One function, for everything that runs an ``EmbeddedMosquitto(..., auth=DIR)``: ``smartcity up``
and the test fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from smartcity.broker.authfiles import broker_group
from smartcity.broker.sync import BrokerAuthSync, sync_once
from smartcity.db.connect import connect
from smartcity.logs import redact_url
from smartcity.services import EmbeddedMosquitto, ServiceError

__all__ = ["serve_broker_auth"]


@contextmanager
def serve_broker_auth(database_url: str, broker: EmbeddedMosquitto, *,
                      timeout: float = 10.0) -> Iterator[BrokerAuthSync]:
    """Render ``broker``'s password and ACL files from the registry and keep them in step.

    On entry the files in ``broker.auth`` hold the registry's logins, so the broker can be started
    (or restarted) inside the block; a ``BrokerAuthSync`` thread then rewrites them on every change
    the database notifies and reloads the broker (SIGHUP) while it runs. The broker itself is
    neither started nor stopped here. Yields the sync (``changes``, ``last_change``).

    Raises:
        ValueError: the broker was made without ``auth`` (it would take anonymous clients).
        psycopg.OperationalError: the database is unreachable.
        ServiceError: the sync did not start listening within ``timeout`` seconds.
    """
    if broker.auth is None:
        raise ValueError(f"the broker on port {broker.port} takes anonymous clients; "
                         "make it with EmbeddedMosquitto(..., auth=DIR) to run its logins")
    gid = broker_group()
    # Rendered here first, so the broker can start at once and the thread's first render, finding
    # nothing changed, does not signal a broker that may not be running yet.
    with connect(database_url, purpose="broker-sync", autocommit=True) as conn:
        sync_once(conn, broker.auth, gid)
    sync = BrokerAuthSync(database_url, broker.auth, broker.reload, gid=gid)
    sync.start()
    try:
        if not sync.wait_listening(timeout):
            raise ServiceError(f"the sync of {broker.auth} did not start listening within {timeout:.0f} s; "
                               f"is the database at {redact_url(database_url)} reachable?")
        yield sync
    finally:
        sync.stop()
