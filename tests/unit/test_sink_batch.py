"""Batch accounting: when a batch is full or due, which offsets it may commit, what a
rebalance drops. A fake clock stands in for time (pure logic)."""

from __future__ import annotations

from sinks.batching import Batch, PendingPoint


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def point(topic: str, partition: int, offset: int) -> PendingPoint:
    return PendingPoint(f"m,device_id=d v={offset}.0 {offset}", "d", topic, partition, offset)


def test_full_at_max_records_counting_points_and_dead_letters() -> None:
    batch = Batch(max_records=3, max_age_s=10, clock=FakeClock())
    batch.add_point(point("t", 0, 0))
    batch.add_dead_letter({"reason": "undecodable_record"}, "t", 0, 1)
    assert not batch.is_full() and not batch.is_due()
    batch.add_point(point("t", 1, 0))
    assert batch.is_full() and batch.is_due() and len(batch) == 3


def test_due_max_age_after_the_first_record_not_before() -> None:
    clock = FakeClock()
    batch = Batch(max_records=5000, max_age_s=0.5, clock=clock)
    assert not batch.is_due() and batch.seconds_until_due() is None
    clock.now += 60  # an empty batch never becomes due
    assert not batch.is_due()
    batch.add_point(point("t", 0, 0))
    assert batch.seconds_until_due() == 0.5
    clock.now += 0.3
    batch.add_point(point("t", 0, 1))
    assert not batch.is_due()
    assert abs((batch.seconds_until_due() or 0) - 0.2) < 1e-9
    clock.now += 0.2
    assert batch.is_due() and batch.seconds_until_due() == 0.0


def test_commit_offsets_are_the_next_offset_of_every_partition() -> None:
    batch = Batch(max_records=100, max_age_s=1, clock=FakeClock())
    for offset in (5, 6, 9):  # gaps (transaction markers) are fine
        batch.add_point(point("a", 2, offset))
    batch.add_dead_letter({}, "b", 0, 41)
    batch.add_point(point("a", 0, 3))
    assert batch.commit_offsets() == [("a", 0, 4), ("a", 2, 10), ("b", 0, 42)]


def test_clear_starts_a_new_batch() -> None:
    clock = FakeClock()
    batch = Batch(max_records=100, max_age_s=1, clock=clock)
    batch.add_point(point("a", 0, 1))
    batch.written = 1
    batch.clear()
    assert batch.records == 0 and batch.commit_offsets() == [] and batch.written == 0
    clock.now += 5
    batch.add_point(point("a", 0, 2))
    assert not batch.is_due()


def test_unwritten_points_are_those_after_the_written_mark() -> None:
    batch = Batch(max_records=100, max_age_s=1, clock=FakeClock())
    for offset in range(4):
        batch.add_point(point("a", 0, offset))
    batch.written = 3
    batch.add_point(point("a", 0, 4))  # arrived while the DLQ step was being retried
    assert [p.offset for p in batch.unwritten()] == [3, 4]


def test_drop_partitions_forgets_only_the_revoked_ones() -> None:
    batch = Batch(max_records=100, max_age_s=1, clock=FakeClock())
    batch.add_point(point("a", 0, 10))
    batch.add_point(point("a", 1, 20))
    batch.add_point(point("a", 0, 11))
    batch.add_dead_letter({}, "a", 1, 21)
    batch.add_point(point("a", 1, 22))
    batch.written = 3  # a0@10, a1@20, a0@11 written
    assert batch.drop_partitions([("a", 1), ("zz", 9)]) == 3
    assert [(p.partition, p.offset) for p in batch.points] == [(0, 10), (0, 11)]
    assert batch.written == 2
    assert batch.dead_letters == []
    assert batch.commit_offsets() == [("a", 0, 12)]
    assert batch.drop_partitions([("a", 0)]) == 2
    assert batch.records == 0 and batch.started_at is None and batch.written == 0


def test_drop_of_partitions_not_in_the_batch_changes_nothing() -> None:
    batch = Batch(max_records=100, max_age_s=1, clock=FakeClock())
    batch.add_point(point("a", 0, 1))
    assert batch.drop_partitions([("a", 3)]) == 0
    assert batch.records == 1
