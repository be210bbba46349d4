"""The rollup refresher: keeps the 1-minute, hourly and daily rollups current (migration 006).

The database does the work (``smartcity_refresh_rollups``: one transaction per call, one refresher
at a time); this service calls it until no mark older than the catch-up is left, then sleeps
``interval_s``. Writers mark
the hours they touch in the readings' own transaction, so nothing here can miss a reading: a
refresher that dies mid-transaction leaves its marks in place for the next one.

The loop runs periodic jobs (``PeriodicJob``) on one connection: the refresh is one, and another
database chore on its own schedule is one more entry in the list. A transient database error
(connection lost, server restarting: ``ingest.write.classify_error``) drops the connection and
retries after a capped backoff; other errors are retried the same way, logged as errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ingest.metrics import RollupMetrics
from ingest.write import Failure, classify_error
from smartcity.db import database_url
from smartcity.db.connect import connect
from smartcity.db.queries import rollups as rollup_sql
from smartcity.db.retention import enforce_retention
from smartcity.settings import RollupSettings, Settings

__all__ = [
    "CatchUp", "PeriodicJob", "RefreshResult", "Refresher", "RollupService", "TimezoneRefused",
    "catch_up_once", "run_rollup",
]

log = logging.getLogger(__name__)

_BACKOFF_INITIAL_S = 0.5
_BACKOFF_MAX_S = 30.0
_LAG_WARNING_EVERY_S = 60.0  # while the lag stays above the bound, say so once a minute


class TimezoneRefused(ValueError):
    """The database refused the rollup time zone (not a whole number of hours from UTC)."""


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one or more refresh transactions did."""

    marks: int = 0  # pending (device, hour) marks claimed and let go
    minutes: int = 0  # 1-minute rollup rows written
    hours: int = 0
    days: int = 0
    skipped: int = 0  # hours older than the raw-retention horizon, left as they were
    rounds: int = 0  # refresh transactions that claimed something
    seconds: float = 0.0

    def plus(self, other: RefreshResult) -> RefreshResult:
        """Return the sum of two results."""
        return RefreshResult(self.marks + other.marks, self.minutes + other.minutes,
                             self.hours + other.hours, self.days + other.days,
                             self.skipped + other.skipped, self.rounds + other.rounds,
                             self.seconds + other.seconds)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready values."""
        return {"marks": self.marks, "minutes": self.minutes, "hours": self.hours, "days": self.days,
                "skipped": self.skipped, "rounds": self.rounds, "seconds": round(self.seconds, 3)}


class Refresher:
    """Calls the database's refresh functions on one connection of its own."""

    def __init__(self, url: str, settings: RollupSettings, metrics: RollupMetrics | None = None) -> None:
        self._url = url
        self.settings = settings
        self.metrics = metrics or RollupMetrics()
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """Return the open connection, connecting first if needed."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url, purpose="rollup", autocommit=True)
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def set_timezone(self) -> bool:
        """Keep the daily rollups in the configured zone; return whether they were rebuilt.

        Raises:
            TimezoneRefused: the database refuses the zone.
        """
        zone = self.settings.timezone
        started = time.monotonic()
        try:
            row = self.connection.execute(rollup_sql.SET_ROLLUP_TIMEZONE, (zone,)).fetchone()
        except psycopg.errors.InvalidParameterValue as err:
            raise TimezoneRefused(str(err).strip()) from None
        changed = bool(row and row[0])
        if changed:
            log.info("daily rollups rebuilt in %s from the hourly ones (%.1f s)", zone,
                     time.monotonic() - started)
        return changed

    def refresh(self) -> RefreshResult | None:
        """Run one refresh transaction; None if another refresher holds the lock."""
        started = time.monotonic()
        row = self.connection.execute(rollup_sql.REFRESH_ROLLUPS, (self.settings.max_marks,)).fetchone()
        seconds = time.monotonic() - started
        if row is None or row[0] is None:
            self.metrics.busy.inc()
            return None
        marks, minutes, hours, days, skipped = (int(v) for v in row)
        result = RefreshResult(marks, minutes, hours, days, skipped, 1 if marks else 0, seconds)
        if marks:
            self.metrics.observe(result)
        return result

    def catch_up(self, stop: threading.Event | None = None) -> RefreshResult | None:
        """Refresh until nothing older than the catch-up is pending; None if another refresher is at it.

        Each round commits on its own: what a round refreshed stays refreshed if a later one fails.
        Marks written during the catch-up are left to the next one: under a steady stream of
        writes, refreshing until none is left would never rest, costing the writers CPU for
        rollups that are only seconds fresher.
        """
        total = RefreshResult()
        started = time.monotonic()
        while stop is None or not stop.is_set():
            result = self.refresh()
            if result is None:
                return None if total.rounds == 0 else total
            total = total.plus(result)
            if result.marks == 0 or self.lag_s() < time.monotonic() - started:
                break
        if total.marks:
            log.info("rollups refreshed: %d marks, %d minutes, %d hours, %d days in %.2f s (%d rounds)%s",
                     total.marks, total.minutes, total.hours, total.days, total.seconds, total.rounds,
                     f"; {total.skipped} hours older than raw retention left alone" if total.skipped
                     else "")
        return total

    def lag_s(self) -> float:
        """Return how far the rollups trail the readings: the age of the oldest pending mark."""
        row = self.connection.execute(rollup_sql.ROLLUP_LAG_S).fetchone()
        lag = float(row[0]) if row else 0.0
        self.metrics.lag.set(lag)
        return lag


@dataclass
class PeriodicJob:
    """A database chore run every ``interval_s`` seconds by the service's loop."""

    name: str
    interval_s: float
    run: Callable[[], None]
    due: float = field(default=0.0)  # time.monotonic() of the next run; 0: at once


class RollupService:
    """The refresher as a long-running service: a loop of periodic jobs, robust to outages."""

    def __init__(self, url: str, settings: RollupSettings, metrics: RollupMetrics | None = None) -> None:
        self.settings = settings
        self.refresher = Refresher(url, settings, metrics)
        self.jobs: list[PeriodicJob] = [PeriodicJob("refresh", settings.interval_s, self._refresh)]
        self._lag_warned_at: float | None = None
        self._backoff = _BACKOFF_INITIAL_S
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Set the time zone, then run the jobs until ``stop`` is set.

        Raises:
            TimezoneRefused: the database refuses the configured zone (retrying will not help).
        """
        self._stop = stop
        try:
            while not stop.is_set():
                if self._attempt("time zone", self.refresher.set_timezone, stop):
                    break
            while not stop.is_set():
                now = time.monotonic()
                for job in self.jobs:
                    if now >= job.due and not stop.is_set() and self._attempt(job.name, job.run, stop):
                        job.due = time.monotonic() + job.interval_s
                next_due = min(job.due for job in self.jobs)
                stop.wait(max(0.0, next_due - time.monotonic()))
        finally:
            self.refresher.close()

    def _attempt(self, what: str, call: Callable[[], object], stop: threading.Event) -> bool:
        """Run ``call``; on a database error log it, wait the backoff and return False."""
        try:
            call()
        except TimezoneRefused:
            raise
        except psycopg.Error as err:
            failure = classify_error(err)
            self.refresher.metrics.errors.labels(failure.value).inc()
            level = logging.WARNING if failure is Failure.TRANSIENT else logging.ERROR
            log.log(level, "rollup %s failed (%s %s: %s); retrying in %.1f s", what, failure.value,
                    err.sqlstate or type(err).__name__, str(err).strip()[:200], self._backoff)
            self.refresher.close()  # the next attempt starts on a fresh connection
            stop.wait(self._backoff)
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)
            return False
        self._backoff = _BACKOFF_INITIAL_S
        return True

    def _refresh(self) -> None:
        """Catch up, then check the lag against its bound."""
        lag = self.refresher.lag_s()  # before the catch-up: how stale the rollups had become
        self.refresher.catch_up(self._stop)
        self._check_lag(lag)

    def _check_lag(self, lag: float) -> None:
        bound = self.settings.max_lag_s
        now = time.monotonic()
        if lag > bound:
            if self._lag_warned_at is None or now - self._lag_warned_at >= _LAG_WARNING_EVERY_S:
                log.warning("rollups lag the readings by %.0f s, more than SMARTCITY_ROLLUP__MAX_LAG_S"
                            " (%.0f s); queries stay exact (they read pending hours raw) but slower",
                            lag, bound)
                self._lag_warned_at = now
        elif self._lag_warned_at is not None:
            log.info("rollup lag back to %.1f s (bound %.0f s)", lag, bound)
            self._lag_warned_at = None


def run_rollup(settings: Settings, stop: threading.Event) -> None:
    """Keep the rollups current until ``stop`` is set (the `smartcity rollup` command).

    Raises:
        TimezoneRefused: the database refuses ``SMARTCITY_ROLLUP__TIMEZONE``.
        RetentionError: retention cannot run as configured.
    """
    config = settings.rollup
    service = RollupService(database_url(settings), config)
    if config.metrics_port:
        service.refresher.metrics.serve(config.metrics_host, config.metrics_port)
        log.info("rollup metrics at http://%s:%d/metrics", config.metrics_host, config.metrics_port)
    log.info("rollup refresher: a catch-up every %g s, days in %s, lag bound %g s", config.interval_s,
             config.timezone, config.max_lag_s)
    # Retention runs in the same loop, on the refresher's connection: it takes the refresher's lock
    # anyway, and dropping chunks between two refreshes keeps the two from waiting on each other.
    # It first runs right after the first refresh; a configuration it cannot carry out (compression
    # on the Apache edition: RetentionError) stops the service there, with the setting named.
    service.jobs.append(PeriodicJob("retention", settings.retention.interval_s,
                                    lambda: _enforce_retention(service.refresher.connection, settings)))
    service.run(stop)


def _enforce_retention(conn: psycopg.Connection[Any], settings: Settings) -> None:
    report = enforce_retention(conn, settings.retention)
    dropped = sum(len(table.drop) for table in report.tables)
    if dropped:
        log.info("retention dropped %d chunk(s); raw readings now start at %s", dropped, report.horizon)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What ``catch_up_once`` did."""

    timezone: str
    days_rebuilt: bool  # the zone changed, so every daily rollup was rebuilt
    refreshed: RefreshResult
    waited_s: float  # time spent waiting for another refresher to finish
    pending_after: int  # marks left (written meanwhile), normally 0

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready values."""
        return {"timezone": self.timezone, "days_rebuilt": self.days_rebuilt,
                **self.refreshed.to_dict(), "waited_s": round(self.waited_s, 3),
                "pending_after": self.pending_after}


def catch_up_once(url: str, settings: RollupSettings, stop: threading.Event,
                  metrics: RollupMetrics | None = None) -> CatchUp | None:
    """Set the time zone and refresh until nothing is pending; None if stopped before the end.

    Another refresher at work is waited for, so that the rollups are current on return.

    Raises:
        TimezoneRefused: the database refuses the zone.
        psycopg.Error: the database failed (each committed round stays committed).
    """
    refresher = Refresher(url, settings, metrics)
    try:
        rebuilt = refresher.set_timezone()
        total, waited = RefreshResult(), 0.0
        while True:
            if stop.is_set():
                return None
            started = time.monotonic()
            result = refresher.refresh()
            if result is None:  # another refresher holds the lock: its turn first
                stop.wait(0.2)
                waited += time.monotonic() - started
                continue
            total = total.plus(result)
            if result.marks == 0:
                break
        row = refresher.connection.execute(rollup_sql.PENDING_MARKS).fetchone()
        return CatchUp(settings.timezone, rebuilt, total, waited, int(row[0]) if row else 0)
    finally:
        refresher.close()
