"""Serve the API with uvicorn until SIGINT or SIGTERM, then return."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn

from api.app import create_app
from smartcity.runtime import tune_garbage_collector
from smartcity.settings import Settings

__all__ = ["ApiStartError", "run_api"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Young-generation collections every 700 allocations ran many times a second under load, each a
# pause for every request in flight; the app's objects live as long as the process (frozen below).
_GC_THRESHOLDS = (50_000, 20, 100)


class ApiStartError(RuntimeError):
    """The server could not start (port taken, startup failed); details are in the log."""


class _Server(uvicorn.Server):
    """A uvicorn server that treats SIGINT/SIGTERM as "stop and return".

    uvicorn re-raises a caught signal after a graceful shutdown so that a plain script dies of
    it; a caller that starts other services too wants control back instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_api(settings: Settings) -> None:
    """Serve the API on ``settings.api.host:port`` until SIGINT or SIGTERM.

    Raises:
        ApiStartError: the server did not start, e.g. the port is in use.
    """
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # use the process's logging set-up, like every other service
        lifespan="on",
        # Named, not "auto": a missing install fails at start instead of silently serving on
        # h11 and the stock asyncio loop, which bench api measured slower.
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=5,
        # The client's address (the rate limits' key without an API key) is the socket peer, unless
        # the peer is a listed proxy: then uvicorn takes it from X-Forwarded-For. uvicorn's own
        # default trusts 127.0.0.1, so that any local process could name any client: off unless set.
        proxy_headers=bool(settings.api.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.api.forwarded_allow_ips),
    )
    server = _Server(config)
    where = f"{settings.api.host}:{settings.api.port}"
    try:
        tune_garbage_collector(_GC_THRESHOLDS)
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind or startup fails
        raise ApiStartError(f"the API could not start on {where}") from exc
    if not server.started:
        raise ApiStartError(f"the API could not start on {where}")
