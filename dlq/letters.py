"""Reads the dead-letter topic from a point in time up to where it ended when reading began.

A dead letter's identity is where it sits (topic, partition, offset): replay records that, and
show prints it, so a record can be found again. Undecodable records are yielded too (with the
reason they could not be read), never skipped silently.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.codec import CodecError, default_codec

log = logging.getLogger("dlq.letters")

#: Producers' clocks differ and a record's Kafka timestamp is set when it is produced, after
#: its `rejected_at_ms`: seek this much before `since`, then filter on `rejected_at_ms`.
SEEK_SLACK_MS = 60_000
#: A partition is read past `until` by this much (a sink sends its dead letters after the
#: write attempt, which may retry for minutes), then left.
UNTIL_SLACK_MS = 300_000
#: No record for this long while partitions are unfinished: stop and say so.
IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StoredLetter:
    """One record of the dead-letter topic: where it sits and what it says."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    #: The decoded DeadLetter (newest schema version); None when it could not be read.
    record: dict[str, Any] | None
    #: Why `record` is None.
    error: str | None = None

    @property
    def id(self) -> str:
        """`<topic>/<partition>/<offset>`: the key of the replay log."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def rejected_at_ms(self) -> int:
        if self.record is not None:
            return int(self.record["rejected_at_ms"])
        return self.timestamp_ms


@dataclass
class TopicRange:
    """Where reading starts and ends in each partition (ends fixed when reading began)."""

    topic: str
    start: dict[int, int] = field(default_factory=dict)
    end: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Records in the range (what a progress bar counts to)."""
        return sum(max(0, self.end[p] - self.start[p]) for p in self.start)


def decode_letter(
    topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None,
    value: bytes | None,
) -> StoredLetter:
    """The record as a StoredLetter; `error` says why when it is not a DeadLetter we read."""
    try:
        record = default_codec().decode(value or b"", reader="DeadLetter")
    except CodecError as exc:
        return StoredLetter(topic, partition, offset, timestamp_ms, key, None, str(exc))
    return StoredLetter(topic, partition, offset, timestamp_ms, key, record)


class LetterReader:
    """Reads one dead-letter topic with a throwaway consumer (no group offsets committed)."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, timeout_s: float = 10.0) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.consumer = Consumer({
            **kafka_config,
            "group.id": f"telemetry-dlq-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        })

    def range(self, since_ms: int | None = None) -> TopicRange:
        """From the first record at or after `since_ms` (the topic's start when None) to the
        end of every partition now."""
        meta = self.consumer.list_topics(self.topic, timeout=self.timeout_s)
        found = meta.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaException(f"topic {self.topic} not found; is the stack up?")
        partitions = sorted(found.partitions)
        where = TopicRange(self.topic)
        for p in partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=self.timeout_s, cached=False)
            where.start[p], where.end[p] = low, high
        if since_ms is not None:
            asked = [TopicPartition(self.topic, p, max(0, since_ms - SEEK_SLACK_MS))
                     for p in partitions]
            for tp in self.consumer.offsets_for_times(asked, timeout=self.timeout_s):
                # -1: no record at or after that time
                where.start[tp.partition] = (
                    where.end[tp.partition] if tp.offset < 0 else max(tp.offset,
                                                                      where.start[tp.partition]))
        return where

    def read(self, where: TopicRange, until_ms: int | None = None) -> Iterator[StoredLetter]:
        """Every record of the range, partition by partition interleaved as Kafka serves them."""
        left = {p for p in where.start if where.start[p] < where.end[p]}
        if not left:
            return
        self.consumer.assign([
            TopicPartition(self.topic, p, where.start[p] if where.start[p] > 0
                           else OFFSET_BEGINNING)
            for p in sorted(left)
        ])
        stop_after = None if until_ms is None else until_ms + UNTIL_SLACK_MS
        idle_since = time.monotonic()
        while left:
            messages = self.consumer.consume(500, timeout=1.0)
            if not messages:
                if time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                    log.warning("no record for %.0f s; partitions %s left unfinished",
                                IDLE_TIMEOUT_S, sorted(left))
                    return
                continue
            idle_since = time.monotonic()
            for msg in messages:
                partition = msg.partition() or 0
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        left.discard(partition)
                        continue
                    if err.fatal():
                        raise KafkaException(err)
                    log.warning("consumer error: %s", err)
                    continue
                if partition not in left:
                    continue
                offset = msg.offset() or 0
                if offset >= where.end[partition] - 1:
                    left.discard(partition)
                    if offset >= where.end[partition]:
                        continue  # arrived after reading began
                _, timestamp_ms = msg.timestamp()
                if stop_after is not None and timestamp_ms > stop_after:
                    left.discard(partition)
                    continue
                yield decode_letter(self.topic, partition, offset, timestamp_ms, msg.key(),
                                    msg.value())

    def close(self) -> None:
        self.consumer.close()
