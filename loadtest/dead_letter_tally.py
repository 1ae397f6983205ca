"""Counts dead letters on telemetry.dlq by reason, from a starting point onwards.

Reading the topic (rather than the components' counters) counts what really reached the
dead-letter topic, and a device-id prefix keeps other traffic on a shared stack out.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from plumbing.topics import DLQ
from schemas.codec import CodecError, default_codec

log = logging.getLogger("loadtest.dead_letters")

UNDECODABLE = "(undecodable dead letter)"


class DeadLetterTally:
    def __init__(self, kafka_config: dict[str, Any], prefix: str | None = None) -> None:
        self.consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"loadtest-dlq-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.prefix = prefix
        self.counts: Counter[str] = Counter()
        self.seen = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dlq-tally", daemon=True)

    def start(self, timeout: float = 10.0) -> DeadLetterTally:
        """Starts counting from the topic's current end."""
        meta = self.consumer.list_topics(DLQ, timeout=timeout)
        partitions = sorted(meta.topics[DLQ].partitions) if DLQ in meta.topics else []
        if not partitions:
            raise KafkaException(f"topic {DLQ} not found; is the stack up (`telemetry stack up`)?")
        assignment = []
        for p in partitions:
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(DLQ, p), timeout=timeout, cached=False
            )
            assignment.append(TopicPartition(DLQ, p, high))
        self.consumer.assign(assignment)
        self._thread.start()
        return self

    def _mine(self, record: dict[str, Any]) -> bool:
        """Whether a dead letter came from this run's devices (by id, topic or bytes)."""
        if self.prefix is None:
            return True
        device_id = record.get("device_id")
        if device_id:
            return str(device_id).startswith(self.prefix)
        topic = str(record.get("source_topic") or "")
        if topic.startswith(f"devices/{self.prefix}"):
            return True
        return self.prefix.encode() in (record.get("original") or b"")

    def _loop(self) -> None:
        codec = default_codec()
        while not self._stop.is_set():
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                record = codec.decode(msg.value() or b"")
            except CodecError:
                record = {
                    "reason": UNDECODABLE,
                    "device_id": (msg.key() or b"").decode(errors="replace"),
                }
            if self._mine(record):
                with self._lock:
                    self.counts[str(record.get("reason"))] += 1
                    self.seen += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.consumer.close()
