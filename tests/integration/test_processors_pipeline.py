"""The real `telemetry process` worker against the real Kafka of the local stack.

Each worker gets a fresh app id (a new consumer group and new Faust topics). Its group's
offsets are committed at the current end of every input topic before it starts, so it
processes only what these tests produce, not the whole history of shared topics.

Other pipelines may run on the same Kafka (a developer's `telemetry run`, another test) and
process these readings too. Assertions therefore look only at records our worker produced
(the `processor` header names the app id) and compare sets, not counts.
"""

from __future__ import annotations

import calendar
import math
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from plumbing.topics import DLQ, ENRICHED, METADATA, RAW
from processors.forwarder import HEADER_PROCESSOR
from processors.steps.dew_point import dew_point_c
from schemas.codec import default_codec
from tests.support.components import Component, free_port
from tests.support.kafka_helpers import commit_end_offsets, end_offsets

CODEC = default_codec()
#: The default chain's steps (a metric one of them refused in a letter named after another
#: has its name first in its detail).
STEP_NAMES = frozenset({"validate", "normalize", "enrich", "dew_point"})
INPUTS = [RAW, METADATA]
PARTITIONS = 6






def start_group_at_end(bootstrap: str, group: str) -> None:
    """Commits the current end offsets of the app's inputs for a group nobody joined yet."""
    commit_end_offsets(bootstrap, group, INPUTS)


class Worker:
    """A `telemetry process` subprocess with its own app id."""

    def __init__(self, env: dict[str, str], tmp: Path, app_id: str | None = None) -> None:
        self.bootstrap = env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]
        self.app_id = app_id or f"it-processors-{uuid.uuid4().hex[:10]}"
        self.changelog = f"{self.app_id}-device_tags-changelog"
        port = free_port()
        self.component = Component(
            ["process"],
            {
                **env,
                "TELEMETRY_PROCESS_APP_ID": self.app_id,
                "TELEMETRY_PROCESS_HEALTH_PORT": str(port),
                "TELEMETRY_PROCESS_DATA_DIR": str(tmp / "faust-data"),
                "TELEMETRY_LOG_FORMAT": "json",
            },
            tmp / f"logs-{uuid.uuid4().hex[:6]}",
            health_port=port,
        )

    def start(self) -> Worker:
        self.component.start(ready_timeout=120)
        return self

    def produced(self, message: Message, agent: str = "") -> bool:
        """Whether this worker (its `agent`, if given) produced the record."""
        by = dict(message.headers() or []).get(HEADER_PROCESSOR)
        return isinstance(by, bytes) and by.startswith(f"{self.app_id}/{agent}".encode())


class Kafka:
    """Produces with headers and reads outputs from offsets taken before producing."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
        )

    def produce(self, topic: str, key: str | bytes | None, value: bytes | None,
                trace: str = "") -> tuple[int, int]:
        """(partition, offset) once Kafka confirmed the record."""
        delivered: list[Message] = []
        errors: list[str] = []

        def done(err: Any, msg: Message) -> None:
            (errors.append(str(err)) if err else delivered.append(msg))

        self.producer.produce(
            topic,
            value=value,
            key=key.encode() if isinstance(key, str) else key,
            headers=[("trace_id", trace.encode())] if trace else None,
            on_delivery=done,
        )
        assert self.producer.flush(30) == 0 and not errors, errors
        return delivered[0].partition() or 0, delivered[0].offset() or 0

    def reader(self, topics: list[str]) -> Reader:
        return Reader(self.bootstrap, topics)


class Reader:
    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"it-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign(end_offsets(bootstrap, topics))
        self.got: list[Message] = []

    def until(
        self,
        keys: set[bytes],
        done: Callable[[list[Message]], bool],
        timeout: float = 240,  # a limit, not a measure: returns as soon as `done`
        keep: Callable[[Message], bool] = lambda m: True,
    ) -> list[Message]:
        deadline = time.monotonic() + timeout
        while not done(self.got) and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key() in keys and keep(msg):
                self.got.append(msg)
        return self.got

    def close(self) -> None:
        self.consumer.close()


def raw(device: str, metrics: list[tuple[str, tuple[str, Any] | None, str | None]],
        ts: tuple[str, Any] | None = None, seq: tuple[str, Any] | None = ("long", 1)) -> bytes:
    now = int(time.time() * 1000)
    return CODEC.encode(
        "RawReading",
        {
            "device_id": device,
            "ts": ts if ts is not None else ("long", now - 1000),
            "received_at_ms": now,
            "seq": seq,
            "metrics": [{"name": n, "value": v, "unit": u} for n, v, u in metrics],
        },
    )


def metadata(device: str, tags: dict[str, str]) -> bytes:
    return CODEC.encode(
        "DeviceMetadata",
        {"device_id": device, "tags": tags, "updated_at_ms": int(time.time() * 1000),
         "source": "file"},
    )


def decoded(messages: list[Message], topic: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        if m.topic() == topic:
            out.setdefault((m.key() or b"").decode(), []).append(CODEC.decode(m.value() or b""))
    return out


def set_metadata(
    kafka: Kafka, worker: Worker, device: str, value: bytes | None,
    seen: Callable[[Message], bool] | None = None,
) -> None:
    """Produces a devices.metadata record and waits until the worker's table has it.

    The table is written before its changelog record, so seeing the record (read from
    offsets taken before producing) means the table is set.
    """
    if seen is None:
        def seen(m: Message) -> bool:
            return (m.value() is None) == (value is None)

    reader = kafka.reader([worker.changelog])
    try:
        kafka.produce(METADATA, device, value)
        got = reader.until({device.encode()}, lambda ms: any(seen(m) for m in ms))
        assert any(seen(m) for m in got), worker.component.tail()
    finally:
        reader.close()


@pytest.fixture(scope="module")
def kafka(stack_env: dict[str, str]) -> Iterator[Kafka]:
    yield Kafka(stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"])


@pytest.fixture(scope="module")
def worker(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    w = Worker(stack_env, tmp_path_factory.mktemp("processors"))
    start_group_at_end(w.bootstrap, w.app_id)
    w.start()
    yield w
    w.component.stop()


def uid(name: str) -> str:
    return f"it-{name}-{uuid.uuid4().hex[:8]}"


def test_readings_flow_through_every_step_in_one_hop_with_rejects_dead_lettered(
    kafka: Kafka, worker: Worker
) -> None:
    a, b, c, d, e, f, g, h, junk_meta = (uid(n) for n in "abcdefghm")
    reader = kafka.reader([ENRICHED, DLQ])

    kafka.produce(METADATA, junk_meta, b"\xc3\x01 not avro at all")
    set_metadata(kafka, worker, a, metadata(a, {"site": "berlin", "room": 'lab 1,="x"',
                                                "serial": "SN-9", "device_id": "not-me"}))

    kafka.produce(RAW, a, raw(a, [
        ("temperature", ("double", 70.7), "degF"),
        ("humidity", ("double", 41.5), None),
        ("pressure", ("long", 101325), "Pa"),
        ("current", ("long", 1500), "mA"),
        ("speed", ("double", 10.0), "mph"),
        ("rpm", ("double", 1500.0), "rpm"),
        ("flag", ("boolean", True), None),
        ("text", ("string", '{"nested": [1, 2]}'), None),
        ("voltage", ("double", 5.0), "volts"),
        ("energy", ("double", 3.0), "kPa"),
    ]), trace="trace-a")
    kafka.produce(RAW, b, raw(b, [
        ("temperature", ("long", 20), None),
        ("humidity", ("double", 150.0), "%"),
        ("energy", ("double", 2500.0), "Wh"),
        ("cold", ("double", -1.0), None),
    ]))
    kafka.produce(RAW, c, raw(c, [("temperature", ("double", 1.0), None)],
                              ts=("long", int(time.time() * 1000) + 3_600_000)))
    kafka.produce(RAW, d, raw(d, [("temperature", ("double", 1.0), None)],
                              ts=("string", "yesterday at noon")))
    kafka.produce(RAW, e, raw(e, []))
    kafka.produce(RAW, f, raw(f, [("temperature", ("double", 300.0), "K")],
                              seq=("string", "1.5")))
    kafka.produce(RAW, g, b"\x00junk that is not Avro")
    # RFC 3339 with an offset and nanoseconds; awkward metric names pass through as data
    # (an even backslash run before a separator is storable); names no database can store
    # (control characters, a newline) or line protocol cannot carry (an odd backslash run
    # before a space) are refused alone
    when = datetime.now(timezone(timedelta(hours=5, minutes=30))) - timedelta(seconds=2)
    when_text = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789+05:30"
    hostile = 'quote "q" =,\\\\ ' + "\u00e9\u2603" * 50
    unstorable = "tab\tnew\nline"
    odd_backslashes = "odd\\ run"
    kafka.produce(RAW, h, raw(h, [(hostile, ("double", 1e300), None),
                                  (unstorable, ("double", 2.0), None),
                                  (odd_backslashes, ("double", 3.0), None)],
                              ts=("string", when_text)))

    expected_letters = {
        (a, "validate", "value_not_a_number", "flag"),
        (a, "validate", "value_not_a_number", "text"),
        (a, "normalize", "unknown_unit", "voltage"),
        (a, "normalize", "wrong_dimension", "energy"),
        (b, "normalize", "physically_impossible", "humidity"),
        (c, "validate", "timestamp_in_future", None),
        (d, "validate", "invalid_timestamp", None),
        (e, "validate", "no_metrics", None),
        (f, "validate", "invalid_seq", "seq"),
        (g, "validate", "undecodable_record", None),
        (junk_meta, "enrich", "undecodable_record", None),
        (h, "validate", "invalid_metric_name", unstorable),
        (h, "validate", "invalid_metric_name", odd_backslashes),
    }

    def letters_in(ms: list[Message]) -> set[tuple[Any, ...]]:
        """(device, step, reason, metric) of each reject: a letter's own, or each metric it
        lists (one letter per reading; a metric refused by a later step says so first)."""
        out = set()
        for dl in (CODEC.decode(m.value() or b"") for m in ms if m.topic() == DLQ):
            listed = dl["rejected_metrics"] or []
            if not listed:
                out.add((dl["device_id"], dl["stage"], dl["reason"], dl["metric"]))
            for item in listed:
                step, _, _ = item["detail"].partition(": ")
                step = step if step in STEP_NAMES and step != dl["stage"] else dl["stage"]
                out.add((dl["device_id"], step, item["reason"], item["metric"]))
        return out

    def complete(ms: list[Message]) -> bool:
        keys = {(m.topic(), m.key()) for m in ms}
        return (
            {(ENRICHED, x.encode()) for x in (a, b, f, h)} <= keys
            and letters_in(ms) >= expected_letters
        )

    keys = {x.encode() for x in (a, b, c, d, e, f, g, h, junk_meta)}
    got = reader.until(keys, complete, keep=worker.produced)
    reader.close()
    assert complete(got), (
        [(m.topic(), m.key()) for m in got], worker.component.tail())

    enriched = decoded(got, ENRICHED)
    assert set(enriched) == {a, b, f, h}
    for ra in enriched[a]:  # more than one if another pipeline fed us its copy too
        fields = ra["fields"]
        assert math.isclose(fields["temperature"], (70.7 - 32) * 5 / 9, rel_tol=1e-9)
        assert fields["humidity"] == 41.5
        assert math.isclose(fields["pressure"], 101.325, rel_tol=1e-9)
        assert math.isclose(fields["current"], 1.5, rel_tol=1e-9)
        assert math.isclose(fields["speed"], 4.4704, rel_tol=1e-9)
        assert fields["rpm"] == 1500.0
        assert set(fields) == {"temperature", "humidity", "pressure", "current", "speed", "rpm",
                               "dew_point"}
        assert ra["units"] == {"temperature": "degC", "humidity": "percent", "pressure": "kPa",
                               "current": "A", "speed": "m/s", "rpm": "rpm",
                               "dew_point": "degC"}
        # the derived metric is a field of the same reading: one record, one point
        expected = dew_point_c(fields["temperature"], fields["humidity"])
        assert expected is not None
        assert math.isclose(fields["dew_point"], expected, rel_tol=1e-12)
        # allow-listed tags only, and never a device_id from the metadata
        assert ra["tags"] == {"site": "berlin", "room": 'lab 1,="x"'}
        assert ra["device_id"] == a and ra["seq"] == 1
    for rb in enriched[b]:
        assert rb["tags"] == {}  # no metadata: goes on without tags
        assert rb["fields"] == {"temperature": 20.0, "energy": 2.5, "cold": -1.0}
    for rf in enriched[f]:
        assert rf["seq"] is None
        assert math.isclose(rf["fields"]["temperature"], 26.85, rel_tol=1e-9)

    for rh in enriched[h]:
        # 789 ns past the microsecond: truncated
        assert rh["ts_us"] == calendar.timegm(when.utctimetuple()) * 1_000_000 + when.microsecond
        assert rh["fields"] == {hostile: 1e300}

    for m in got:
        if m.key() == a.encode():
            assert dict(m.headers() or [])["trace_id"] == b"trace-a", m.topic()

    assert letters_in(got) == expected_letters
    # one dead letter per reading, however many of its metrics were refused
    letter_keys = [m.key() for m in got if m.topic() == DLQ]
    assert len(letter_keys) == len(set(letter_keys)) == 9, letter_keys
    for m in got:
        if m.topic() != DLQ:
            continue
        letter = CODEC.decode(m.value() or b"")
        assert letter["original_format"] == "avro" and letter["detail"]
        if letter["device_id"] == g:
            assert letter["original"] == b"\x00junk that is not Avro"
            assert letter["source_topic"] == RAW
        if letter["device_id"] == junk_meta:
            assert letter["source_topic"] == METADATA
        if "wrong_dimension" in {i["reason"] for i in letter["rejected_metrics"] or []}:
            # one hop: every reading's dead letter carries the raw record as ingest wrote it
            assert letter["source_topic"] == RAW
            original = CODEC.decode(letter["original"])
            assert {"name": "energy", "value": 3.0, "unit": "kPa"} in original["metrics"]

    metrics = worker.component.metrics()
    assert 'telemetry_rejected_total{reason="wrong_dimension",stage="normalize"}' in metrics
    assert 'telemetry_processor_records_in_total{agent="readings"}' in metrics
    assert 'telemetry_processor_records_out_total{agent="readings"}' in metrics
    assert 'telemetry_processor_latency_seconds_count{agent="readings"}' in metrics


def tags_of_next_reading(kafka: Kafka, worker: Worker, device: str, marker: float
                         ) -> dict[str, str]:
    """Produces a reading with a unique value and returns the tags our enrich gave it."""
    return tags_and_partition(kafka, worker, device, marker)[0]


def test_metadata_updates_and_tombstones_change_the_tags(kafka: Kafka, worker: Worker) -> None:
    device = uid("meta")

    set_metadata(kafka, worker, device, metadata(device, {"site": "one", "zone": "z1"}))
    assert tags_of_next_reading(kafka, worker, device, 1.0) == {"site": "one", "zone": "z1"}

    set_metadata(kafka, worker, device, metadata(device, {"site": "two"}))
    assert tags_of_next_reading(kafka, worker, device, 2.0) == {"site": "two"}

    set_metadata(kafka, worker, device, None)  # tombstone: forget the device
    assert tags_of_next_reading(kafka, worker, device, 3.0) == {}


def test_sigterm_commits_and_a_restart_recovers_the_tags(
    kafka: Kafka, stack_env: dict[str, str], tmp_path: Path
) -> None:
    first = Worker(stack_env, tmp_path)
    start_group_at_end(first.bootstrap, first.app_id)
    first.start()
    device = uid("restart")
    set_metadata(kafka, first, device, metadata(device, {"site": "kept"}))

    validated = kafka.reader([ENRICHED])
    partition, offset = kafka.produce(
        RAW, device, raw(device, [("temperature", ("double", 2.0), None)]))
    # our readings agent forwarded it: Kafka confirmed, so the raw record is acked
    validated.until({device.encode()}, lambda ms: len(ms) >= 1,
                    keep=lambda m: first.produced(m, "readings"))
    assert validated.got, first.component.tail()

    assert first.component.stop(signal.SIGTERM, timeout=60) == 0, first.component.tail()
    group = Consumer({"bootstrap.servers": first.bootstrap, "group.id": first.app_id})
    [committed] = group.committed([TopicPartition(RAW, partition)], timeout=10)
    group.close()
    assert committed.offset > offset  # graceful stop: processed input is committed

    # Same app id: the device tags table comes back from its changelog, and raw records
    # committed before the stop are not validated again.
    second = Worker(stack_env, tmp_path, app_id=first.app_id).start()
    try:
        assert tags_of_next_reading(kafka, second, device, 3.0) == {"site": "kept"}
        # One device, one raw partition, one enriched partition: a repeat of 2.0 would
        # have come before 3.0.
        validated.until({device.encode()},
                        lambda ms: any(CODEC.decode(m.value() or b"")["fields"] ==
                                       {"temperature": 3.0} for m in ms),
                        keep=lambda m: first.produced(m, "readings"))
        temperatures = [CODEC.decode(m.value() or b"")["fields"]["temperature"]
                        for m in validated.got]
        assert temperatures == [2.0, 3.0]
    finally:
        validated.close()
        second.component.stop()


def tags_and_partition(
    kafka: Kafka, worker: Worker, device: str, marker: float
) -> tuple[dict[str, str], int]:
    """The tags our enrich gave a new reading, and the partition it enriched it in."""
    reader = kafka.reader([ENRICHED])
    kafka.produce(RAW, device, raw(device, [("temperature", ("double", marker), None)]))

    def mine(m: Message) -> bool:
        value = CODEC.decode(m.value() or b"")
        return worker.produced(m, "readings") and value["fields"].get("temperature") == marker

    got = reader.until({device.encode()}, lambda ms: len(ms) >= 1, keep=mine)
    reader.close()
    assert got, worker.component.tail()
    return dict(CODEC.decode(got[0].value() or b"")["tags"]), got[0].partition() or 0


def devices_in_every_partition() -> list[str]:
    """Two device ids per partition of Faust's (murmur2) partitioner."""
    per_partition: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    while any(len(ids) < 2 for ids in per_partition.values()):
        device = uid("two")
        ids = per_partition[(murmur2(device.encode()) & 0x7FFFFFFF) % PARTITIONS]
        if len(ids) < 2:
            ids.append(device)
    return [d for ids in per_partition.values() for d in ids]


def test_tags_reach_every_worker_of_the_app(
    kafka: Kafka, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """Two workers split the partitions; each one's enrich sees metadata the other stored."""
    first = Worker(stack_env, tmp_path / "one")
    start_group_at_end(first.bootstrap, first.app_id)
    second = Worker(stack_env, tmp_path / "two", app_id=first.app_id)
    first.start()
    second.start()
    try:
        devices = devices_in_every_partition()
        for device in devices:
            set_metadata(kafka, first, device, metadata(device, {"site": device}))
        # A worker applies the other's changelog records as they arrive: the tags show up
        # on a reading of every device, whichever worker enriches it (a few readings may
        # pass before the record arrives).
        partitions: set[int] = set()
        for device in devices:
            for attempt in range(20):
                tags, partition = tags_and_partition(kafka, first, device, float(attempt))
                if tags == {"site": device}:
                    partitions.add(partition)
                    break
            else:
                raise AssertionError((device, first.component.tail(), second.component.tail()))
        # every partition had a reading, and each worker owns some partitions
        assert partitions == set(range(PARTITIONS))
    finally:
        second.component.stop()
        first.component.stop()
