"""TLS to the device broker: the real `telemetry ingest` through a real Mosquitto that speaks
only TLS and requires a client certificate, with a CA and certificates the test makes.

The broker is this module's own (a second Mosquitto on a free port, the stack's binary), so
the stack's plain listener is untouched; Kafka is the stack's.
"""

from __future__ import annotations

import getpass
import json
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Message

from plumbing.settings import tls_context
from plumbing.topics import RAW
from schemas.codec import default_codec
from stack.debian import installed_binary
from tests.support.components import Component, free_port
from tests.support.kafka_helpers import consume_until, end_offsets
from tests.support.tls import Certificates, make_certificates

pytestmark = pytest.mark.timeout(180)
PREFIX = f"it-tls-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class TlsBroker:
    port: int
    certs: Certificates


@pytest.fixture(scope="module")
def tls_broker(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsBroker]:
    binary = installed_binary("mosquitto")  # installed by the stack fixture (stack_env)
    assert binary is not None, "the local stack installs mosquitto"
    folder = tmp_path_factory.mktemp("tls-broker")
    certs = make_certificates(folder / "certs")
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"  # as root, Mosquitto would drop to a user that cannot
        # read the test's files
        f"listener {port} 127.0.0.1\n"
        f"cafile {certs.ca}\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
        "require_certificate true\nallow_anonymous true\npersistence false\n"
        f"log_dest file {folder / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    (folder / "mosquitto.log").read_text(errors="replace")
                    if (folder / "mosquitto.log").exists() else "mosquitto did not start")
                time.sleep(0.1)
        yield TlsBroker(port, certs)
    finally:
        proc.terminate()
        proc.wait(10)


def tls_client(broker: TlsBroker, context: ssl.SSLContext) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{PREFIX}-{uuid.uuid4()}",
                         protocol=mqtt.MQTTv5)
    client.tls_set_context(context)
    return client


def test_ingest_reads_a_tls_broker_that_requires_a_client_certificate(
    tls_broker: TlsBroker, stack_env: dict[str, str], tmp_path: Path
) -> None:
    certs = tls_broker.certs
    health = free_port()
    ingest = Component(["ingest"], {
        **stack_env,
        "TELEMETRY_MQTT_PORT": str(tls_broker.port),
        "TELEMETRY_MQTT_TLS": "true",
        "TELEMETRY_MQTT_TLS_CA_FILE": str(certs.ca),
        "TELEMETRY_MQTT_TLS_CERT_FILE": str(certs.client_cert),
        "TELEMETRY_MQTT_TLS_KEY_FILE": str(certs.client_key),
        "TELEMETRY_MQTT_CLIENT_ID": f"{PREFIX}-ingest",
        "TELEMETRY_MQTT_SHARED_GROUP": f"{PREFIX}-ingest",
        "TELEMETRY_MQTT_TELEMETRY_FILTER": f"{PREFIX}/+/telemetry",
        "TELEMETRY_MQTT_METADATA_FILTER": f"{PREFIX}/+/metadata",
        "TELEMETRY_MQTT_SESSION_EXPIRY_S": "60",
        "TELEMETRY_INGEST_HEALTH_PORT": str(health),
        "TELEMETRY_LOG_FORMAT": "json",
    }, tmp_path, health)
    start = end_offsets(stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"], [RAW])
    ingest.start()  # ready means connected and subscribed: over TLS, with its certificate
    try:
        device = f"{PREFIX}-dev"
        publisher = tls_client(tls_broker, tls_context(
            str(certs.ca), str(certs.client_cert), str(certs.client_key), None))
        publisher.connect("127.0.0.1", tls_broker.port)
        publisher.loop_start()
        info = publisher.publish(f"{PREFIX}/{device}/telemetry",
                                 json.dumps({"seq": 1, "metrics": {"temperature": 21.5}}), qos=1)
        info.wait_for_publish(10)
        publisher.loop_stop()
        publisher.disconnect()

        def mine(m: Message) -> bool:
            return m.key() == device.encode()

        got = consume_until(stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"], [RAW],
                            lambda ms: len(ms) >= 1, timeout=30, keep=mine, start=start)
        assert len(got) == 1, ingest.tail()
        record = default_codec().decode(got[0].value() or b"")
        assert record["device_id"] == device and record["seq"] == 1
        assert record["metrics"] == [{"name": "temperature", "value": 21.5, "unit": None}]
    finally:
        assert ingest.stop() == 0, ingest.tail()


def connects(broker: TlsBroker, context: ssl.SSLContext) -> bool:
    """Whether a client with `context` gets the broker's CONNACK within 5 s."""
    client = tls_client(broker, context)
    accepted = threading.Event()
    client.on_connect = lambda *args: accepted.set()
    try:
        client.connect("127.0.0.1", broker.port)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    try:
        return accepted.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_the_broker_refuses_a_client_without_a_certificate_and_ours_refuse_a_stranger(
    tls_broker: TlsBroker,
) -> None:
    certs = tls_broker.certs
    ca, cert, key = str(certs.ca), str(certs.client_cert), str(certs.client_key)
    assert connects(tls_broker, tls_context(ca, cert, key, None))  # the control
    assert not connects(tls_broker, tls_context(ca, None, None, None))  # no certificate
    # The broker's certificate is not signed by the CA we were told to trust: no connection.
    other = tls_client(tls_broker, tls_context(str(certs.other_ca), cert, key, None))
    with pytest.raises(ssl.SSLCertVerificationError):
        other.connect("127.0.0.1", tls_broker.port)
