"""The batching base's loop with its real writer thread, a fake consumer and a fake database
(pure logic: no Kafka, no database). Batch k is written while batch k+1 is built, and yet
offsets are committed only after their batch's write returned, strictly in batch order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from schemas.codec import default_codec
from sinks.batching import BatchingSink, Destination
from sinks.line_protocol import Dialect
from sinks.settings import InfluxDBSinkSettings
from sinks.write_errors import RefusedWriteError, RetryableWriteError

TOPIC = "telemetry.enriched"
WAIT_S = 10.0


class Message:
    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"dev"

    def value(self) -> bytes:
        return self._value


class FakeConsumer:
    """Hands out queued records; paused partitions hand out nothing. Records every commit."""

    def __init__(self, log: list[tuple[Any, ...]], partitions: int = 2) -> None:
        self.log = log
        self.records: deque[Message] = deque()
        self.assigned = [TopicPartition(TOPIC, p) for p in range(partitions)]
        self.paused: set[int] = set()
        self.commits: list[list[tuple[str, int, int]]] = []
        self.on_consume: Callable[[], None] | None = None
        self._next = dict.fromkeys(range(partitions), 0)

    def feed(self, count: int) -> None:
        """`count` readings, alternating between the partitions."""
        for i in range(count):
            p = i % len(self.assigned)
            offset = self._next[p]
            self._next[p] += 1
            value = default_codec().encode("EnrichedReading", {
                "device_id": f"dev-{p}", "ts_us": 1_763_701_200_000_000 + offset * 10 + p,
                "received_at_ms": 1_763_701_200_000, "seq": offset, "fields": {"v": float(offset)},
                "units": {}, "tags": {},
            })
            self.records.append(Message(p, offset, value))

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.on_consume is not None:
            hook, self.on_consume = self.on_consume, None
            hook()
        out: list[Message] = []
        while self.records and len(out) < num_messages:
            if self.records[0].partition() in self.paused:
                break
            out.append(self.records.popleft())
        if not out:
            threading.Event().wait(min(timeout, 0.002))
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        done = [(tp.topic, tp.partition, tp.offset) for tp in offsets]
        self.commits.append(done)
        self.log.append(("commit", done))

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return []


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        self.sent.append(value)

    def flush(self, timeout: float) -> int:
        return 0


class GatedDatabase(Destination):
    """Each write waits until the test opens its gate; it then fails as `failures` says."""

    name = "influxdb"
    dialect = Dialect.INFLUXDB

    def __init__(self, log: list[tuple[Any, ...]], gated: bool = True) -> None:
        self.log = log
        self.gated = gated
        self.gates: dict[int, threading.Event] = {}
        self.failures: deque[Exception | None] = deque()
        self.calls = 0
        self.inside = threading.Event()
        self.stored: list[str] = []
        self.refuse: set[str] = set()

    def gate(self, call: int) -> threading.Event:
        return self.gates.setdefault(call, threading.Event())

    def write(self, batch: Sequence[str]) -> None:
        self.calls += 1
        call = self.calls
        self.log.append(("write-start", call, list(batch)))
        self.inside.set()
        if self.gated:
            assert self.gate(call).wait(WAIT_S), f"write {call} was never released"
        self.inside.clear()
        failure = self.failures.popleft() if self.failures else None
        refused = [line for line in batch if line in self.refuse]
        if failure is None:
            self.stored.extend(line for line in batch if line not in self.refuse)
        self.log.append(("write-end", call, failure))
        if failure is not None:
            raise failure
        if refused:
            raise RefusedWriteError(f"refused {len(refused)}")


def make_sink(
    db: GatedDatabase, consumer: FakeConsumer, max_points: int = 10
) -> BatchingSink:
    settings = InfluxDBSinkSettings(
        sink_batch_max_points=max_points, sink_batch_max_age_ms=60_000,
        sink_retry_initial_s=0.001, sink_retry_max_s=0.002, sink_shutdown_timeout_s=5,
    )
    sink = BatchingSink(settings, db)
    sink.consumer = consumer  # type: ignore[assignment]
    sink.producer = FakeProducer()  # type: ignore[assignment]
    return sink


def end_to_end_count() -> float:
    value = REGISTRY.get_sample_value("telemetry_sink_end_to_end_seconds_count",
                                      {"sink": "influxdb"})
    return value or 0.0


def step_until(sink: BatchingSink, what: str, check: Callable[[], bool]) -> None:
    for _ in range(20_000):
        if check():
            return
        sink.step()
    raise AssertionError(f"never: {what}")


@pytest.fixture()
def log() -> list[tuple[Any, ...]]:
    return []


def offsets_of(lines: list[str]) -> dict[int, int]:
    """partition -> next offset, from the lines of a batch (seq is the offset here)."""
    out: dict[int, int] = {}
    for line in lines:
        partition = int(line.split(",device_id=dev-")[1].split(" ")[0])
        seq = int(line.split("seq=")[1].split("i")[0])
        out[partition] = max(out.get(partition, 0), seq + 1)
    return out


def test_next_batch_is_built_while_one_is_written_and_commits_follow_each_write(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log), FakeConsumer(log)
    sink = make_sink(db, consumer)
    consumer.feed(35)
    try:
        step_until(sink, "batch 1 in the database's hands", db.inside.is_set)
        # Batch 1 is being written; the consumer thread goes on taking records for batch 2.
        step_until(sink, "batch 2 built during write 1", sink.batch.is_full)
        assert db.calls == 1 and consumer.commits == []
        for _ in range(3):  # full and waiting (0.5 s each): nothing taken, nothing committed
            sink.step()
        assert sink.batch.records == 10 and consumer.commits == [] and len(consumer.records) == 15
        db.gate(1).set()
        step_until(sink, "batch 1 committed", lambda: len(consumer.commits) == 1)
        step_until(sink, "batch 2 handed over", lambda: db.calls == 2)
        db.gate(2).set()
        db.gate(3).set()
        step_until(sink, "batch 3 committed", lambda: len(consumer.commits) == 3)
    finally:
        for gate in range(1, 5):
            db.gate(gate).set()
        sink.writer.stop()
    # Every commit comes after its own write returned, in order, and covers exactly its batch.
    events = [e[0] for e in log]
    assert events == ["write-start", "write-end", "commit"] * 3
    written = [e[2] for e in log if e[0] == "write-start"]
    commits = [dict((p, o) for _, p, o in c) for c in consumer.commits]
    assert commits == [offsets_of(w) for w in written]
    assert [len(w) for w in written] == [10, 10, 10]
    assert sink.batch.records == 5  # the rest waits for its batch to be due


def test_a_failed_write_lets_no_later_batch_commit_then_both_commit_in_order(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log, gated=False), FakeConsumer(log)
    db.failures.extend([RetryableWriteError("down"), RetryableWriteError("still down")])
    sink = make_sink(db, consumer)
    consumer.feed(15)
    try:
        step_until(sink, "write 1 failed and paused", lambda: sink.retry_at is not None)
        assert consumer.paused == {0, 1}
        assert sink.batch.records == 5  # batch 2 was being built: it waits for batch 1
        step_until(sink, "batch 1 written on the third try", lambda: len(consumer.commits) == 1)
        assert consumer.paused == set() and sink.retry_at is None
        sink.batch.started_at = -1e9  # batch 2 is due now
        step_until(sink, "batch 2 committed", lambda: len(consumer.commits) == 2)
    finally:
        sink.writer.stop()
    starts = [e for e in log if e[0] == "write-start"]
    assert [e[2] for e in starts[:3]] == [starts[0][2]] * 3  # the same batch, again and again
    assert [e[0] for e in log] == ["write-start", "write-end"] * 3 + ["commit"] + [
        "write-start", "write-end", "commit"]
    assert consumer.commits == [
        [(TOPIC, 0, 5), (TOPIC, 1, 5)],
        [(TOPIC, 0, 8), (TOPIC, 1, 7)],
    ]
    assert len(db.stored) == 15


def test_a_write_that_keeps_failing_never_commits_and_the_next_batch_waits(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log, gated=False), FakeConsumer(log)
    db.failures.extend([RetryableWriteError("down")] * 10_000)
    sink = make_sink(db, consumer)
    consumer.feed(25)
    try:
        step_until(sink, "several retries", lambda: db.calls >= 5)
    finally:
        db.failures.clear()
        sink.stopping = True
        sink.writer.stop()
    assert consumer.commits == []
    assert {tuple(e[2]) for e in log if e[0] == "write-start"} == {
        tuple(next(e[2] for e in log if e[0] == "write-start"))}  # only batch 1 was tried
    assert sink.batch.records == 10 and len(consumer.records) == 5


def test_revoke_writes_and_commits_the_batch_in_hand_and_the_one_being_built(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log), FakeConsumer(log)
    sink = make_sink(db, consumer)
    consumer.feed(14)
    step_until(sink, "batch 1 in the database's hands", db.inside.is_set)
    step_until(sink, "batch 2 started", lambda: sink.batch.records == 4)

    def rebalance() -> None:
        threading.Timer(0.05, db.gate(1).set).start()
        db.gate(2).set()
        sink._on_revoke(consumer, consumer.assignment())  # type: ignore[arg-type]

    consumer.on_consume = rebalance
    try:
        sink.step()
    finally:
        sink.writer.stop()
    assert consumer.commits == [
        [(TOPIC, 0, 5), (TOPIC, 1, 5)],
        [(TOPIC, 0, 7), (TOPIC, 1, 7)],
    ]
    assert [e[0] for e in log] == ["write-start", "write-end", "commit"] * 2
    assert sink.batch.records == 0 and sink.handed is None


def test_revoke_while_retrying_drops_what_was_taken_uncommitted(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log, gated=False), FakeConsumer(log)
    db.failures.extend([RetryableWriteError("down")] * 10_000)
    sink = make_sink(db, consumer)
    consumer.feed(14)
    try:
        step_until(sink, "retrying", lambda: sink.retry_at is not None and sink.batch.records > 0)
        sink._on_revoke(consumer, consumer.assignment())  # type: ignore[arg-type]
    finally:
        sink.writer.stop()
    assert consumer.commits == []
    assert sink.handed is None and sink.batch.records == 0 and sink.retry_at is None


def test_drain_writes_the_batch_in_hand_then_the_one_being_built(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log), FakeConsumer(log)
    sink = make_sink(db, consumer)
    consumer.feed(13)
    step_until(sink, "batch 1 in the database's hands", db.inside.is_set)
    step_until(sink, "batch 2 started", lambda: sink.batch.records == 3)
    db.gate(1).set()
    db.gate(2).set()
    sink.stopping = True
    try:
        sink._drain()
    finally:
        sink.writer.stop()
    assert consumer.commits == [
        [(TOPIC, 0, 5), (TOPIC, 1, 5)],
        [(TOPIC, 0, 7), (TOPIC, 1, 6)],
    ]
    assert consumer.paused == {0, 1}  # nothing new was taken


def test_refused_points_become_dead_letters_before_the_commit(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log, gated=False), FakeConsumer(log)
    sink = make_sink(db, consumer)
    consumer.feed(10)
    line = sink.encoder.encode(default_codec().decode(consumer.records[3].value()))
    db.refuse = {line}
    stored_before = end_to_end_count()
    try:
        step_until(sink, "batch committed", lambda: len(consumer.commits) == 1)
    finally:
        sink.writer.stop()
    assert end_to_end_count() - stored_before == 9  # the refused point was never stored
    assert isinstance(sink.producer, FakeProducer)
    [letter] = [default_codec().decode(v) for v in sink.producer.sent]
    assert letter["reason"] == "database_rejected" and letter["original"] == line.encode()
    assert len(set(db.stored)) == 9 and line not in db.stored  # partial writes repeat some
    assert consumer.commits == [[(TOPIC, 0, 5), (TOPIC, 1, 5)]]


def test_an_unexpected_error_in_the_writer_is_raised_in_the_loop(
    log: list[tuple[Any, ...]],
) -> None:
    db, consumer = GatedDatabase(log, gated=False), FakeConsumer(log)
    db.failures.append(ZeroDivisionError("a bug"))
    sink = make_sink(db, consumer)
    consumer.feed(10)
    try:
        with pytest.raises(ZeroDivisionError):
            step_until(sink, "the error", lambda: False)
    finally:
        sink.writer.stop()
    assert consumer.commits == []
