"""The broker enforces who is who: a device (username = its id) publishes only to its own
topics and subscribes to nothing, ingest reads but never writes, the fleet writes but never
reads (stack/mqtt_access.py). Against the local stack's real Mosquitto."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from stack.local_stack import LocalStack
from stack.mosquitto import connack_code
from stack.mqtt_access import DynsecAdmin

NOT_AUTHORIZED = 135


class Client:
    """An MQTT v5 client that records SUBACK and PUBACK reason codes and what it receives."""

    def __init__(self, stack: LocalStack, username: str, password: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._acks: dict[int, int] = {}
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"idt-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect("127.0.0.1", stack.mosquitto.port)
        self.client.loop_start()
        assert connected.wait(10), f"{username} could not connect"

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.received.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def _on_subscribe(self, c: Any, u: Any, mid: int, codes: Any, props: Any) -> None:
        with self._cond:
            self._acks[mid] = codes[0].value
            self._cond.notify_all()

    def _on_publish(self, c: Any, u: Any, mid: int, code: Any, props: Any) -> None:
        with self._cond:
            self._acks[mid] = code.value
            self._cond.notify_all()

    def _ack(self, mid: int) -> int:
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, 10), "no answer from broker"
            return self._acks.pop(mid)

    def subscribe(self, topic_filter: str) -> int:
        """The SUBACK reason code (0..2 granted QoS, 135 not authorized)."""
        _, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None
        return self._ack(mid)

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK reason code (0 accepted, 135 not authorized)."""
        return self._ack(self.client.publish(topic, payload, qos=1).mid)

    def payloads(self, wait_s: float, want: int | None = None) -> list[bytes]:
        """What arrived after up to `wait_s` seconds (less once `want` messages are in)."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while time.monotonic() < deadline and (want is None or len(self.received) < want):
                self._cond.wait(deadline - time.monotonic())
            return [p for _, p in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture()
def devices(local_stack: LocalStack) -> Iterator[dict[str, str]]:
    """Two provisioned devices with ids of this run: id -> password."""
    run = uuid.uuid4().hex[:8]
    made = {f"idt-{run}-a": secrets.token_urlsafe(12), f"idt-{run}-b": secrets.token_urlsafe(12)}
    with DynsecAdmin(local_stack.mosquitto.port, local_stack.creds) as admin:
        for device_id, password in made.items():
            admin.add_device(device_id, password)
        yield made
        for device_id in made:
            admin.remove_device(device_id)


@pytest.fixture()
def ingest(local_stack: LocalStack) -> Iterator[Client]:
    c = Client(local_stack, local_stack.creds.mqtt_ingest_username,
               local_stack.creds.mqtt_ingest_password)
    yield c
    c.close()


def test_a_device_publishes_its_own_telemetry_and_metadata(
    local_stack: LocalStack, devices: dict[str, str], ingest: Client
) -> None:
    a = next(iter(devices))
    assert ingest.subscribe(f"devices/{a}/telemetry") == 1
    assert ingest.subscribe(f"devices/{a}/metadata") == 1
    device = Client(local_stack, a, devices[a])
    try:
        assert device.publish(f"devices/{a}/telemetry", b'{"metrics": {"t": 1}}') == 0
        assert device.publish(f"devices/{a}/metadata", b'{"site": "s1"}') == 0
        got = ingest.payloads(10, want=2)
        assert sorted(got) == [b'{"metrics": {"t": 1}}', b'{"site": "s1"}']
    finally:
        device.close()


def test_a_device_cannot_publish_as_another_device(
    local_stack: LocalStack, devices: dict[str, str], ingest: Client
) -> None:
    a, b = devices
    assert ingest.subscribe("devices/+/telemetry") == 1
    assert ingest.subscribe("devices/+/metadata") == 1
    device = Client(local_stack, a, devices[a])
    try:
        marker = uuid.uuid4().hex.encode()
        for topic in (f"devices/{b}/telemetry", f"devices/{b}/metadata",
                      f"devices/{a}/other", f"devices/{a}/telemetry/extra", f"fake/{a}/telemetry"):
            assert device.publish(topic, marker) == NOT_AUTHORIZED, topic
        # the same client's own telemetry still goes through, and only it arrives
        assert device.publish(f"devices/{a}/telemetry", b"own " + marker) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"own " + marker not in ingest.payloads(0.2):
            pass
        mine = [p for p in ingest.payloads(1) if marker in p]
        assert mine == [b"own " + marker]
    finally:
        device.close()


def test_a_device_subscribes_to_nothing_and_cannot_join_the_ingest_share(
    local_stack: LocalStack, devices: dict[str, str], ingest: Client
) -> None:
    a, b = devices
    group = f"telemetry-ingest-idt-{uuid.uuid4().hex[:6]}"
    share = f"$share/{group}/devices/+/telemetry"
    assert ingest.subscribe(share) == 1
    device = Client(local_stack, a, devices[a])
    fleet = Client(local_stack, local_stack.creds.mqtt_fleet_username,
                   local_stack.creds.mqtt_fleet_password)
    try:
        for topic_filter in ("#", "devices/#", "devices/+/telemetry", f"devices/{b}/telemetry",
                             f"devices/{a}/telemetry", share,
                             "$share/telemetry-ingest/devices/+/telemetry", "$SYS/#",
                             "$CONTROL/dynamic-security/#"):
            assert device.subscribe(topic_filter) == NOT_AUTHORIZED, topic_filter
        # Had the device joined the share, the broker would hand it (and lose) half of these.
        sent = [f"{i}-{uuid.uuid4().hex}".encode() for i in range(20)]
        for payload in sent:
            assert fleet.publish(f"devices/{b}/telemetry", payload) == 0
        assert sorted(ingest.payloads(15, want=len(sent))) == sorted(sent)
        assert device.payloads(0.5) == []
    finally:
        device.close()
        fleet.close()


def test_ingest_reads_but_never_writes_and_the_fleet_writes_but_never_reads(
    local_stack: LocalStack, ingest: Client
) -> None:
    creds = local_stack.creds
    assert ingest.subscribe("$share/telemetry-ingest/devices/+/telemetry") == 1
    assert ingest.subscribe("devices/+/metadata") == 1
    assert ingest.subscribe("#") == NOT_AUTHORIZED
    assert ingest.publish(f"devices/idt-{uuid.uuid4().hex[:6]}/telemetry", b"{}") == NOT_AUTHORIZED
    fleet = Client(local_stack, creds.mqtt_fleet_username, creds.mqtt_fleet_password)
    try:
        for topic_filter in ("#", "devices/+/telemetry",
                             "$share/telemetry-ingest/devices/+/telemetry"):
            assert fleet.subscribe(topic_filter) == NOT_AUTHORIZED, topic_filter
        assert fleet.publish("elsewhere/topic/at/all", b"x") == NOT_AUTHORIZED
    finally:
        fleet.close()


def test_a_device_logs_in_only_with_its_own_password(
    local_stack: LocalStack, devices: dict[str, str]
) -> None:
    port = local_stack.mosquitto.port
    a, b = devices
    assert connack_code(port, a, devices[a]) == 0
    assert connack_code(port, a, devices[b]) in {5, 135}
    assert connack_code(port, f"idt-never-provisioned-{uuid.uuid4().hex[:6]}", devices[a]) in {
        5, 135}
    with DynsecAdmin(port, local_stack.creds) as admin:
        admin.remove_device(a)
        assert connack_code(port, a, devices[a]) in {5, 135}
        with pytest.raises(ValueError):
            admin.add_device(local_stack.creds.mqtt_ingest_username, "x")
        with pytest.raises(ValueError):
            admin.add_device("a/+/b", "x")


def test_stack_device_add_prints_a_password_the_broker_accepts(local_stack: LocalStack) -> None:
    device_id = f"idt-cli-{uuid.uuid4().hex[:8]}"
    port = local_stack.mosquitto.port

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "plumbing.cli", "stack", "device", *args],
                              capture_output=True, text=True, timeout=60)

    added = cli("add", device_id)
    assert added.returncode == 0, added.stderr
    [password] = [line.split(": ", 1)[1] for line in added.stdout.splitlines()
                  if line.startswith("password: ")]
    try:
        assert connack_code(port, device_id, password) == 0
    finally:
        removed = cli("remove", device_id)
    assert removed.returncode == 0, removed.stderr
    assert connack_code(port, device_id, password) in {5, 135}
    refused = cli("add", local_stack.creds.mqtt_fleet_username)
    assert refused.returncode == 1 and "stack's own MQTT users" in refused.stderr
