"""The record of replayed dead letters: a compacted Kafka topic keyed by the letter's place.

Key `<topic>/<partition>/<offset>` of the dead letter, value a small JSON object (when, to
where). Compaction keeps one record per letter however often `--again` replays it. It lives
beside the data it describes, so every operator's replay sees every other's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


class ReplayLog:
    def __init__(self, kafka_config: dict[str, Any], topic: str, timeout_s: float = 30.0) -> None:
        self.kafka_config = kafka_config
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Producer | None = None

    def ensure_topic(self) -> None:
        """Creates the compacted topic unless it exists (one partition: it stays small)."""
        admin = AdminClient(self.kafka_config)
        if self.topic in admin.list_topics(timeout=self.timeout_s).topics:
            return
        new = NewTopic(self.topic, num_partitions=1, replication_factor=-1,
                       config={"cleanup.policy": "compact"})
        try:
            admin.create_topics([new], operation_timeout=self.timeout_s)[self.topic].result(
                self.timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def replayed(self) -> set[str]:
        """The ids of every dead letter recorded as replayed (empty when the topic is not
        there yet)."""
        consumer = Consumer({
            **self.kafka_config,
            "group.id": f"telemetry-dlq-log-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        })
        try:
            meta = consumer.list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return set()
            left: dict[int, int] = {}
            start = []
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=self.timeout_s, cached=False)
                if high > low:
                    left[p] = high
                    start.append(TopicPartition(self.topic, p, low))
            ids: set[str] = set()
            if not left:
                return ids
            consumer.assign(start)
            deadline = time.monotonic() + self.timeout_s
            while left:
                if time.monotonic() > deadline:
                    raise KafkaException(f"{self.topic}: not read to its end in "
                                         f"{self.timeout_s:.0f} s")
                for msg in consumer.consume(1000, timeout=1.0):
                    partition, offset = msg.partition() or 0, msg.offset() or 0
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            left.pop(partition, None)
                            continue
                        raise KafkaException(err)
                    deadline = time.monotonic() + self.timeout_s
                    key = (msg.key() or b"").decode("utf-8", "replace")
                    if msg.value() is None:
                        ids.discard(key)  # a tombstone: forgotten
                    else:
                        ids.add(key)
                    if offset >= left.get(partition, 0) - 1:
                        left.pop(partition, None)
            return ids
        finally:
            consumer.close()

    def record(self, entries: Iterable[tuple[str, str]]) -> None:
        """Records (dead letter id, where it went) and waits for Kafka to confirm them all."""
        if self._producer is None:
            self._producer = Producer({**self.kafka_config, "acks": "all",
                                       "enable.idempotence": True, "linger.ms": 20})
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        now = int(time.time() * 1000)
        for letter_id, to in entries:
            value = json.dumps({"replayed_at_ms": now, "to": to}).encode()
            while True:
                try:
                    self._producer.produce(self.topic, value, letter_id.encode(),
                                           on_delivery=delivered)
                    break
                except BufferError:
                    self._producer.poll(0.1)
        left = self._producer.flush(self.timeout_s)
        if left or errors:
            raise KafkaException(f"{self.topic} did not confirm {left or len(errors)} records "
                                 f"of what was replayed: {errors[:1]}")
