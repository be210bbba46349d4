"""One reading the whole way: MQTT client → ingest worker → TimescaleDB → HTTP API.

With authentication on, as the platform runs: the device logs in with the credentials its
registration gave it, the worker with an ingest account, the API's broker client with an api one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg

from api import create_app
from ingest.pipeline import IngestWorker
from smartcity.apikeys import Scope, create_key
from smartcity.contract import telemetry_topic
from smartcity.devices import register_device
from smartcity.settings import ApiSettings, IngestSettings, Settings
from tests.api.client import TestClient
from tests.logins import BrokerLogins, login_url
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until


def test_a_published_reading_comes_back_from_the_api(
        database_url: str, db: psycopg.Connection, broker_login: BrokerLogins) -> None:
    registration = register_device(db, "river-kandilo-01", "river_level_sensor", "tanah-grogot")
    device_login = broker_login.device("river-kandilo-01", registration.mqtt_password)
    ingest_login, api_login = broker_login("ingest"), broker_login("api")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    local_time = at.astimezone(timezone(timedelta(hours=8))).isoformat()  # WITA, as a device sends
    utc_time = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    tag = uuid.uuid4().hex[:8]
    worker = IngestWorker(database_url, ingest_login,
                          IngestSettings(client_id=str(ingest_login.username), share_group=f"e2e{tag}"))
    worker.start()
    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        mqtt_url=f"mqtt://127.0.0.1:{api_login.port}",
                        api=ApiSettings(mqtt_url=login_url(api_login)))
    try:
        wait_until(lambda: worker.subscriber.connected, message="worker connected")
        with mqtt_publisher(device_login) as device:
            publish(device, telemetry_topic("river-kandilo-01"),
                    b'{"ts": "%s", "metrics": {"water_level": 2.41}}' % local_time.encode())
        reader = create_key(db, Scope.READ, "e2e").key
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {reader}"}) as api:
            def latest() -> dict:
                body = api.get("/api/v1/devices/river-kandilo-01/latest").json()
                return body if body["metrics"] else {}

            body = wait_until(latest, message="reading visible in the API")
    finally:
        worker.stop()
    assert body == {
        "device_id": "river-kandilo-01",
        "metrics": {"water_level": {"value": 2.41, "time": utc_time, "unit": "m"}},
    }
