"""End to end through the real services: MQTT -> ingest -> Kafka -> Faust -> sink -> InfluxDB.

One pipeline (three real processes) for this module; every test uses its own device-id prefix.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from plumbing.topics import DLQ, METADATA
from schemas.codec import CodecError, default_codec
from stack.local_stack import LocalStack
from tests.support.kafka_helpers import consume_until, end_offsets
from tests.support.pipeline import Publisher, RunningPipeline, metric_value, points_for, wait_for

REL = 1e-9


@pytest.fixture(scope="module")
def pipeline(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPipeline]:
    p = RunningPipeline(local_stack, stack_env, tmp_path_factory.mktemp("e2e")).start()
    yield p
    p.stop()


@pytest.fixture
def publisher(local_stack: LocalStack) -> Iterator[Publisher]:
    pub = Publisher(local_stack)
    yield pub
    pub.close()


def _prefix() -> str:
    return f"e2e{uuid.uuid4().hex[:10]}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _load_metadata(
    pipeline: RunningPipeline, pub: Publisher, tags_by_device: dict[str, dict[str, str]]
) -> None:
    """Publishes retained metadata; waits until the processors committed past all of it.

    The metadata agent commits a record only after the tag table holds it, so a committed
    offset beyond our records means readings sent from now on are enriched with them.
    """
    bootstrap = pipeline.stack.kafka.address
    start = end_offsets(bootstrap, [METADATA])
    for device, tags in tags_by_device.items():
        pub.publish(f"devices/{device}/metadata", json.dumps(tags).encode(), retain=True)
    wanted = {d.encode() for d in tags_by_device}
    records = consume_until(
        bootstrap,
        [METADATA],
        lambda ms: {m.key() for m in ms} >= wanted,
        timeout=60,
        keep=lambda m: m.key() in wanted,
        start=start,
    )
    assert {m.key() for m in records} >= wanted, pipeline.logs()
    needed: dict[int, int] = {}
    for m in records:
        partition, offset = m.partition() or 0, m.offset() or 0
        needed[partition] = max(needed.get(partition, 0), offset + 1)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": pipeline.processors_group})
    try:

        def committed_past() -> bool:
            tps = [TopicPartition(METADATA, p) for p in needed]
            done = consumer.committed(tps, timeout=10)
            return all(tp.offset >= needed[tp.partition] for tp in done)

        wait_for(committed_past, 90, "the processors to take the device metadata", pipeline.logs)
    finally:
        consumer.close()


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=0.0 if expected else 1e-12)


def test_readings_arrive_as_exactly_n_points_converted_tagged_and_timed(
    pipeline: RunningPipeline, publisher: Publisher, local_stack: LocalStack
) -> None:
    prefix = _prefix()
    devices = [f"{prefix}-dev{i}" for i in range(4)]
    _load_metadata(
        pipeline,
        publisher,
        {
            d: {"site": f"plant-{i % 2}", "line": f"L{i}", "model": "TH-2", "secret": "x"}
            for i, d in enumerate(devices)
        },
    )
    base = _now_ms() - 60_000
    expected: dict[tuple[str, int], dict[str, float]] = {}

    def reading(device: str, k: int) -> dict[str, Any]:
        ts = base + k * 1000 + 7  # exact milliseconds, not round seconds
        degf = 60.0 + k * 1.3
        pa = 100_000.0 + k * 17.5
        mv = 3300.0 + k
        expected[(device, ts * 1000)] = {
            "temperature": (degf - 32.0) * 5.0 / 9.0,
            "pressure": pa / 1000.0,
            "humidity": 40.0 + k / 4,
            "voltage": mv / 1000.0,
            "rpm": 1200.0 + k,
            "seq": float(k),
        }
        return {
            "ts": ts,
            "seq": k,
            "metrics": {
                "temperature": {"value": degf, "unit": "degF"},
                "pressure": {"value": pa, "unit": "Pa"},
                "humidity": 40.0 + k / 4,
                "voltage": {"value": mv, "unit": "mV"},
                "rpm": 1200 + k,
            },
        }

    sent = 0
    for device in devices:
        for k in range(5):  # single-object payloads
            publisher.publish(
                f"devices/{device}/telemetry", json.dumps(reading(device, k)).encode()
            )
            sent += 1
        for start in (5, 8):  # two batches of three
            batch = [reading(device, k) for k in range(start, start + 3)]
            publisher.publish(f"devices/{device}/telemetry", json.dumps(batch).encode())
            sent += 3
    n = len(expected)
    assert sent == n == 44

    def complete() -> bool:
        # The derived dew point arrives one hop after the reading itself.
        points = points_for(local_stack, prefix)
        return len(points) >= n and all("dew_point" in p["fields"] for p in points.values())

    wait_for(complete, 120, f"{n} points with dew points in InfluxDB", pipeline.logs)
    time.sleep(3)  # anything extra or late would show up now
    points = points_for(local_stack, prefix)
    assert len(points) == n
    assert set(points) == set(expected)
    for key, fields in expected.items():
        stored = points[key]
        for name, value in fields.items():
            assert _close(stored["fields"][name], value), (key, name, stored["fields"][name], value)
        # The worked example agent: dew point from the canonical temperature and humidity.
        assert "dew_point" in stored["fields"], key
        i = devices.index(key[0])
        assert stored["tags"] == {"site": f"plant-{i % 2}", "line": f"L{i}", "model": "TH-2"}


def test_every_reject_reason_lands_in_the_dlq_and_valid_metrics_are_kept(
    pipeline: RunningPipeline, publisher: Publisher, local_stack: LocalStack
) -> None:
    prefix = _prefix()
    now = _now_ms()
    dev = f"{prefix}-rej"
    sent: dict[str, tuple[str, bytes]] = {
        "invalid_device_id": (
            f"devices/{prefix}{'x' * 130}/telemetry",
            b'{"metrics": {"humidity": 1}}',
        ),
        "payload_too_large": (
            f"devices/{dev}-big/telemetry",
            b'{"metrics": {"humidity": 1}, "pad": "' + b"x" * 300_000 + b'"}',
        ),
        "invalid_json": (f"devices/{dev}-json/telemetry", b'{"metrics": {"humidity": 4'),
        "invalid_shape": (f"devices/{dev}-shape/telemetry", b'[{"metrics": {}}, 42]'),
        "invalid_timestamp": (
            f"devices/{dev}-ts/telemetry",
            b'{"ts": "yesterday at noon", "metrics": {"humidity": 1}}',
        ),
        "timestamp_in_future": (
            f"devices/{dev}-future/telemetry",
            json.dumps({"ts": now + 3_600_000, "metrics": {"humidity": 1}}).encode(),
        ),
        "timestamp_too_old": (
            f"devices/{dev}-old/telemetry",
            json.dumps({"ts": now - 8 * 86_400_000, "metrics": {"humidity": 1}}).encode(),
        ),
        "no_metrics": (f"devices/{dev}-empty/telemetry", json.dumps({"ts": now}).encode()),
        "value_not_a_number": (
            f"devices/{dev}-nan/telemetry",
            json.dumps({"ts": now, "metrics": {"temperature": "hot", "humidity": 41.0}}).encode(),
        ),
        "unknown_unit": (
            f"devices/{dev}-unit/telemetry",
            json.dumps(
                {
                    "ts": now,
                    "metrics": {"temperature": {"value": 20, "unit": "furlongs"}, "humidity": 42.0},
                }
            ).encode(),
        ),
        "wrong_dimension": (
            f"devices/{dev}-dim/telemetry",
            json.dumps(
                {
                    "ts": now,
                    "metrics": {"temperature": {"value": 20, "unit": "kPa"}, "humidity": 43.0},
                }
            ).encode(),
        ),
        "physically_impossible": (
            f"devices/{dev}-phys/telemetry",
            json.dumps(
                {
                    "ts": now,
                    "metrics": {"temperature": {"value": -500, "unit": "degC"}, "humidity": 44.0},
                }
            ).encode(),
        ),
        "invalid_seq": (
            f"devices/{dev}-seq/telemetry",
            json.dumps({"ts": now, "seq": "seven", "metrics": {"humidity": 45.0}}).encode(),
        ),
        "invalid_metadata": (f"devices/{dev}-meta/metadata", b'["not", "tags"]'),
    }
    # NaN is not JSON, but devices send it; Python's and many devices' encoders write it.
    nan_payload = b'{"ts": %d, "metrics": {"temperature": NaN, "humidity": 46.0}}' % now
    # read only what comes from here: the shared DLQ can hold millions of older letters
    dlq_start = end_offsets(local_stack.kafka.address, [DLQ])
    for topic, payload in sent.values():
        publisher.publish(topic, payload)
    publisher.publish(f"devices/{dev}-nanliteral/telemetry", nan_payload)

    codec = default_codec()

    def mine(m: Any) -> bool:
        try:
            rec = codec.decode(m.value() or b"")
        except CodecError:
            return False  # not ours: someone wrote junk to the DLQ
        return prefix in (rec["source_topic"] or "") or prefix in (rec["device_id"] or "")

    def key(letter: dict[str, Any]) -> tuple[str, str]:
        return letter["reason"], letter["device_id"] or letter["source_topic"] or ""

    expected = {
        (reason, topic if reason == "invalid_device_id" else topic.split("/")[1])
        for reason, (topic, _) in sent.items()
    } | {("value_not_a_number", f"{dev}-nanliteral")}

    def keys(ms: list[Any]) -> set[tuple[str, str]]:
        return {key(codec.decode(m.value() or b"")) for m in ms}

    got = consume_until(
        local_stack.kafka.address,
        [DLQ],
        lambda ms: expected <= keys(ms),
        timeout=120,
        keep=mine,
        start=dlq_start,
    )
    letters = [codec.decode(m.value() or b"") for m in got]
    assert expected <= {key(r) for r in letters}, pipeline.logs()
    by_key = {key(r): r for r in letters}
    for reason, (topic, payload) in sent.items():
        letter = by_key[(reason, topic if reason == "invalid_device_id" else topic.split("/")[1])]
        assert letter["detail"], reason
        if letter["stage"] in ("ingest", "metadata"):
            assert letter["original"] == payload, reason
            assert letter["source_topic"] == topic, reason
    nan_letters = [r for r in letters if r["device_id"] == f"{dev}-nanliteral"]
    # At-least-once: a redelivered message may dead-letter twice, never for another reason.
    assert {r["reason"] for r in nan_letters} == {"value_not_a_number"}

    # The valid metrics of partly rejected readings are stored; the rejected ones are not.
    kept = {
        f"{dev}-nan": 41.0,
        f"{dev}-unit": 42.0,
        f"{dev}-dim": 43.0,
        f"{dev}-phys": 44.0,
        f"{dev}-seq": 45.0,
        f"{dev}-nanliteral": 46.0,
    }
    wait_for(
        lambda: {p["device_id"] for p in points_for(local_stack, dev).values()} >= set(kept),
        90,
        "the valid metrics of partly rejected readings",
        pipeline.logs,
    )
    points = points_for(local_stack, dev)
    assert {p["device_id"] for p in points.values()} == set(kept)
    for p in points.values():
        assert p["fields"]["humidity"] == kept[p["device_id"]]
        assert "temperature" not in p["fields"]
        assert "seq" not in p["fields"]


HOSTILE = [
    "with space",
    "with,comma",
    "with=equals",
    'with"double"quotes',
    "with'single'quotes",
    "back\\slash",
    "double\\\\backslash",
    'all of, them="at" \\once',
    "dévice-ünïcødé-東京-🚀",
]


def test_hostile_device_ids_and_tags_round_trip_exactly(
    pipeline: RunningPipeline, publisher: Publisher, local_stack: LocalStack
) -> None:
    prefix = _prefix()
    devices = [f"{prefix} {name}" for name in HOSTILE]
    tags = {
        d: {"site": f'Hall {i}, "north" = A\\B', "line": f"ligne-é-{i}", "model": "m\\x=1,2"}
        for i, d in enumerate(devices)
    }
    # Line protocol cannot carry a tag value that ends in a backslash (it would escape the
    # separator after it): ingest refuses such a device id at the edge, its telemetry and its
    # metadata alike, with a reason (never mangled, never a point).
    unstorable = f"{prefix} trailing-backslash\\"
    dlq_start = end_offsets(local_stack.kafka.address, [DLQ])
    _load_metadata(pipeline, publisher, tags)
    publisher.publish(f"devices/{unstorable}/metadata", b'{"site": "ok"}', retain=True)
    base = _now_ms() - 30_000
    for i, device in enumerate([*devices, unstorable]):
        for k in range(2):
            payload = {"ts": base + k, "metrics": {"humidity": 10.0 + i + k / 10}}
            publisher.publish(f"devices/{device}/telemetry", json.dumps(payload).encode())
    n = 2 * len(devices)
    wait_for(
        lambda: len(points_for(local_stack, prefix)) >= n,
        120,
        f"{n} points for hostile ids",
        pipeline.logs,
    )
    codec = default_codec()
    letters = consume_until(
        local_stack.kafka.address,
        [DLQ],
        lambda ms: len(ms) >= 3,
        timeout=60,
        keep=lambda m: _dead_letter_from(codec, m, unstorable) is not None,
        start=dlq_start,
    )
    time.sleep(3)
    points = points_for(local_stack, prefix)
    assert len(points) == n, sorted(points)
    assert {p["device_id"] for p in points.values()} == set(devices)
    for p in points.values():
        i = devices.index(p["device_id"])
        assert p["tags"] == tags[p["device_id"]]
        assert set(p["fields"]) == {"humidity"}
        assert p["fields"]["humidity"] in (10.0 + i, 10.0 + i + 0.1)
    decoded = [_dead_letter_from(codec, m, unstorable) for m in letters]
    assert sorted((x["stage"], x["reason"]) for x in decoded if x is not None) == [
        ("ingest", "invalid_device_id"), ("ingest", "invalid_device_id"),
        ("metadata", "invalid_device_id")]
    assert all(x is not None and "backslash" in x["detail"] for x in decoded)


def _dead_letter_from(codec: Any, message: Any, device_id: str) -> dict[str, Any] | None:
    """The decoded dead letter if it came from one of `device_id`'s topics (other tests write
    junk too)."""
    try:
        letter = codec.decode(message.value() or b"")
    except CodecError:
        return None
    topic = letter.get("source_topic") or ""
    return letter if topic.startswith(f"devices/{device_id}/") else None


def test_the_same_reading_sent_twice_is_stored_once(
    pipeline: RunningPipeline, publisher: Publisher, local_stack: LocalStack
) -> None:
    prefix = _prefix()
    device = f"{prefix}-dup"
    payload = json.dumps({"ts": _now_ms() - 5000, "seq": 9, "metrics": {"humidity": 55.5}})
    publisher.publish(f"devices/{device}/telemetry", payload.encode())
    publisher.publish(f"devices/{device}/telemetry", payload.encode())
    # A second, later reading shows both copies went through the pipeline before we count.
    later = json.dumps({"ts": _now_ms(), "seq": 10, "metrics": {"humidity": 56.5}})
    publisher.publish(f"devices/{device}/telemetry", later.encode())
    wait_for(lambda: len(points_for(local_stack, prefix)) >= 2, 90, "both readings", pipeline.logs)
    time.sleep(3)
    points = points_for(local_stack, prefix)
    assert sorted(p["fields"]["seq"] for p in points.values()) == [9, 10]
    produced = metric_value(pipeline.ingest.metrics(), "telemetry_ingest_readings_produced")
    assert produced >= 3  # all three readings went to Kafka: the store made the copy one point


def test_processes_answer_health_and_metrics(pipeline: RunningPipeline) -> None:
    for c in (pipeline.ingest, pipeline.process, pipeline.sink):
        text = c.metrics()
        assert "telemetry_" in text, c.args
