"""`smartcity up` as a user runs it: embedded services, demo fleet, readings in the API, clean stop;
a killed child comes back by itself and loses nothing; a crash loop stops the platform."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from ingest.rollup import catch_up_once
from smartcity.broker_url import BrokerAddress
from smartcity.credentials import derive_password
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, embedded_postgres_url, free_port, port_is_open
from smartcity.settings import RollupSettings, SupervisorSettings
from smartcity.supervisor import RestartBackoff
from tests.ingest.rollups import assert_rollups_equal_raw
from tests.logins import BrokerLogins, connack, login_url
from tests.mqtt import TelemetryStream, mqtt_publisher, publish
from tests.services import scratch_dir, wait_until

pytestmark = pytest.mark.slow


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env.update({
        "SMARTCITY_EMBEDDED__DATA_DIR": str(data_dir),
        "SMARTCITY_EMBEDDED__POSTGRES_PORT": str(ports["pg"]),
        "SMARTCITY_EMBEDDED__MQTT_PORT": str(ports["mqtt"]),
        "SMARTCITY_API__PORT": str(ports["api"]),
        "SMARTCITY_SIMULATOR__INTERVAL_S": "1",
        "SMARTCITY_INGEST__METRICS_PORT": str(ports["metrics"]),
        "SMARTCITY_ROLLUP__METRICS_PORT": str(ports.get("rollup", 0)),
        "SMARTCITY_ALERTS__METRICS_PORT": str(ports.get("alerts", 0)),
    })
    return subprocess.Popen([sys.executable, "-m", "smartcity", "up"], env=env, cwd=data_dir.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _latest(api: str, device_id: str, data_dir: Path) -> dict:
    """The device's latest values, asked with the operator key `up` leaves in the data directory."""
    key_file = data_dir / "api-key"
    if not key_file.exists():
        return {}
    headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
    try:
        response = httpx.get(f"{api}/devices/{device_id}/latest", timeout=2, headers=headers)
    except httpx.TransportError:
        return {}
    return response.json()["metrics"] if response.status_code == 200 else {}


def _rollup_metrics(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return ""


def _connack(port: int, username: str | None, password: str | None) -> str:
    """Connect to the broker on ``port`` with a login (or none); return the CONNACK's reason."""
    return str(connack(BrokerAddress("127.0.0.1", port, username, password), timeout=10))


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return output.decode(errors="replace")


def test_up_serves_simulated_readings_stops_cleanly_and_keeps_data() -> None:
    ports = {"pg": free_port(), "mqtt": free_port(), "api": free_port(), "metrics": free_port(),
             "rollup": free_port()}
    api = f"http://127.0.0.1:{ports['api']}/api/v1"
    with scratch_dir("smartcity-up-") as root:
        data_dir = root / ".smartcity"
        process = _start(data_dir, ports)
        try:
            try:
                first = wait_until(lambda: _latest(api, "aq-tanah-grogot-01", data_dir), timeout=60,
                                   interval=0.5, message="simulated readings in the API")
            except AssertionError as err:
                # Seen once or twice in a full run and not reproduced alone: keep what `up` said.
                raise AssertionError(f"{err}\n--- smartcity up said:\n{_stop(process)}") from None
            health = httpx.get(f"{api}/health", timeout=2).json()
            metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=2).text
            rollup_metrics = wait_until(lambda: _rollup_metrics(ports["rollup"]), timeout=30,
                                        message="rollup refresher's metrics")
            own = derive_password((data_dir / "fleet-secret").read_bytes().strip(), "aq-kuaro-01")
            logins = {
                "anonymous": _connack(ports["mqtt"], None, None),
                "fleet device": _connack(ports["mqtt"], "aq-kuaro-01", own),
                "wrong password": _connack(ports["mqtt"], "aq-kuaro-01", "not-its-password"),
                "ingest's name": _connack(ports["mqtt"], "smartcity-ingest-1", "guess"),
            }
        finally:
            output = _stop(process)
        assert process.returncode == 0, output
        # Logins only: the broker takes a fleet device's own (derived) password and nothing else.
        assert logins == {"anonymous": "Not authorized", "fleet device": "Success",
                          "wrong password": "Not authorized", "ingest's name": "Not authorized"}
        assert ("broker logins: the registry's devices and smartcity-ingest-1, smartcity-api-1,"
                " smartcity-alerts-1") in output
        assert set(first) == {"pm25", "pm10", "co", "no2", "o3", "so2", "hc"}
        assert health == {"status": "ok", "database": "ok", "broker": "ok"}
        assert "smartcity_ingest_readings_stored_total" in metrics
        assert "smartcity_rollup_lag_seconds" in rollup_metrics
        assert f"127.0.0.1:{ports['api']}" in output and f"127.0.0.1:{ports['mqtt']}" in output
        assert not any(port_is_open("127.0.0.1", port) for port in ports.values())

        process = _start(data_dir, ports)
        try:
            wait_until(lambda: _latest(api, "aq-tanah-grogot-01", data_dir), timeout=60, interval=0.5,
                       message="API back after restart")
            url = embedded_postgres_url(data_dir / "postgres", ports["pg"])
            with psycopg.connect(url) as conn:
                kept = conn.execute(
                    "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device"
                    " WHERE d.device_id = 'aq-tanah-grogot-01' AND r.time = %s",
                    (datetime.fromisoformat(first["pm25"]["time"]),),
                ).fetchone()[0]
                # Ingest writes, the API reads and the evaluator judges through their own logins; the
                # refresher is the owner.
                sessions = set(conn.execute(
                    "SELECT application_name, usename FROM pg_stat_activity"
                    " WHERE application_name IN ('smartcity-ingest', 'smartcity-api', 'smartcity-rollup',"
                    " 'smartcity-alerts')"
                ).fetchall())
        finally:
            output = _stop(process)
        assert process.returncode == 0, output
        assert kept == 7  # the first run's reading of every pollutant survived the restart
        assert sessions == {("smartcity-ingest", "smartcity_ingest_login"),
                            ("smartcity-api", "smartcity_api_login"), ("smartcity-rollup", "smartcity"),
                            ("smartcity-alerts", "smartcity_alerts_login")}
        for login in ("smartcity_ingest_login", "smartcity_api_login", "smartcity_alerts_login"):
            assert oct((data_dir / "postgres" / f"{login}.password").stat().st_mode & 0o777) == "0o600"


def test_up_uses_external_services_when_urls_are_given(
        database_url: str, db: psycopg.Connection, mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins) -> None:
    with scratch_dir("smartcity-up-ext-") as root:
        env = {**_external_env(database_url, mosquitto, broker_login),
               "SMARTCITY_SIMULATOR__INTERVAL_S": "1"}
        process = subprocess.Popen([sys.executable, "-m", "smartcity", "up"], env=env, cwd=root,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] > 0,
                       timeout=60, interval=0.5, message="readings in the external database")
        finally:
            output = _stop(process)
        assert process.returncode == 0, output
        assert not (root / ".smartcity").exists()  # no embedded service was started
        assert "postgres listening" not in output and "mosquitto listening" not in output
    assert mosquitto.is_running()


def test_backoff_doubles_to_its_cap_and_resets_after_a_stable_run() -> None:
    backoff = RestartBackoff(SupervisorSettings(backoff_initial_s=1, backoff_max_s=30, stable_after_s=60,
                                                max_restarts=100, restart_window_s=60))
    delays = [backoff.after_crash(now=float(t), ran_for=0.5) for t in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.after_crash(now=100.0, ran_for=60.0) == 1  # it had run stably: start over
    assert backoff.after_crash(now=101.0, ran_for=0.5) == 2


def test_more_crashes_than_allowed_within_the_window_is_a_crash_loop() -> None:
    backoff = RestartBackoff(SupervisorSettings(max_restarts=3, restart_window_s=10))
    assert [backoff.after_crash(now=t, ran_for=0.1) for t in (0.0, 1.0, 2.0)] == [1, 2, 4]
    assert backoff.after_crash(now=9.0, ran_for=0.1) is None  # a 4th crash within 10 s
    spaced = RestartBackoff(SupervisorSettings(max_restarts=3, restart_window_s=10))
    assert all(spaced.after_crash(now=t * 11.0, ran_for=0.1) is not None for t in range(10))


class _Output:
    """Read a child's output in a thread, so a test can wait on what it logged while it runs."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def pids(self, name: str) -> list[int]:
        """Return the pids ``up`` logged for child ``name``, in start order."""
        return [int(pid) for pid in re.findall(rf"started {name} \(pid (\d+)\)", self.text)]

    def finish(self, timeout: float = 60) -> str:
        self.process.wait(timeout)
        self._thread.join(timeout)
        return self.text


def _external_env(database_url: str, broker: EmbeddedMosquitto, logins: BrokerLogins) -> dict[str, str]:
    """The environment of an `up` on external services with authentication, as an operator sets
    it: a broker URL without a login, an account of its own for ingest, the API and the alert
    evaluator, and a fleet secret, with which `up` registers the demo devices so each logs in as
    itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env.update({
        "SMARTCITY_DATABASE_URL": database_url,
        "SMARTCITY_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "SMARTCITY_INGEST__MQTT_URL": login_url(logins("ingest", broker)),
        "SMARTCITY_API__MQTT_URL": login_url(logins("api", broker)),
        "SMARTCITY_ALERTS__MQTT_URL": login_url(logins("alerts", broker)),
        "SMARTCITY_SIMULATOR__FLEET_SECRET": uuid.uuid4().hex,
        "SMARTCITY_API__PORT": str(free_port()),
        "SMARTCITY_INGEST__METRICS_PORT": "0",
        "SMARTCITY_ROLLUP__METRICS_PORT": "0",
        "SMARTCITY_ALERTS__METRICS_PORT": "0",
    })
    return env


def _external_up(env_extra: dict[str, str], database_url: str, broker: EmbeddedMosquitto,
                 logins: BrokerLogins, cwd: Path) -> tuple[subprocess.Popen[bytes], _Output]:
    env = {**_external_env(database_url, broker, logins), "SMARTCITY_SIMULATOR__INTERVAL_S": "5",
           **env_extra}
    process = subprocess.Popen([sys.executable, "-m", "smartcity", "up"], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, _Output(process)


STREAM_DEVICES = [f"river-up-{i:02d}" for i in range(5)]


def _stream_stored(db: psycopg.Connection) -> tuple[int, int]:
    return db.execute(
        "SELECT count(*), count(DISTINCT (r.device, r.metric, r.time)) FROM readings r"
        " JOIN devices d ON d.id = r.device WHERE d.device_id = ANY(%s)", (STREAM_DEVICES,),
    ).fetchone()


def test_up_restarts_a_killed_ingest_worker_and_every_acked_reading_is_stored_once(
        database_url: str, db: psycopg.Connection, fresh_mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins, tmp_path: Path) -> None:
    for device_id in [*STREAM_DEVICES, "river-up-probe"]:
        register_device(db, device_id, "river_level_sensor", "tanah-grogot")
    gateway = broker_login("gateway", fresh_mosquitto)
    process, output = _external_up({}, database_url, fresh_mosquitto, broker_login, tmp_path)
    try:
        first_pid = wait_until(lambda: output.pids("ingest"), timeout=60, message="ingest started")[0]
        # A probe reading stored proves the worker's subscription exists: from then on the
        # broker keeps every QoS 1 message for its session, also while the worker is dead.
        # Probes sent before it subscribed had no subscriber; so probe until one is stored.
        with mqtt_publisher(gateway) as client:
            def probe_stored() -> bool:
                publish(client, "smartcity/v1/devices/river-up-probe/telemetry",
                        '{"metrics": {"water_level": 1}}')
                return db.execute("SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device"
                                  " WHERE d.device_id = 'river-up-probe'").fetchone()[0] > 0
            wait_until(probe_stored, timeout=60, interval=0.5, message="probe stored")
        stream = TelemetryStream(broker_login("gateway", fresh_mosquitto), STREAM_DEVICES, count=3000,
                                 rate=500).start()
        wait_until(lambda: _stream_stored(db)[0] > 500, timeout=30, message="stream flowing")
        os.kill(first_pid, signal.SIGKILL)
        restarted = wait_until(lambda: output.pids("ingest")[1:], timeout=30, message="ingest restarted")
        assert stream.sent < stream.count  # the restart happened while the stream was still flowing
        stream.finish()
        wait_until(lambda: _stream_stored(db)[0] >= 3000, timeout=60, interval=0.2,
                   message="every streamed reading stored")
        assert _stream_stored(db) == (3000, 3000)  # every PUBACKed reading once: none lost, none twice
        assert process.poll() is None and fresh_mosquitto.is_running()  # the platform stayed up
    finally:
        process.send_signal(signal.SIGINT)
        text = output.finish()
    assert process.returncode == 0, text
    assert restarted[0] != first_pid
    assert f"ingest (pid {first_pid}) was killed by SIGKILL; restarting it in 1.0 s" in text
    assert text.count("started api (pid") == 1 and text.count("started simulator (pid") == 1
    assert text.count("started rollup (pid") == 1


def test_up_runs_the_rollup_refresher_and_restarts_it_after_a_kill(
        database_url: str, db: psycopg.Connection, mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins, tmp_path: Path) -> None:
    db.execute("TRUNCATE rollup_pending, rollup_1m, rollup_1h, rollup_1d, retention_horizon")
    process, output = _external_up({"SMARTCITY_SIMULATOR__INTERVAL_S": "1",
                                    "SMARTCITY_ROLLUP__INTERVAL_S": "0.5"},
                                   database_url, mosquitto, broker_login, tmp_path)

    def minutes() -> int:
        return int(db.execute("SELECT count(*) FROM rollup_1m").fetchone()[0])

    try:
        first_pid = wait_until(lambda: output.pids("rollup"), timeout=60, message="rollup started")[0]
        wait_until(minutes, timeout=60, interval=0.5, message="simulated readings rolled up")
        os.kill(first_pid, signal.SIGKILL)
        killed_at = db.execute("SELECT now()").fetchone()[0]
        wait_until(lambda: output.pids("rollup")[1:], timeout=30, message="rollup restarted")
        # The simulator reports every second: the restarted refresher rolls up readings newer
        # than the kill.
        wait_until(lambda: db.execute("SELECT max(last_time) > %s FROM rollup_1m", (killed_at,)
                                      ).fetchone()[0], timeout=60, interval=0.5,
                   message="rollups after the restart")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGINT)
        text = output.finish()
    assert process.returncode == 0, text
    assert f"rollup (pid {first_pid}) was killed by SIGKILL; restarting it in 1.0 s" in text
    assert "stopped rollup" in text
    # Whatever the kill interrupted is still marked: one catch-up and the rollups equal raw.
    done = catch_up_once(database_url, RollupSettings(metrics_port=0), threading.Event())
    assert done is not None and done.pending_after == 0
    assert_rollups_equal_raw(db)


def test_up_stops_with_status_1_and_says_why_when_a_child_crash_loops(
        database_url: str, mosquitto: EmbeddedMosquitto, broker_login: BrokerLogins,
        tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        # A real fault, no mock: the ingest worker cannot serve its metrics on a taken port and
        # exits 1 each time it is started.
        process, output = _external_up({
            "SMARTCITY_INGEST__METRICS_PORT": str(taken.getsockname()[1]),
            "SMARTCITY_SUPERVISOR__BACKOFF_INITIAL_S": "0.2",
            "SMARTCITY_SUPERVISOR__MAX_RESTARTS": "2",
            "SMARTCITY_SUPERVISOR__RESTART_WINDOW_S": "60",
        }, database_url, mosquitto, broker_login, tmp_path)
        try:
            text = output.finish(timeout=90)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1, text
    assert len(output.pids("ingest")) == 3  # started, restarted twice, then given up
    assert re.search(r"ingest \(pid \d+\) exited with status 1; restarting it in 0\.2 s", text), text
    assert re.search(r"ingest \(pid \d+\) exited with status 1; restarting it in 0\.4 s", text), text
    assert "more than 2 crashes within 60 s, a crash loop; stopping the platform" in text
    assert "stopped api" in text and "stopped simulator" in text
    assert mosquitto.is_running()  # an external broker is not ours to stop


def test_up_restarts_its_embedded_broker_after_a_crash_and_readings_flow_again() -> None:
    ports = {"pg": free_port(), "mqtt": free_port(), "api": free_port(), "metrics": free_port()}
    api = f"http://127.0.0.1:{ports['api']}/api/v1"
    with scratch_dir("smartcity-up-broker-") as root:
        data_dir = root / ".smartcity"
        process = _start(data_dir, ports)
        output = _Output(process)
        try:
            first = wait_until(lambda: _latest(api, "aq-tanah-grogot-01", data_dir), timeout=60,
                               interval=0.5,
                               message="simulated readings in the API")
            pid = int(wait_until(lambda: re.search(r"mosquitto listening on \S+ \(pid (\d+)", output.text),
                                 message="broker pid logged").group(1))
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: re.findall(r"mosquitto listening on \S+ \(pid (\d+)", output.text)[1:],
                       timeout=30, message="broker restarted")
            # The simulator and ingest reconnect by themselves: newer readings reach the API.
            wait_until(lambda: _latest(api, "aq-tanah-grogot-01", data_dir).get("pm25", {}).get("time", "")
                       > first["pm25"]["time"], timeout=60, interval=0.5, message="readings after the crash")
            assert process.poll() is None
        finally:
            process.send_signal(signal.SIGINT)
            text = output.finish()
        assert process.returncode == 0, text
        assert f"mosquitto (pid {pid}) was killed by SIGKILL; restarting it in 1.0 s" in text
        assert not any(port_is_open("127.0.0.1", port) for port in ports.values())
