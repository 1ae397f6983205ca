"""The real `telemetry ingest` process between the real Mosquitto and the real Kafka.

Isolation: other tests may run ingest pods on the same broker at the same time. Each ingest
started here has its own client id and shared-subscription group, and (except the contract
topic test) listens under a topic prefix of its own (`it-<uuid>/+/telemetry`). So it sees only
this module's messages, duplicates nobody else's traffic into Kafka, and a record this module
finds on Kafka can only have come from the ingest under test. Every device id is a fresh uuid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from plumbing.topics import DLQ, METADATA, RAW
from schemas.codec import default_codec
from tests.support.components import Component, free_port

pytestmark = pytest.mark.timeout(300)
codec = default_codec()
RUN = uuid.uuid4().hex[:10]
PREFIX = f"it-ingest-{RUN}"


# --- helpers --------------------------------------------------------------------------------

def ingest_env(stack_env: dict[str, str], name: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **stack_env,
        "TELEMETRY_MQTT_CLIENT_ID": f"{PREFIX}-{name}",
        "TELEMETRY_MQTT_SHARED_GROUP": f"{PREFIX}-{name}",
        "TELEMETRY_MQTT_TELEMETRY_FILTER": f"{PREFIX}/+/telemetry",
        "TELEMETRY_MQTT_METADATA_FILTER": f"{PREFIX}/+/metadata",
        "TELEMETRY_MQTT_SESSION_EXPIRY_S": "120",  # the test sessions do not outlive the run
        "TELEMETRY_INGEST_HEALTH_PORT": str(port),
        "TELEMETRY_LOG_FORMAT": "json",
        "TELEMETRY_LOG_LEVEL": "INFO",
        **extra,
    }


class KafkaTail:
    """Reads a topic from its current end: only what is produced after construction."""

    def __init__(self, topic: str, bootstrap: str) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"{PREFIX}-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        })
        meta = self.consumer.list_topics(topic, timeout=20)
        partitions = []
        for p in meta.topics[topic].partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)
            partitions.append(TopicPartition(topic, p, high))
        self.consumer.assign(partitions)

    def collect(
        self, wanted: Callable[[Message], bool], done: Callable[[list[Message]], bool],
        timeout: float = 60.0,
    ) -> list[Message]:
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(found):
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if wanted(msg):
                found.append(msg)
        return found

    def close(self) -> None:
        self.consumer.close()


def key_in(ids: set[str]) -> Callable[[Message], bool]:
    encoded = {i.encode() for i in ids}
    return lambda msg: msg.key() in encoded


class Publisher:
    def __init__(self, stack_env: dict[str, str]) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"{PREFIX}-pub-{uuid.uuid4().hex[:6]}")
        # the fleet's user: ingest's may not publish (stack/mqtt_access.py)
        self.client.username_pw_set(stack_env["TELEMETRY_SIMULATE_MQTT_USERNAME"],
                                    stack_env["TELEMETRY_SIMULATE_MQTT_PASSWORD"])
        self.client.connect(stack_env["TELEMETRY_MQTT_HOST"],
                            int(stack_env["TELEMETRY_MQTT_PORT"]))
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=20)
        assert info.is_published(), f"broker did not acknowledge {topic!r}"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def session_present(stack_env: dict[str, str], client_id: str) -> bool:
    """Whether the broker holds a session for `client_id` (the probe leaves none behind)."""
    flags: list[bool] = []
    connected = threading.Event()
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                        client_id=client_id, reconnect_on_failure=False)
    probe.username_pw_set(stack_env["TELEMETRY_MQTT_USERNAME"],
                          stack_env["TELEMETRY_MQTT_PASSWORD"])

    def on_connect(c: mqtt.Client, u: object, f: mqtt.ConnectFlags, rc: object,
                   p: object) -> None:
        flags.append(f.session_present)
        connected.set()

    probe.on_connect = on_connect
    probe.connect(stack_env["TELEMETRY_MQTT_HOST"], int(stack_env["TELEMETRY_MQTT_PORT"]),
                  clean_start=False)  # no Session Expiry property: the session ends with us
    probe.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
    finally:
        probe.disconnect()
        probe.loop_stop()
    return flags[0]


def metric(component: Component, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.M)
    m = pattern.search(component.metrics())
    return float(m.group(1)) if m else 0.0


def wait_for(check: Callable[[], bool], what: str, component: Component,
             timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{component.tail()}")


def readyz(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except OSError:
        return ""


def header_map(msg: Message) -> dict[str, bytes]:
    pairs = msg.headers() or []
    assert isinstance(pairs, list)
    return {k: v for k, v in pairs if isinstance(v, bytes)}


def value_of(msg: Message) -> dict[str, Any]:
    value = msg.value()
    assert value is not None, "a tombstone where a record was expected"
    return codec.decode(value)


def key_of(msg: Message) -> str:
    key = msg.key()
    assert key is not None
    return key.decode() if isinstance(key, bytes) else str(key)


def without_receive_time(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "received_at_ms"}


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ingest(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Component]:
    port = free_port()
    component = Component(["ingest"], ingest_env(stack_env, "main", port),
                          tmp_path_factory.mktemp("ingest-main"), port).start()
    yield component
    assert component.stop() == 0, component.tail()


@pytest.fixture
def publisher(stack_env: dict[str, str]) -> Iterator[Publisher]:
    pub = Publisher(stack_env)
    yield pub
    pub.close()


@pytest.fixture
def raw(stack_env: dict[str, str]) -> Iterator[KafkaTail]:
    tail = KafkaTail(RAW, stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"])
    yield tail
    tail.close()


@pytest.fixture
def dlq(stack_env: dict[str, str]) -> Iterator[KafkaTail]:
    tail = KafkaTail(DLQ, stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"])
    yield tail
    tail.close()


@pytest.fixture
def metadata(stack_env: dict[str, str]) -> Iterator[KafkaTail]:
    tail = KafkaTail(METADATA, stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"])
    yield tail
    tail.close()


# --- (a) readings -----------------------------------------------------------------------------

def test_single_and_batch_payloads_arrive_as_raw_readings_with_key_and_headers(
    ingest: Component, publisher: Publisher, raw: KafkaTail
) -> None:
    single_id = f"thermo-ü-{uuid.uuid4().hex}"
    batch_id = f"batch-{uuid.uuid4().hex}"
    before_ms = int(time.time() * 1000)
    publisher.publish(f"{PREFIX}/{single_id}/telemetry", json.dumps({
        "ts": 1763701200123, "seq": 42,
        "metrics": {"temperature": {"value": 70.7, "unit": "degF"}, "humidity": 41.5,
                    "count": 7}}))
    publisher.publish(f"{PREFIX}/{batch_id}/telemetry", json.dumps([
        {"ts": "2025-11-21T05:00:00Z", "seq": 1, "metrics": {"a": 1}},
        {"seq": 2, "metrics": {"b": True, "c": "on"}},
        {"ts": 1.5, "seq": "x", "metrics": {"d": [1, 2], "e": {"value": 2, "unit": "kW"}}},
    ]))

    found = raw.collect(key_in({single_id, batch_id}), lambda f: len(f) >= 4)
    by_device: dict[str, list[Message]] = {}
    for msg in found:
        by_device.setdefault(key_of(msg), []).append(msg)

    [single] = by_device[single_id]
    assert without_receive_time(value_of(single)) == {
        "device_id": single_id, "ts": 1763701200123, "seq": 42,
        "metrics": [{"name": "temperature", "value": 70.7, "unit": "degF"},
                    {"name": "humidity", "value": 41.5, "unit": None},
                    {"name": "count", "value": 7, "unit": None}]}
    # One key, one partition: the batch keeps its order.
    batch = [value_of(m) for m in by_device[batch_id]]
    assert [without_receive_time(r) for r in batch] == [
        {"device_id": batch_id, "ts": "2025-11-21T05:00:00Z", "seq": 1,
         "metrics": [{"name": "a", "value": 1, "unit": None}]},
        {"device_id": batch_id, "ts": None, "seq": 2,
         "metrics": [{"name": "b", "value": True, "unit": None},
                     {"name": "c", "value": "on", "unit": None}]},
        {"device_id": batch_id, "ts": "1.5", "seq": '"x"',
         "metrics": [{"name": "d", "value": "[1,2]", "unit": None},
                     {"name": "e", "value": 2, "unit": "kW"}]},
    ]
    for msg in found:
        record = value_of(msg)
        headers = header_map(msg)
        assert re.fullmatch(rb"[0-9a-f]{32}", headers["trace_id"])
        assert int(headers["ingest_time_ms"]) == record["received_at_ms"]
        assert record["received_at_ms"] >= before_ms - 1000
    # One trace id per MQTT message: the batch's readings share theirs.
    assert len({header_map(m)["trace_id"] for m in by_device[batch_id]}) == 1
    assert header_map(single)["trace_id"] != header_map(by_device[batch_id][0])["trace_id"]


def test_hostile_but_decodable_payloads_travel_on_for_validate_to_judge(
    ingest: Component, publisher: Publisher, raw: KafkaTail
) -> None:
    device = f"hostile-{uuid.uuid4().hex}"
    # As many metrics as the default cap (ingest_max_metrics_per_reading) lets through.
    many = {f"m{i}": i for i in range(1_000)}
    publisher.publish(f"{PREFIX}/{device}/telemetry",
                      b'{"seq": 1, "metrics": {"nan": NaN, "inf": -Infinity, "huge": '
                      + b"9" * 3000 + b', "nul\\u0000": "\\ud83d\\ude00"}}')
    publisher.publish(f"{PREFIX}/{device}/telemetry", json.dumps({"seq": 2, "metrics": many}))
    found = raw.collect(key_in({device}), lambda f: len(f) >= 2)
    records = {r["seq"]: r for r in (value_of(m) for m in found)}
    first = {m["name"]: m["value"] for m in records[1]["metrics"]}
    assert first["nan"] != first["nan"]  # NaN
    assert first["inf"] == float("-inf")
    assert first["huge"] == "9" * 3000
    assert first["nul\x00"] == "\U0001f600"
    assert {m["name"]: m["value"] for m in records[2]["metrics"]} == many
    assert "ready" in readyz(ingest.health_port or 0)


def test_over_the_caps_is_one_dead_letter_with_its_own_reason(
    ingest: Component, publisher: Publisher, raw: KafkaTail, dlq: KafkaTail
) -> None:
    device = f"caps-{uuid.uuid4().hex}"
    too_many_metrics = {"seq": 1, "metrics": {f"m{i}": i for i in range(1_001)}}
    too_many_readings = [{"metrics": {"a": 1}}] * 10_001  # ~200 KB: under the size cap
    publisher.publish(f"{PREFIX}/{device}/telemetry", json.dumps(too_many_metrics))
    publisher.publish(f"{PREFIX}/{device}/telemetry",
                      json.dumps(too_many_readings, separators=(",", ":")))
    publisher.publish(f"{PREFIX}/{device}/telemetry", json.dumps({"seq": 3, "metrics": {"a": 1}}))
    letters = [value_of(m) for m in dlq.collect(key_in({device}), lambda f: len(f) >= 2)]
    assert [(x["reason"], x["stage"]) for x in letters] == [
        ("too_many_metrics", "ingest"), ("too_many_readings", "ingest")]
    assert "1001" in letters[0]["detail"].replace(" ", "").replace(",", "")
    # The reading after them still goes through: a refused message holds nothing up.
    found = raw.collect(key_in({device}), lambda f: len(f) >= 1)
    assert [value_of(m)["seq"] for m in found] == [3]


# --- (b) rejects --------------------------------------------------------------------------------

def test_every_ingest_reject_reason_lands_on_the_dlq_with_the_original_bytes(
    ingest: Component, publisher: Publisher, dlq: KafkaTail
) -> None:
    def dev(tag: str) -> str:
        return f"rej-{tag}-{uuid.uuid4().hex}"

    cases: list[tuple[str, str, bytes, str | None]] = []  # (reason, topic, payload, device_id)
    for payload in (b"\xff\xfe{}", b'{"metrics": {"a": 1}', b'{"a": 1, "a": 2}', b"",
                    b'{"metrics": {"a": "\\ud800"}}'):
        d = dev("json")
        cases.append(("invalid_json", f"{PREFIX}/{d}/telemetry", payload, d))
    for payload in (b"[]", b'"hello"', b'{"metrics": [1, 2]}', b'[{"metrics": {}}, 7]',
                    b"[" * 5000):
        d = dev("shape")
        cases.append(("invalid_shape", f"{PREFIX}/{d}/telemetry", payload, d))
    d = dev("large")
    cases.append(("payload_too_large", f"{PREFIX}/{d}/telemetry",
                  b'{"metrics": {"a": "' + b"x" * (256 * 1024) + b'"}}', d))
    for bad_id in ("", "x" * 129, "€" * 43, f"line\u2028sep-{uuid.uuid4().hex}"):
        cases.append(("invalid_device_id", f"{PREFIX}/{bad_id}/telemetry",
                      f'{{"seq": "{uuid.uuid4().hex}"}}'.encode(), None))

    acked_before = metric(ingest, "telemetry_ingest_messages_acked_total")
    for _, topic, payload, _ in cases:
        publisher.publish(topic, payload)

    wanted_ids = {c[3] for c in cases if c[3]}
    wanted_originals = {c[2] for c in cases if c[3] is None}

    def ours(msg: Message) -> bool:
        letter = value_of(msg)
        if letter["device_id"] is not None:
            return bool(letter["device_id"] in wanted_ids)
        return bool(letter["original"] in wanted_originals)

    found = [value_of(m) for m in dlq.collect(ours, lambda f: len(f) >= len(cases))]
    assert len(found) == len(cases)
    for reason, topic, payload, device_id in cases:
        [letter] = [f for f in found if f["original"] == payload and f["device_id"] == device_id
                    and f["source_topic"] == topic]
        assert letter["reason"] == reason, letter["detail"]
        assert letter["stage"] == "ingest"
        assert letter["original_format"] == "json"
        assert letter["detail"]
    wait_for(lambda: metric(ingest, "telemetry_ingest_messages_acked_total")
             >= acked_before + len(cases), "acks of the rejected messages", ingest)
    text = ingest.metrics()
    for reason in ("invalid_json", "invalid_shape", "payload_too_large", "invalid_device_id"):
        assert f'telemetry_rejected_total{{reason="{reason}",stage="ingest"}}' in text
    assert "ready" in readyz(ingest.health_port or 0)


# --- (c) the guarantee ----------------------------------------------------------------------

def test_messages_received_but_not_yet_in_kafka_survive_a_sigkill(
    stack_env: dict[str, str], publisher: Publisher, raw: KafkaTail, tmp_path: Path
) -> None:
    port = free_port()
    dead_kafka = f"127.0.0.1:{free_port()}"  # nothing listens: deliveries cannot complete
    env = ingest_env(stack_env, "crash", port, TELEMETRY_KAFKA_BOOTSTRAP_SERVERS=dead_kafka)
    doomed = Component(["ingest"], env, tmp_path / "first").start()  # never ready: no Kafka
    doomed.health_port = port
    wait_for(lambda: "mqtt_subscribed: ok" in readyz(port), "MQTT subscription", doomed)
    assert "kafka_reachable: not ready" in readyz(port)

    devices = [f"crash-{i}-{uuid.uuid4().hex}" for i in range(5)]
    for i, device in enumerate(devices):
        readings = [{"seq": i * 10 + j, "metrics": {"v": i * 10 + j}} for j in range(i % 2 + 1)]
        publisher.publish(f"{PREFIX}/{device}/telemetry",
                          json.dumps(readings if len(readings) > 1 else readings[0]))
    expected = {(d, i * 10 + j) for i, d in enumerate(devices) for j in range(i % 2 + 1)}

    received = 'telemetry_ingest_messages_received_total'
    wait_for(lambda: metric(doomed, received, '{kind="telemetry"}') >= len(devices),
             "the doomed ingest to receive every message", doomed)
    assert metric(doomed, "telemetry_ingest_messages_acked_total") == 0
    assert metric(doomed, "telemetry_ingest_records_in_flight") == len(expected)
    doomed.kill()
    assert doomed.proc is not None and doomed.proc.returncode == -9

    env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"] = stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]
    revived = Component(["ingest"], env, tmp_path / "second", port).start()
    try:
        found = raw.collect(key_in(set(devices)),
                            lambda f: {(key_of(m), value_of(m)["seq"])
                                       for m in f} >= expected, timeout=90)
        got = {(key_of(m), value_of(m)["seq"]) for m in found}
        assert got == expected, revived.tail()
        wait_for(lambda: metric(revived, "telemetry_ingest_messages_acked_total")
                 >= len(devices), "the revived ingest to acknowledge them", revived)
    finally:
        assert revived.stop() == 0, revived.tail()


# --- (d) metadata -------------------------------------------------------------------------------

def test_metadata_over_mqtt_lands_on_devices_metadata_and_empty_is_a_tombstone(
    ingest: Component, publisher: Publisher, metadata: KafkaTail, dlq: KafkaTail
) -> None:
    device = f"meta-{uuid.uuid4().hex}"
    bad = f"meta-bad-{uuid.uuid4().hex}"
    topic = f"{PREFIX}/{device}/metadata"
    publisher.publish(topic, json.dumps({"site": "berlin", "rack": "r 12, \"b\""}), retain=True)
    publisher.publish(topic, b"", retain=True)  # clears the retained message: a tombstone
    publisher.publish(f"{PREFIX}/{bad}/metadata", json.dumps({"site": 5, "note": "a\nb"}))
    publisher.publish(f"{PREFIX}/{bad}/metadata", b"[1, 2]")

    found = metadata.collect(key_in({device}), lambda f: len(f) >= 2)
    assert value_of(found[0]) == {
        "device_id": device, "tags": {"site": "berlin", "rack": "r 12, \"b\""},
        "updated_at_ms": value_of(found[0])["updated_at_ms"], "source": "mqtt"}
    assert found[1].value() is None
    letters = [value_of(m) for m in dlq.collect(key_in({bad}), lambda f: len(f) >= 2)]
    # Each bad tag is refused alone (listed in the message's one dead letter); a payload that
    # is not an object of tags is refused whole.
    assert [(x["reason"], x["stage"], x["device_id"]) for x in letters] == [
        ("invalid_tag", "metadata", bad), ("invalid_metadata", "metadata", bad)]
    listed = {m["metric"]: m for m in letters[0]["rejected_metrics"]}
    assert set(listed) == {"site", "note"}
    assert "is a number" in listed["site"]["detail"] and "U+000A" in listed["note"]["detail"]
    assert letters[1]["original"] == b"[1, 2]"


def test_retained_metadata_reaches_a_new_pod_and_sigterm_exits_cleanly(
    stack_env: dict[str, str], publisher: Publisher, metadata: KafkaTail, tmp_path: Path
) -> None:
    device = f"retained-{uuid.uuid4().hex}"
    prefix = f"{PREFIX}-retained"
    topic = f"{prefix}/{device}/metadata"
    publisher.publish(topic, json.dumps({"site": "oslo"}), retain=True)
    port = free_port()
    env = ingest_env(stack_env, "retained", port,
                     TELEMETRY_MQTT_METADATA_FILTER=f"{prefix}/+/metadata")
    pod = Component(["ingest"], env, tmp_path, port).start()
    try:
        [msg] = metadata.collect(key_in({device}), lambda f: len(f) >= 1)
        assert value_of(msg)["tags"] == {"site": "oslo"}
    finally:
        publisher.publish(topic, b"", retain=True)  # leave no retained message behind
        code = pod.stop()
    assert code == 0, pod.tail()
    assert "everything handled was delivered and acknowledged" in pod.tail()
    # A clean shutdown ends the session, so the broker routes nothing more to it.
    assert not session_present(stack_env, env["TELEMETRY_MQTT_CLIENT_ID"])


def test_devices_load_publishes_good_rows_and_reports_bad_ones(
    stack_env: dict[str, str], metadata: KafkaTail, tmp_path: Path
) -> None:
    good = [f"file-{i}-{uuid.uuid4().hex}" for i in range(3)]
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text(
        "device_id,site,rack\n"
        f"{good[0]},berlin,r1\n"
        f"{good[1]},paris,\n"
        ",rome,r3\n"
        f"bad-{uuid.uuid4().hex},\"two\nlines\",r4\n"
    )
    result = load_cli(stack_env, csv_file)
    assert result.returncode == 1, result.stderr
    assert "line 4: device id is empty" in result.stderr
    assert "line 6:" in result.stderr and "U+000A" in result.stderr
    assert "published 2 devices" in result.stdout

    json_file = tmp_path / "devices.json"
    json_file.write_text(json.dumps([{"device_id": good[2], "tags": {"model": "TH-2"}}]))
    result = load_cli(stack_env, json_file)
    assert result.returncode == 0, result.stderr

    found = metadata.collect(key_in(set(good)), lambda f: len(f) >= 3)
    records = {key_of(m): value_of(m) for m in found}
    assert {d: (r["tags"], r["source"]) for d, r in records.items()} == {
        good[0]: ({"site": "berlin", "rack": "r1"}, "file"),
        good[1]: ({"site": "paris"}, "file"),
        good[2]: ({"model": "TH-2"}, "file"),
    }


def load_cli(stack_env: dict[str, str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "devices", "load", str(path)],
        env={**os.environ, **stack_env, "TELEMETRY_LOG_FORMAT": "text"},
        capture_output=True, text=True, timeout=120,
    )


# --- the contract topics ------------------------------------------------------------------------

def test_the_default_filter_reads_devices_plus_telemetry(
    stack_env: dict[str, str], publisher: Publisher, raw: KafkaTail, tmp_path: Path
) -> None:
    """The only test on `devices/+/telemetry` itself; another ingest may also forward this
    message, so the pod's own metrics prove it was this one."""
    port = free_port()
    env = ingest_env(stack_env, "contract", port)
    del env["TELEMETRY_MQTT_TELEMETRY_FILTER"]
    pod = Component(["ingest"], env, tmp_path, port).start()
    try:
        device = f"contract-{uuid.uuid4().hex}"
        publisher.publish(f"devices/{device}/telemetry", json.dumps({"metrics": {"a": 1}}))
        found = raw.collect(key_in({device}), lambda f: len(f) >= 1)
        assert found and value_of(found[0])["device_id"] == device
        wait_for(lambda: metric(pod, "telemetry_ingest_readings_produced_total") >= 1,
                 "this pod to produce the reading", pod)
    finally:
        assert pod.stop() == 0, pod.tail()


# --- reconnects -------------------------------------------------------------------------------

class TcpGate:
    """A closed door in front of Kafka's bootstrap port until `open()`: then it forwards."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self.server: socket.socket | None = None

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def test_kafka_that_comes_late_gets_everything_without_a_restart(
    stack_env: dict[str, str], publisher: Publisher, raw: KafkaTail, tmp_path: Path
) -> None:
    gate = TcpGate(stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"])
    port = free_port()
    env = ingest_env(stack_env, "late-kafka", port,
                     TELEMETRY_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{gate.port}")
    pod = Component(["ingest"], env, tmp_path).start()
    pod.health_port = port
    try:
        wait_for(lambda: "mqtt_subscribed: ok" in readyz(port), "MQTT subscription", pod)
        devices = [f"late-{i}-{uuid.uuid4().hex}" for i in range(3)]
        for device in devices:
            publisher.publish(f"{PREFIX}/{device}/telemetry", json.dumps({"metrics": {"a": 1}}))
        wait_for(lambda: metric(pod, "telemetry_ingest_records_in_flight") == 3,
                 "three readings waiting for Kafka", pod)
        assert metric(pod, "telemetry_ingest_messages_acked_total") == 0
        assert "kafka_reachable: not ready" in readyz(port)

        gate.open()
        found = raw.collect(key_in(set(devices)), lambda f: len(f) >= 3, timeout=90)
        assert sorted(key_of(m) for m in found) == sorted(devices)
        wait_for(lambda: metric(pod, "telemetry_ingest_messages_acked_total") == 3,
                 "acknowledgements once Kafka confirmed", pod)
        wait_for(lambda: readyz(port).endswith("\nready\n"), "readiness", pod, timeout=90)
    finally:
        code = pod.stop()
        gate.close()
    assert code == 0, pod.tail()


def test_ingest_reconnects_and_resubscribes_when_the_broker_drops_it(
    stack_env: dict[str, str], publisher: Publisher, raw: KafkaTail, tmp_path: Path
) -> None:
    port = free_port()
    env = ingest_env(stack_env, "takeover", port)
    pod = Component(["ingest"], env, tmp_path, port).start()
    subscribed = 'telemetry_ingest_mqtt_connects_total'
    try:
        assert metric(pod, subscribed, '{outcome="subscribed"}') == 1
        # A second client with the pod's id takes its session over: the broker drops the pod.
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 120
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                               client_id=env["TELEMETRY_MQTT_CLIENT_ID"],
                               reconnect_on_failure=False)
        intruder.username_pw_set(stack_env["TELEMETRY_MQTT_USERNAME"],
                                 stack_env["TELEMETRY_MQTT_PASSWORD"])
        intruder.connect(stack_env["TELEMETRY_MQTT_HOST"], int(stack_env["TELEMETRY_MQTT_PORT"]),
                         clean_start=False, properties=props)
        intruder.loop_start()
        try:
            wait_for(lambda: metric(pod, subscribed, '{outcome="subscribed"}') >= 2,
                     "the pod to reconnect and subscribe again", pod)
        finally:
            intruder.loop_stop()
        device = f"after-reconnect-{uuid.uuid4().hex}"
        publisher.publish(f"{PREFIX}/{device}/telemetry", json.dumps({"metrics": {"a": 1}}))
        [msg] = raw.collect(key_in({device}), lambda f: len(f) >= 1)
        assert value_of(msg)["device_id"] == device
        assert "reconnecting" in pod.tail()
    finally:
        assert pod.stop() == 0, pod.tail()


def test_a_pod_stopped_mid_stream_loses_nothing_its_peer_carries_on(
    stack_env: dict[str, str], raw: KafkaTail, tmp_path: Path
) -> None:
    """SIGTERM while messages pour in: the pod unsubscribes, finishes what the broker already
    sent it, acknowledges, ends its session; the other pod of the group gets the rest."""
    group = f"{PREFIX}-pair"
    pods = []
    for name in ("a", "b"):
        port = free_port()
        env = ingest_env(stack_env, f"pair-{name}", port, TELEMETRY_MQTT_SHARED_GROUP=group)
        pods.append(Component(["ingest"], env, tmp_path / name, port).start())
    leaving, staying = pods
    device = f"pair-{uuid.uuid4().hex}"
    total = 1500
    published = threading.Semaphore(0)
    failures: list[str] = []

    def pour() -> None:
        pub = Publisher(stack_env)
        try:
            for seq in range(total):
                pub.publish(f"{PREFIX}/{device}/telemetry",
                            json.dumps({"seq": seq, "metrics": {"v": seq}}))
                published.release()
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            pub.close()

    pourer = threading.Thread(target=pour, daemon=True)
    pourer.start()
    try:
        for _ in range(total // 3):
            assert published.acquire(timeout=60), "publisher stalled"
        assert leaving.stop() == 0, leaving.tail()
        assert metric(staying, "telemetry_ingest_messages_received_total",
                      '{kind="telemetry"}') > 0
        pourer.join(120)
        assert not failures, failures
        seqs: set[int] = set()
        ours = key_in({device})

        def wanted(msg: Message) -> bool:
            if ours(msg):
                seqs.add(value_of(msg)["seq"])
                return True
            return False

        raw.collect(wanted, lambda _: len(seqs) >= total, timeout=120)
        assert seqs == set(range(total)), staying.tail()
        assert "MQTT session ended" in leaving.tail(), leaving.tail()
    finally:
        for pod in pods:
            pod.stop()
