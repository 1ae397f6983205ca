"""A taken batch's records go out as one Kafka batch per partition, keyed as Kafka would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from plumbing.topics import DLQ, ENRICHED
from processors.forwarder import Forwarder, Outbox, Send
from processors.settings import ProcessorSettings
from schemas.codec import default_codec


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes, headers: Any) -> Any:
        if self.records and len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()


class FakeProducer:
    """aiokafka's batch API as the outbox uses it."""

    def __init__(self, capacity: int = 100) -> None:
        self.capacity = capacity
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch.records))
        return asyncio.get_running_loop().create_future()


class Message:
    topic, partition, key, value = "telemetry.raw", 0, b"dev-1", b"raw bytes"


def outbox_with(producer: FakeProducer, tmp_path: Path, max_bytes: int = 10_000) -> Outbox:
    app = faust.App("unit-outbox", web_enabled=False, autodiscover=False, datadir=str(tmp_path))
    forwarder = Forwarder(app, ProcessorSettings(), lambda agent, exc: None)
    forwarder.kafka_producer = lambda: producer  # type: ignore[method-assign]
    forwarder.max_record_bytes = max_bytes
    return Outbox(forwarder, "validate")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_one_batch_per_partition_at_the_key_partition(tmp_path: Path) -> None:
    producer = FakeProducer()

    async def main() -> Outbox:
        outbox = outbox_with(producer, tmp_path)
        for n in range(30):
            key = f"dev-{n % 10}".encode()
            await outbox.add(Send(ENRICHED, key, b"v%d" % n), Message(), [])
        await outbox.send()
        return outbox

    outbox = run(main())
    partitions = {p for _, p, _ in producer.sent}
    assert len(producer.sent) == len(partitions) == len(outbox.deliveries)
    for topic, partition, records in producer.sent:
        assert topic == ENRICHED
        for key, _ in records:
            assert key is not None
            assert partition == (murmur2(key) & 0x7FFFFFFF) % 6
    # every record once, and each device's records in the order given
    assert sorted(v for _, _, rs in producer.sent for _, v in rs) == sorted(
        b"v%d" % n for n in range(30))
    for _, _, records in producer.sent:
        for device in {k for k, _ in records}:
            values = [int(v[1:]) for k, v in records if k == device]
            assert values == sorted(values)
    assert outbox.forwarded == 30


def test_a_full_batch_is_sent_and_the_next_started(tmp_path: Path) -> None:
    producer = FakeProducer(capacity=4)

    async def main() -> None:
        outbox = outbox_with(producer, tmp_path)
        for n in range(10):
            await outbox.add(Send(ENRICHED, b"same-device", b"v%d" % n), Message(), [])
        await outbox.send()

    run(main())
    assert [len(records) for _, _, records in producer.sent] == [4, 4, 2]
    assert [v for _, _, rs in producer.sent for _, v in rs] == [b"v%d" % n for n in range(10)]


def test_a_record_too_large_for_kafka_becomes_a_dead_letter(tmp_path: Path) -> None:
    producer = FakeProducer()

    async def main() -> Outbox:
        outbox = outbox_with(producer, tmp_path, max_bytes=100)
        await outbox.add(Send(ENRICHED, b"dev-1", b"x" * 500), Message(), [])
        await outbox.send()
        return outbox

    outbox = run(main())
    [(topic, _, [(key, value)])] = producer.sent
    assert topic == DLQ and key == b"dev-1"
    letter = default_codec().decode(value)
    assert letter["reason"] == "payload_too_large" and "505 bytes" in letter["detail"]
    assert letter["original"] == b"raw bytes"
    assert outbox.forwarded == 0  # a dead letter is not a forwarded reading
