"""What a sink has consumed but not yet committed: points to write, dead letters to send,
and the offsets that may be committed once both are done."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class PendingPoint:
    """One reading as a line, and where it came from (for its dead letter if refused)."""

    line: str
    device_id: str
    topic: str
    partition: int
    offset: int
    received_at_ms: int = 0


@dataclass(slots=True)
class PendingDeadLetter:
    record: dict[str, Any]
    topic: str
    partition: int


@dataclass
class Batch:
    """Records since the last commit. Full at `max_records`; due `max_age_s` after the first."""

    max_records: int
    max_age_s: float
    clock: Callable[[], float] = time.monotonic
    points: list[PendingPoint] = field(default_factory=list)
    #: Records that became dead letters before any write (undecodable, unrepresentable).
    dead_letters: list[PendingDeadLetter] = field(default_factory=list)
    #: Dead letters of points the database refused.
    refused: list[PendingDeadLetter] = field(default_factory=list)
    #: Highest offset consumed per partition: everything up to it is in this batch.
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    #: `points[:written]` are in the database (or in `refused`); a retry writes only the rest.
    written: int = 0
    started_at: float | None = None

    def add_point(self, point: PendingPoint) -> None:
        self.points.append(point)
        self._consumed(point.topic, point.partition, point.offset)

    def add_dead_letter(
        self, record: dict[str, Any], topic: str, partition: int, offset: int
    ) -> None:
        self.dead_letters.append(PendingDeadLetter(record, topic, partition))
        self._consumed(topic, partition, offset)

    def _consumed(self, topic: str, partition: int, offset: int) -> None:
        if self.started_at is None:
            self.started_at = self.clock()
        key = (topic, partition)
        if offset > self.offsets.get(key, -1):
            self.offsets[key] = offset

    @property
    def records(self) -> int:
        """Records consumed: each became a point or a dead letter."""
        return len(self.points) + len(self.dead_letters)

    def __len__(self) -> int:
        return self.records

    def unwritten(self) -> list[PendingPoint]:
        return self.points[self.written :]

    def all_dead_letters(self) -> list[PendingDeadLetter]:
        return self.dead_letters + self.refused

    def is_full(self) -> bool:
        return self.records >= self.max_records

    def is_due(self) -> bool:
        return self.started_at is not None and (
            self.is_full() or self.clock() - self.started_at >= self.max_age_s
        )

    def seconds_until_due(self) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, self.max_age_s - (self.clock() - self.started_at))

    def commit_offsets(self) -> list[tuple[str, int, int]]:
        """(topic, partition, next offset to read) for every partition in the batch."""
        return [(t, p, o + 1) for (t, p), o in sorted(self.offsets.items())]

    def drop_partitions(self, revoked: Iterable[TopicPartition]) -> int:
        """Forgets what came from partitions this consumer lost; returns how many records.

        Nothing of theirs was committed, so whoever owns them next reads them again.
        """
        gone = set(revoked) & set(self.offsets)
        if not gone:
            return 0
        before = self.records
        written = [p for p in self.points[: self.written] if (p.topic, p.partition) not in gone]
        rest = [p for p in self.points[self.written :] if (p.topic, p.partition) not in gone]
        self.points = written + rest
        self.written = len(written)
        self.dead_letters = [d for d in self.dead_letters if (d.topic, d.partition) not in gone]
        self.refused = [d for d in self.refused if (d.topic, d.partition) not in gone]
        for key in gone:
            del self.offsets[key]
        dropped = before - self.records
        if not self.offsets:
            self.clear()
        return dropped

    def clear(self) -> None:
        self.points = []
        self.dead_letters = []
        self.refused = []
        self.offsets = {}
        self.written = 0
        self.started_at = None
