"""Ingest workers for tests: in this process (``running_worker``), or as real child processes
(`python -m smartcity ingest`, ``IngestProcess``) for fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ingest.pipeline import IngestWorker
from smartcity.broker_url import BrokerAddress, parse_broker_url
from smartcity.services import free_port
from smartcity.settings import IngestSettings
from tests.logins import login_url
from tests.services import wait_until


@contextmanager
def running_worker(database_url: str, broker: BrokerAddress | str,
                   settings: IngestSettings) -> Iterator[IngestWorker]:
    """Run an ingest worker in this process until the block ends; yield it once it is connected."""
    address = parse_broker_url(broker) if isinstance(broker, str) else broker
    worker = IngestWorker(database_url, address, settings)
    worker.start()
    try:
        wait_until(lambda: worker.subscriber.connected, message="worker connected")
        yield worker
    finally:
        worker.stop()


def ingest_settings(login: BrokerAddress, **overrides: object) -> IngestSettings:
    """Return a worker's settings for an ``ingest`` login: the login is its client id (the broker
    binds the two), in a share group of its own unless ``overrides`` say otherwise."""
    if login.username is None:
        raise ValueError("an ingest worker needs its own login (an ingest account)")
    values: dict[str, object] = {"share_group": f"g{uuid.uuid4().hex[:8]}", **overrides}
    return IngestSettings(client_id=login.username, **values)  # type: ignore[arg-type]


class IngestProcess:
    """One `smartcity ingest` child with its own broker login, so its own client id (the broker
    binds it to the login), and its own metrics port.

    Restarting it (``kill`` or ``stop``, then ``start``) logs in with the same account and so
    resumes the same persistent session.
    """

    def __init__(self, database_url: str, broker: BrokerAddress, share_group: str,
                 log_path: Path) -> None:
        if broker.username is None:
            raise ValueError("an ingest process needs its own login (an ingest account)")
        self.log_path = log_path
        self.metrics_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
        self.env.update({
            "SMARTCITY_DATABASE_URL": database_url,
            # The shared URL names the broker; the worker logs in with its own, as `smartcity up` runs it.
            "SMARTCITY_MQTT_URL": f"mqtt://{broker.host}:{broker.port}",
            "SMARTCITY_INGEST__MQTT_URL": login_url(broker),
            "SMARTCITY_INGEST__CLIENT_ID": broker.username,
            "SMARTCITY_INGEST__SHARE_GROUP": share_group,
            "SMARTCITY_INGEST__METRICS_PORT": str(self.metrics_port),
            "SMARTCITY_INGEST__BATCH_MAX_AGE_MS": "50",
        })
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> IngestProcess:
        """Start the worker and wait until it is connected to the broker."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "smartcity", "ingest"],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.metric("smartcity_ingest_broker_connected") == 1.0, timeout=20,
                   message="ingest process connected")
        return self

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Return one sample of the worker's /metrics, or None when unreachable or absent."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and (labels is None or sample.labels == labels):
                    return sample.value
        return None

    def kill(self) -> None:
        """Kill the worker with SIGKILL: no flush, no ack, no goodbye."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30) -> int:
        """Stop the worker with SIGTERM (flush, commit, ack, disconnect); return its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)
