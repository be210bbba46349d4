"""Health checks of the platform's containers (docker-compose.yml): exit 0 healthy, 1 not, with a reason.

  healthcheck.py http URL         the URL answers 2xx (the API's /api/v1/health is 503 while the
                                  database or the broker is down)
  healthcheck.py metric URL NAME [--min X] [--max X]
                                  a Prometheus sample of the service's own metrics lies in [min, max]
  healthcheck.py fleet-online [--url-env VAR]
                                  some simulated device's retained status is `online` (its Last Will
                                  turns it `offline`), read at the broker of the URL in VAR
                                  (SMARTCITY_MQTT_URL by default; compose gives the monitor account's)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import urllib.error
import urllib.request

_TIMEOUT_S = 5.0


def check_http(url: str) -> str | None:
    """Return why ``url`` is unhealthy, or None when it answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as answer:
            return None if 200 <= answer.status < 300 else f"{url} answered {answer.status}"
    except urllib.error.HTTPError as err:
        return f"{url} answered {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"{url}: {err}"


def check_metric(url: str, name: str, low: float | None, high: float | None) -> str | None:
    """Return why the sample ``name`` at ``url`` is missing or out of [low, high], or None."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return f"{url}: {err}"
    # A sample line: the name, optional {labels}, a space and the value.
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)", text, re.MULTILINE)
    if match is None:
        return f"{url} has no sample {name}"
    value = float(match.group(1))
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{name} is {value:g}, outside [{low}, {high}]"
    return None


def check_fleet_online(url_env: str = "SMARTCITY_MQTT_URL") -> str | None:
    """Return why no simulated device is online at the broker of the URL in ``url_env``, or None."""
    import paho.mqtt.client as mqtt

    from smartcity.broker_url import apply_address, parse_broker_url
    from smartcity.contract import status_topic

    if not os.environ.get(url_env):
        return f"the environment variable {url_env} is unset or empty"
    address = parse_broker_url(os.environ[url_env])
    online = threading.Event()
    refused: list[str] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    apply_address(client, address)

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode,
                   properties: object) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            online.set()  # ends the wait: a refused login is unhealthy at once
        else:
            c.subscribe(status_topic("+"), qos=0)

    client.on_connect = on_connect
    client.on_message = lambda c, u, message: message.payload == b"online" and online.set()
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError as err:
        return f"broker {address.host}:{address.port}: {err}"
    client.loop_start()
    try:
        if not online.wait(_TIMEOUT_S):
            return "no device's retained status is online"
        return f"broker {address} refused the login: {refused[0]}" if refused else None
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    """Run one check; print its reason and return 1 when it fails."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    checks = parser.add_subparsers(dest="check", required=True)
    http = checks.add_parser("http")
    http.add_argument("url")
    metric = checks.add_parser("metric")
    metric.add_argument("url")
    metric.add_argument("name")
    metric.add_argument("--min", type=float, default=None)
    metric.add_argument("--max", type=float, default=None)
    fleet = checks.add_parser("fleet-online")
    fleet.add_argument("--url-env", default="SMARTCITY_MQTT_URL",
                       help="The environment variable holding the broker URL (login included).")
    args = parser.parse_args(argv)
    if args.check == "http":
        reason = check_http(args.url)
    elif args.check == "metric":
        reason = check_metric(args.url, args.name, args.min, args.max)
    else:
        reason = check_fleet_online(args.url_env)
    if reason is not None:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
