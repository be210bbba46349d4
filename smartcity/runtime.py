"""Process-wide tuning that a long-running service applies once, at its entry point."""

from __future__ import annotations

import gc

__all__ = ["tune_garbage_collector"]


def tune_garbage_collector(thresholds: tuple[int, int, int]) -> None:
    """Freeze what exists now (modules, the app's objects) out of the cycle collector's sight and
    set its generation thresholds.

    A service allocates a few short-lived objects per message or request, nearly all freed by
    reference counting; at CPython's default young threshold (700) the collector runs many times a
    second, each run a pause for all work in flight. Each service picks its thresholds (measured).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
