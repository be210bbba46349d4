"""Measure what Mosquitto's persistence settings keep across a broker crash, and what they cost.

Scenario (issue #7): the ingest worker is down (its persistent session holds the queue), devices
publish N QoS 1 messages and get every PUBACK, then the broker is SIGKILLed and restarted. The
worker's session reconnects and counts what survived. Each setting runs ``--repeat`` times back to
back; the medians are printed. A second figure is the cost: how fast the broker PUBACKs an
unthrottled stream while the queue grows (every snapshot writes the whole queue).

    .venv/bin/python scripts/broker_crash_loss.py --setting interval=30 --setting interval=1 \\
        --setting changes=1000 --messages 4000 --rate 1000 --repeat 3

Not part of the test suite: it takes minutes and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.services import EmbeddedMosquitto, free_port

TOPIC = "smartcity/v1/devices/{}/telemetry"
SESSION_ID = "crash-loss-ingest"


def _broker(data_dir: Path, port: int, setting: str) -> EmbeddedMosquitto:
    """The embedded broker with one autosave setting: ``interval=SECONDS`` or ``changes=N``."""
    kind, _, value = setting.partition("=")
    if kind not in ("interval", "changes"):
        raise SystemExit(f"--setting {setting!r}: expected interval=SECONDS or changes=N")
    return EmbeddedMosquitto(data_dir, port, autosave_interval=int(value),
                             autosave_on_changes=kind == "changes")


def _session(port: int) -> tuple[mqtt.Client, list[bytes]]:
    """Connect the stand-in worker's persistent session; return it and what it receives."""
    received: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=SESSION_ID, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: received.append(message.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    connected = threading.Event()
    client.on_connect = lambda c, u, flags, rc, p: connected.set()
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError("session did not connect")
    return client, received


def _publish(port: int, count: int, rate: float, window: int = 1000) -> float:
    """Publish ``count`` QoS 1 messages at ``rate`` (0: at once); return seconds until all PUBACKed.

    At most ``window`` messages are unconfirmed at a time: paho holding hundreds of thousands
    queued stalled in trials, and devices do not publish that way either.
    """
    free = threading.Semaphore(window)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.on_publish = lambda c, u, mid, rc, p: free.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.monotonic()
    for i in range(count + window):
        if not free.acquire(timeout=60):
            raise RuntimeError("broker stopped acknowledging")
        if i >= count:
            continue  # the last ``window`` acquisitions wait for the last PUBACKs
        client.publish(TOPIC.format(f"dev-{i % 50:02d}"), b'{"n": %d}' % i, qos=1)
        if rate and (delay := start + (i + 1) / rate - time.monotonic()) > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


def _drain(received: list[bytes], quiet: float = 2.0, timeout: float = 120) -> int:
    """Wait until no message arrived for ``quiet`` seconds; return how many distinct arrived."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(received) != seen:
            seen, since = len(received), time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return len(set(received))


def run_once(setting: str, count: int, rate: float) -> dict[str, float]:
    """One crash: publish with the worker away, SIGKILL the broker, restart, count survivors."""
    directory = Path(tempfile.mkdtemp(prefix="crash-loss-"))
    try:
        broker = _broker(directory, free_port(), setting)
        broker.start()
        session, _ = _session(broker.port)
        subscribed = threading.Event()
        session.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        session.subscribe(TOPIC.format("+"), qos=1)
        if not subscribed.wait(10):  # the session keeps the subscription once SUBACKed
            raise RuntimeError("no SUBACK")
        session.disconnect()
        session.loop_stop()
        seconds = _publish(broker.port, count, rate)
        broker.kill()  # right after the last PUBACK: the worst moment
        broker.start()
        session, received = _session(broker.port)
        survived = _drain(received)
        session.disconnect()
        session.loop_stop()
        broker.stop()
        return {"published": count, "survived": survived, "lost": count - survived,
                "publish_s": round(seconds, 2), "publish_rate": round(count / seconds)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", required=True,
                        help="interval=SECONDS or changes=N (autosave_on_changes); repeatable")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000, help="msg/s; 0: as fast as possible")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for setting in args.setting:
        runs = [run_once(setting, args.messages, args.rate) for _ in range(args.repeat)]
        summary = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(json.dumps({"setting": setting, "rate": args.rate, "median": summary, "runs": runs}),
              flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
