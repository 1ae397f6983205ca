"""Small real-Kafka helpers for tests: unique topics, produce, consume until a condition."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap: str, partitions: int = 3, prefix: str = "test") -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(30)
    return name


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[str] = []

    def on_delivery(err: object, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "messages still in the producer queue after 30 s"
    assert not errors, errors


def end_offsets(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Where each partition of `topics` ends now: read from there to see only what comes."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        metadata = consumer.list_topics(timeout=10)
        return [
            TopicPartition(t, p, consumer.get_watermark_offsets(TopicPartition(t, p), 10)[1])
            for t in topics
            for p in sorted(metadata.topics[t].partitions)
        ]
    finally:
        consumer.close()


def commit_end_offsets(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commits where `topics` end now for a group nobody joined yet: a worker started in it
    processes only what comes after."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=end_offsets(bootstrap, topics), asynchronous=False)
    finally:
        consumer.close()


def consume_until(
    bootstrap: str,
    topics: list[str],
    done: Callable[[list[Message]], bool],
    timeout: float = 60.0,
    group: str | None = None,
    keep: Callable[[Message], bool] = lambda m: True,
    start: list[TopicPartition] | None = None,
) -> list[Message]:
    """Reads from `start` (default: the earliest offset, with a fresh group) until
    `done(kept messages)`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    if start is not None:
        consumer.assign(start)
    else:
        consumer.subscribe(topics)
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if done(got):
                    return got
                continue
            if keep(msg):
                got.append(msg)
            if done(got):
                return got
    finally:
        consumer.close()
    return got
