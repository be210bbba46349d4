"""Broker URLs: what parses to what, what is refused and how, and what a paho client is given."""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from smartcity.broker_url import BrokerAddress, BrokerUrlError, apply_address, parse_broker_url, tls_context
from smartcity.settings import Settings, load_settings


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://broker.example", BrokerAddress("broker.example", 1883)),
    ("mqtt://broker.example:1884", BrokerAddress("broker.example", 1884)),
    ("tcp://10.0.0.5", BrokerAddress("10.0.0.5", 1883)),
    ("mqtt://[::1]:1885/", BrokerAddress("::1", 1885)),
    ("MQTT://Broker.Example", BrokerAddress("broker.example", 1883)),
    ("mqtts://broker.example", BrokerAddress("broker.example", 8883, tls=True)),
    ("mqtts://broker.example:443", BrokerAddress("broker.example", 443, tls=True)),
    ("mqtt://ingest@h", BrokerAddress("h", 1883, "ingest", None)),
    ("mqtt://ingest:@h", BrokerAddress("h", 1883, "ingest", "")),
    ("mqtt://ingest:s3cret@h:1", BrokerAddress("h", 1, "ingest", "s3cret")),
    # Percent-decoding: @ : / % and non-ASCII in the login survive the trip through a URL.
    ("mqtt://in%40gest:p%40ss%3Aw%2Frd%25%20x@h", BrokerAddress("h", 1883, "in@gest", "p@ss:w/rd% x")),
    ("mqtt://kota:s%C3%A9cr%C3%A9t@h", BrokerAddress("h", 1883, "kota", "sécrét")),
])
def test_urls_parse_to_addresses(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(("url", "message"), [
    ("http://broker.example", "must start with mqtt:// or mqtts://"),
    ("ws://broker.example:9001", "not ws"),
    ("broker.example:1883", "must start with mqtt://"),
    ("", "not nothing"),
    ("mqtt://", "names no host"),
    ("mqtt://:1883", "names no host"),
    ("mqtt://user:pw@", "names no host"),
    ("mqtt://h:0", "port must be 1-65535"),
    ("mqtt://h:65536", "out of range"),
    ("mqtt://h:port", "could not be cast"),
    ("mqtt://h:1883/smartcity", "no path or query"),
    ("mqtt://h:1883?tls=1", "no path or query"),
    ("mqtt://[::1", "malformed"),
])
def test_bad_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(BrokerUrlError, match=message):
        parse_broker_url(url)


def test_errors_and_the_printable_form_never_show_the_password() -> None:
    with pytest.raises(BrokerUrlError) as caught:
        parse_broker_url("mqtt://ingest:hunter2@:1883")
    assert "hunter2" not in str(caught.value) and "ingest:***@" in str(caught.value)
    address = parse_broker_url("mqtts://in%40gest:hunter2@h")
    assert str(address) == address.url == "mqtts://in%40gest:***@h:8883"
    assert "hunter2" not in repr(address.url)


def test_a_ca_file_needs_mqtts_and_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    assert parse_broker_url("mqtts://h", ca).ca_file == ca
    with pytest.raises(BrokerUrlError, match="only used with mqtts://"):
        parse_broker_url("mqtt://h", ca)
    with pytest.raises(BrokerUrlError, match="does not exist"):
        parse_broker_url("mqtts://h", tmp_path / "missing.pem")


def test_settings_use_the_same_parser_and_name_the_key(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtts://ingest:p%40ss@broker.example")
    settings = load_settings()
    assert settings.broker == BrokerAddress("broker.example", 8883, "ingest", "p@ss", tls=True)

    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtt://ingest:hunter2@broker.example:99999")
    with pytest.raises(ValidationError, match="SMARTCITY_MQTT_URL.*out of range") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)  # not in the message, not as the input value either

    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtt://broker.example")
    monkeypatch.setenv("SMARTCITY_MQTT_CA_FILE", str(tmp_path / "ca.pem"))
    with pytest.raises(ValidationError, match="SMARTCITY_MQTT_CA_FILE.*only used with mqtts"):
        load_settings()


def test_the_embedded_broker_needs_no_login() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.broker == BrokerAddress("127.0.0.1", settings.embedded.mqtt_port)


def test_apply_address_sets_login_and_tls_on_a_paho_client() -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, parse_broker_url("mqtts://ingest:p%40ss@h"))
    assert (client.username, client.password) == ("ingest", "p@ss")
    assert client._ssl_context is not None  # paho has no public getter; TLS on is what matters

    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    device.username_pw_set("river-01", "own")
    apply_address(device, parse_broker_url("mqtt://ingest:p%40ss@h"), credentials=False)
    assert (device.username, device.password) == ("river-01", "own")
    assert device._ssl_context is None


def test_tls_contexts_verify_the_broker_and_are_shared_per_address() -> None:
    address = parse_broker_url("mqtts://h")
    context = tls_context(address)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert tls_context(parse_broker_url("mqtts://h")) is context  # a fleet shares one
