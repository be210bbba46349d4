"""Embedded services: they start wherever the data directory is, keep their data, share one broker config."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres, free_port, mosquitto_base_config
from tests.logins import anonymous
from tests.mqtt import mqtt_publisher, publish
from tests.services import scratch_dir, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A 0700 directory, like /root or ``mktemp -d``: only its owner may enter it."""
    path = Path(tempfile.mkdtemp(prefix="smartcity-private-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the cluster moves only when root hands it to postgres")
def test_postgres_under_a_private_parent_keeps_its_cluster_outside_and_reuses_it(private_dir: Path) -> None:
    data_dir = private_dir / "paser" / ".smartcity" / "postgres"
    with scratch_dir("smartcity-clusters-") as cluster_root:
        server = EmbeddedPostgres(data_dir, free_port(), cluster_root=cluster_root)
        try:
            server.start()
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (n int)")
                conn.execute("INSERT INTO kept VALUES (42)")
            server.stop()
            home = server.home
            assert home.parent == cluster_root and home.name.startswith("paser-smartcity-post")
            assert (data_dir / "cluster-location").read_text().strip() == str(home)
            assert (home / "cluster" / "PG_VERSION").exists() and not (data_dir / "cluster").exists()
            assert (data_dir / "password").exists() and _mode(data_dir / "password") == 0o600

            again = EmbeddedPostgres(data_dir, free_port(), cluster_root=cluster_root)
            again.start()  # a second start finds the same cluster through the pointer
            with psycopg.connect(again.url) as conn:
                assert conn.execute("SELECT n FROM kept").fetchall() == [(42,)]
            assert again.cluster_dir == home / "cluster"
            assert sorted(p.name for p in cluster_root.iterdir()) == [home.name]
            again.stop()
        finally:
            server.stop("immediate")
    assert _mode(private_dir) == 0o700  # the user's folder was not opened up


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the cluster moves only when root hands it to postgres")
def test_a_deleted_private_data_dir_starts_afresh_and_its_old_cluster_is_set_aside(
        private_dir: Path) -> None:
    data_dir = private_dir / ".smartcity" / "postgres"
    with scratch_dir("smartcity-clusters-") as cluster_root:
        first = EmbeddedPostgres(data_dir, free_port(), cluster_root=cluster_root)
        first.initialise()
        old_home = first.home
        shutil.rmtree(private_dir / ".smartcity")  # the user throws the data away, password and all
        server = EmbeddedPostgres(data_dir, free_port(), cluster_root=cluster_root)
        server.start()  # a new password cannot open the old cluster: a new one is made
        try:
            with psycopg.connect(server.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop("immediate")
        assert server.home == old_home
        aside = [p for p in cluster_root.iterdir() if p.name.startswith(f"{old_home.name}.orphaned-")]
        assert len(aside) == 1 and (aside[0] / "cluster" / "PG_VERSION").exists()


@pytest.mark.slow
def test_postgres_keeps_its_cluster_in_a_reachable_data_dir() -> None:
    with scratch_dir("smartcity-open-") as root, scratch_dir("smartcity-clusters-") as cluster_root:
        server = EmbeddedPostgres(root / "postgres", free_port(), cluster_root=cluster_root)
        server.initialise()
        assert server.home == root / "postgres" and (root / "postgres" / "cluster" / "PG_VERSION").exists()
        assert not (root / "postgres" / "cluster-location").exists() and not any(cluster_root.iterdir())


def _retained(port: int, topic: str) -> bytes | None:
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: got.append(message.payload)
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        wait_until(lambda: got, timeout=5, message="retained message")
    except AssertionError:
        return None
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def _process_user(pid: int) -> str:
    uid = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:")))
    return pwd.getpwuid(uid).pw_name


@pytest.mark.slow
def test_mosquitto_under_a_private_parent_keeps_retained_messages_across_a_crash(private_dir: Path) -> None:
    data_dir = private_dir / "mosquitto"
    with scratch_dir("smartcity-homes-") as home_root:
        broker = EmbeddedMosquitto(data_dir, free_port(), home_root=home_root)
        broker.start()
        try:
            with mqtt_publisher(anonymous(broker)) as client:
                publish(client, "smartcity/v1/devices/aq-test-01/status", "online", retain=True)
            # The base config snapshots every second: the file appears without a clean stop.
            wait_until(lambda: (broker.home / "mosquitto.db").exists(), timeout=5,
                       message="persistence file")
            broker.kill()
            broker.start()
            assert _retained(broker.port, "smartcity/v1/devices/aq-test-01/status") == b"online"
            assert broker.pid is not None and _process_user(broker.pid) == broker.run_as
        finally:
            broker.stop()
        if os.geteuid() == 0:
            # The mosquitto user cannot enter the private folder: the broker's files live in a
            # home of their own, found again through the pointer on the second start.
            assert broker.run_as == "mosquitto" and broker.home.parent == home_root
            assert (data_dir / "broker-location").read_text().strip() == str(broker.home)
            assert not (data_dir / "mosquitto.db").exists()
        else:
            assert broker.home == data_dir
    assert _mode(private_dir) == 0o700


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the broker to the mosquitto user")
def test_persistence_left_in_a_private_data_dir_by_a_root_broker_is_carried_over(private_dir: Path) -> None:
    data_dir = private_dir / "mosquitto"
    with scratch_dir("smartcity-homes-") as first_root, scratch_dir("smartcity-homes-") as home_root:
        broker = EmbeddedMosquitto(data_dir, free_port(), home_root=first_root)
        broker.start()
        try:
            with mqtt_publisher(anonymous(broker)) as client:
                publish(client, "smartcity/v1/devices/aq-test-02/status", "online", retain=True)
        finally:
            broker.stop()  # a clean stop saves the persistence file
        # The layout of an earlier version: persistence in data_dir itself, owned by root.
        shutil.move(broker.home / "mosquitto.db", data_dir / "mosquitto.db")
        os.chown(data_dir / "mosquitto.db", 0, 0)
        (data_dir / "broker-location").unlink()
        again = EmbeddedMosquitto(data_dir, free_port(), home_root=home_root)
        again.start()
        try:
            assert again.home.parent == home_root and not (data_dir / "mosquitto.db").exists()
            assert _retained(again.port, "smartcity/v1/devices/aq-test-02/status") == b"online"
        finally:
            again.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the broker to the mosquitto user")
def test_mosquitto_started_as_root_runs_as_the_mosquitto_user_in_a_reachable_dir() -> None:
    with scratch_dir("smartcity-open-") as root, scratch_dir("smartcity-homes-") as home_root:
        data_dir = root / "mosquitto"
        data_dir.mkdir()
        # Persistence a root-run broker of an earlier version left: the new one must still read it.
        (data_dir / "mosquitto.log").write_text("old log\n")
        broker = EmbeddedMosquitto(data_dir, free_port(), home_root=home_root)
        broker.start()
        try:
            assert broker.pid is not None and _process_user(broker.pid) == "mosquitto"
            assert broker.home == data_dir and not any(home_root.iterdir())
            owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
            assert owner == "mosquitto" == pwd.getpwuid((data_dir / "mosquitto.log").stat().st_uid).pw_name
            wait_until(lambda: broker.pid_file.exists(), message="pid file written by the broker's user")
            assert int(broker.pid_file.read_text()) == broker.pid
        finally:
            broker.stop()


def _options(text: str) -> dict[str, str]:
    """Return a Mosquitto config's options (last value wins, as in Mosquitto's parser)."""
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            found[key] = value
    return found


def test_embedded_broker_config_is_its_listener_and_paths_then_the_shared_base() -> None:
    with scratch_dir("smartcity-mqtt-") as directory:
        broker = EmbeddedMosquitto(directory, 18830)
        broker.write_config()
        written = broker.config_file.read_text()
    assert mosquitto_base_config() in written
    own = _options(written.replace(mosquitto_base_config(), ""))
    # Without auth the embedded broker takes anonymous clients, as before; it says so itself,
    # because the shared base leaves logins to each deployment.
    assert "allow_anonymous" not in _options(mosquitto_base_config())
    assert set(own) == {"listener", "allow_anonymous", "persistence_location", "user", "pid_file",
                        "log_dest", "log_type", "log_timestamp_format"}
    assert own["listener"] == "18830 127.0.0.1" and own["allow_anonymous"] == "true"
    assert _options(written)["autosave_interval"] == _options(mosquitto_base_config())["autosave_interval"]


def test_autosave_settings_override_the_base(tmp_path: Path) -> None:
    broker = EmbeddedMosquitto(tmp_path / "mosquitto", 18830, autosave_interval=30,
                               autosave_on_changes=False, home_root=tmp_path / "homes")
    broker.write_config()
    options = _options(broker.config_file.read_text())
    assert (options["autosave_interval"], options["autosave_on_changes"]) == ("30", "false")


def test_compose_broker_includes_the_same_base_file() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    mounts = dict(re.findall(r"^\s*- \./([^:\s]+):(/mosquitto/config/[^:\s]+):ro$", compose, re.MULTILINE))
    docker_conf = _options((ROOT / "docker" / "mosquitto.conf").read_text())
    include_dir = docker_conf["include_dir"]
    assert mounts["docker/mosquitto.conf"] == "/mosquitto/config/mosquitto.conf"
    base_target = mounts["smartcity/mosquitto.conf"]
    assert base_target.startswith(include_dir + "/") and base_target.endswith(".conf")
    assert (ROOT / "smartcity" / "mosquitto.conf").read_text() == mosquitto_base_config()
    # One source: compose's own file holds only what differs per deployment (listener, paths, login).
    assert set(docker_conf) == {"listener", "use_username_as_clientid", "persistence_location", "log_dest",
                                "include_dir", "allow_anonymous", "password_file", "acl_file", "pid_file"}
    # Nothing of the base is repeated: logins are each deployment's own.
    assert set(docker_conf) & set(_options(mosquitto_base_config())) == set()


def test_compose_broker_config_runs_with_the_base_through_include_dir(tmp_path: Path) -> None:
    """Mosquitto reads docker/mosquitto.conf as compose mounts it (paths and port made local)."""
    from smartcity.services import find_mosquitto, port_is_open, wait_for_port

    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    shutil.copy(ROOT / "smartcity" / "mosquitto.conf", conf_dir / "platform.conf")
    port = free_port()
    text = (ROOT / "docker" / "mosquitto.conf").read_text()
    text = text.replace("listener 1883", f"listener {port} 127.0.0.1")
    text = text.replace("/mosquitto/data/", f"{tmp_path}/").replace("/mosquitto/config/conf.d", str(conf_dir))
    text = text.replace("/mosquitto/auth/", f"{tmp_path}/")
    (tmp_path / "mosquitto.conf").write_text(f"{text}user {pwd.getpwuid(os.geteuid()).pw_name}\n")
    # The files compose's broker-auth renders from the registry (tests/dashboards/test_compose.py
    # runs it); here one login and no rights.
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp_path / "passwords"), "smartcity", "pw"],
                   check=True, capture_output=True)
    (tmp_path / "acl").write_text("")
    process = subprocess.Popen([str(find_mosquitto()), "-c", str(tmp_path / "mosquitto.conf")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 10)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            # A CONNECT (v5) whose declared length is past max_packet_size from the base: refused.
            sock.sendall(bytes([0x10, 0x81, 0x80, 0x80, 0x01]))
            sock.settimeout(5)
            assert sock.recv(16) in (b"", b"\xe0\x00")  # disconnected: the base's limit applies
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert not port_is_open("127.0.0.1", port)
    assert "Error" not in output, output


def test_a_broker_with_auth_refuses_to_start_without_files_it_can_read() -> None:
    from smartcity.services import ServiceError

    with scratch_dir("smartcity-mqtt-auth-") as directory:
        auth = directory / "auth"
        auth.mkdir()
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), auth=auth)
        with pytest.raises(ServiceError, match="passwords, which does not exist: render it first"):
            broker.start()
        (auth / "passwords").write_text("")
        (auth / "acl").write_text("")
        if os.geteuid() == 0:
            for name in ("passwords", "acl"):
                (auth / name).chmod(0o600)  # root's own: the mosquitto user cannot read them
            with pytest.raises(ServiceError, match="runs as 'mosquitto' and cannot read .*passwords"):
                broker.start()
        assert not broker.is_running()
        config = broker.config_file.read_text()
    options = _options(config)
    assert options["allow_anonymous"] == "false" and options["acl_file"] == str(auth / "acl")
    # The client-id binding is a listener option: it must follow the (only) listener line.
    lines = [line for line in config.splitlines() if line and not line.startswith("#")]
    assert lines[:2] == [f"listener {broker.port} 127.0.0.1", "use_username_as_clientid true"]


def test_the_tls_listener_comes_from_settings_and_must_be_complete(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from smartcity.services import MosquittoTls, mosquitto_tls
    from smartcity.settings import EmbeddedSettings

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    embedded = EmbeddedSettings(mqtt_tls_port=18883, mqtt_tls_certfile=cert, mqtt_tls_keyfile=key)
    assert mosquitto_tls(embedded.mqtt_tls_port, embedded.mqtt_tls_certfile, embedded.mqtt_tls_keyfile,
                         embedded.mqtt_tls_cafile, embedded.mqtt_tls_host) == MosquittoTls(18883, cert, key)
    assert mosquitto_tls(None, None, None) is None
    with pytest.raises(ValidationError, match="MQTT_TLS_PORT needs SMARTCITY_EMBEDDED__MQTT_TLS_CERTFILE"):
        EmbeddedSettings(mqtt_tls_port=18883, mqtt_tls_certfile=cert)
    with pytest.raises(ValidationError, match="must differ"):
        EmbeddedSettings(mqtt_port=1883, mqtt_tls_port=1883, mqtt_tls_certfile=cert, mqtt_tls_keyfile=key)
    broker = EmbeddedMosquitto(tmp_path / "mosquitto", 18830, tls=MosquittoTls(18883, cert, key),
                               auth=tmp_path / "auth", home_root=tmp_path / "homes")
    broker.write_config()
    lines = [line for line in broker.config_file.read_text().splitlines() if line and line[0] != "#"]
    tls_at = lines.index("listener 18883 127.0.0.1")
    assert lines[tls_at + 1:tls_at + 4] == [f"certfile {cert}", f"keyfile {key}",
                                            "use_username_as_clientid true"]
