"""The batching base of every sink: Kafka in, line-protocol batches out, offsets committed
only after the database accepted the batch (DESIGN.md, "Delivery guarantees").

A destination (one file each: influxdb.py, tdengine.py) is a `Destination`: a name, a
line-protocol dialect and `write(batch)`. Everything else is here:

* The consumer thread (the caller of `run`) polls Kafka, turns each record into a line or a
  dead letter, fills a `Batch` and, when it is due, hands it to the writer thread. It goes on
  polling, decoding and encoding the next batch while that one is written.
* The writer thread (`BatchWriter`) writes one batch at a time: the destination's `write`,
  halves of it while refused points are looked for, then the batch's dead letters, confirmed
  by Kafka. It never touches the consumer.
* The consumer thread commits a batch's offsets after the writer reported it written, and
  hands the next batch over only then: batches are written and committed strictly in order,
  and at most two are in memory (one being written, one being built).
* A retryable failure pauses the assigned partitions; polling goes on (the consumer stays in
  its group and serves rebalances) and the same batch is handed again after an exponential
  backoff (`plumbing.backoff`: the cap doubles from `sink_retry_initial_s` up to
  `sink_retry_max_s`; each wait is drawn between half the cap and the cap).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import FrameType
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from plumbing.backoff import Backoff
from plumbing.dead_letters import dead_letter, encode_dead_letter
from plumbing.health import HealthState, serve_health
from plumbing.reasons import Reason
from schemas.codec import AvroCodec, CodecError, default_codec
from sinks.line_protocol import Dialect, ReadingEncoder, UnrepresentableError
from sinks.metrics import (
    BATCHES,
    COMMIT_FAILURES,
    CONSUMER_LAG,
    END_TO_END_SECONDS,
    PAUSED,
    POINTS_REFUSED,
    POINTS_WRITTEN,
    RETRIES,
    WRITE_ERRORS,
    WRITE_SECONDS,
)
from sinks.refusals import write_isolating_refused
from sinks.settings import SinkSettings
from sinks.write_errors import RefusedWriteError, RetryableWriteError

log = logging.getLogger(__name__)

MEASUREMENT = "telemetry"
READER = "EnrichedReading"
_POLL_S = 0.5
#: How long one poll waits while a batch is being written, so its commit follows promptly.
_POLL_WHILE_WRITING_S = 0.02
_LAG_EVERY_S = 5.0

TopicPartition = tuple[str, int]
_RECEIVED_AT_MS = attrgetter("received_at_ms")


# -- what is taken and not committed yet -------------------------------------------------------


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
    """Records taken since the last batch: the points to write, the dead letters to send and
    the offsets to commit once both are done. Full at `max_records`; due `max_age_s` after its
    first record."""

    max_records: int
    max_age_s: float
    clock: Callable[[], float] = time.monotonic
    points: list[PendingPoint] = field(default_factory=list)
    #: Records that became dead letters before any write (undecodable, unrepresentable).
    dead_letters: list[PendingDeadLetter] = field(default_factory=list)
    #: Dead letters of points the database refused.
    refused: list[PendingDeadLetter] = field(default_factory=list)
    #: Highest offset taken per partition: everything up to it is in this batch.
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    #: `points[:written]` are in the database (or in `refused`); a retry writes only the rest.
    written: int = 0
    started_at: float | None = None

    def add_point(self, point: PendingPoint) -> None:
        self.points.append(point)
        self._taken(point.topic, point.partition, point.offset)

    def add_dead_letter(
        self, record: dict[str, Any], topic: str, partition: int, offset: int
    ) -> None:
        self.dead_letters.append(PendingDeadLetter(record, topic, partition))
        self._taken(topic, partition, offset)

    def _taken(self, topic: str, partition: int, offset: int) -> None:
        if self.started_at is None:
            self.started_at = self.clock()
        key = (topic, partition)
        if offset > self.offsets.get(key, -1):
            self.offsets[key] = offset

    @property
    def records(self) -> int:
        """Records taken: each became a point or a dead letter."""
        return len(self.points) + len(self.dead_letters)

    def __len__(self) -> int:
        return self.records

    def room(self) -> int:
        """How many more records fit."""
        return max(0, self.max_records - self.records)

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


# -- a database ---------------------------------------------------------------------------------


class Destination:
    """One database. A subclass sets `name` and `dialect` and implements `write`.

    `write(batch)` gets the lines of a batch (or of a part of it, while the base looks for
    refused points) and raises `RetryableWriteError` (nothing wrong with the data: down,
    overloaded, misconfigured) or `RefusedWriteError` (the database refuses the data, in its
    own words). It runs on the writer thread, one call at a time.
    """

    name: ClassVar[str]
    dialect: ClassVar[Dialect]

    def setup(self) -> None:
        """Called once before the first write; a `RetryableWriteError` is logged, not fatal."""

    def write(self, batch: Sequence[str]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Called once at exit, after the last write."""


# -- the writer thread --------------------------------------------------------------------------

Outcome = tuple[Batch, BaseException | None]


class BatchWriter:
    """One thread that writes the batches handed to it, one at a time, in order.

    `submit` hands a batch over (only when none is in hand: `busy` is False); `outcome`
    returns the batch and the exception its write raised, if any. Only the consumer thread
    calls these.
    """

    def __init__(self, write: Callable[[Batch], None], name: str) -> None:
        self._write = write
        self._name = name
        self._inbox: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: A batch was submitted and its outcome not yet taken.
        self.busy = False

    def submit(self, batch: Batch) -> None:
        if self.busy:
            raise RuntimeError("the writer already has a batch")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self.busy = True
        self._inbox.put(batch)

    def outcome(self, timeout: float | None = None) -> Outcome | None:
        """The submitted batch's outcome, waiting up to `timeout` s (None: until there is one);
        None if there is none yet or nothing was submitted."""
        if not self.busy:
            return None
        try:
            result = self._outcomes.get(timeout=timeout) if timeout != 0 else (
                self._outcomes.get_nowait()
            )
        except queue.Empty:
            return None
        self.busy = False
        return result

    def stop(self) -> None:
        """Ends the thread once its batch (if any) is done."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(60)
            self._thread = None

    def _run(self) -> None:
        while (batch := self._inbox.get()) is not None:
            error: BaseException | None = None
            try:
                self._write(batch)
            except BaseException as exc:  # handed to the consumer thread, which decides
                error = exc
            self._outcomes.put((batch, error))


# -- the sink -----------------------------------------------------------------------------------


class BatchingSink:
    """Polls, batches, hands batches to the writer, pauses, retries, commits, dead-letters."""

    def __init__(
        self,
        settings: SinkSettings,
        destination: Destination,
        codec: AvroCodec | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.destination = destination
        self.sink = destination.name
        self.stage = f"sink-{destination.name}"
        self.codec = codec or default_codec()
        self.clock = clock
        self.encoder = ReadingEncoder(MEASUREMENT, destination.dialect)
        #: The batch being built from what is polled.
        self.batch = self._new_batch()
        #: The batch handed to the writer and not committed yet (being written, or failed
        #: and waiting for `retry_at`).
        self.handed: Batch | None = None
        self.writer = BatchWriter(self._write_batch, f"{self.stage}-writer")
        self.backoff = Backoff(settings.sink_retry_initial_s, settings.sink_retry_max_s)
        self.state = HealthState()
        #: When the failed `handed` batch is written again; None while writes succeed.
        self.retry_at: float | None = None
        self.stopping = False
        self._lag_at = 0.0
        self._delivery_errors: list[str] = []
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None

    def _new_batch(self) -> Batch:
        return Batch(
            self.settings.sink_batch_max_points,
            self.settings.sink_batch_max_age_ms / 1000,
            self.clock,
        )

    # -- process ----------------------------------------------------------------------------

    def run(self) -> int:
        """Consumes until SIGTERM/SIGINT, then writes, commits, closes; returns the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        server = serve_health(self.settings.health_port(), self.state)
        self.state.checks["database"] = lambda: self.retry_at is None
        log.info(
            "sink starting",
            extra={"sink": self.sink, "settings": self.settings.redacted()},
        )
        self.consumer = Consumer(self._consumer_config())
        self.producer = Producer(self._producer_config())
        try:
            if not self._wait_for_kafka():
                return 0
            self._setup_destination()
            self.consumer.subscribe(
                list(self.settings.sink_topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self.state.ready = True
            _tune_gc()
            while not self.stopping:
                self.step()
            self._drain()
        finally:
            self.state.ready = False
            self._close()
            server.shutdown()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("stopping on signal %s", signal.Signals(signum).name)
        self.stopping = True

    def _consumer_config(self) -> dict[str, Any]:
        return {
            **self.settings.confluent_config(),
            "group.id": self.settings.group_id(),
            "client.id": f"telemetry-{self.stage}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A new group starts at the oldest record: a sink must not skip data.
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.settings.sink_session_timeout_ms,
            "logger": logging.getLogger("sinks.kafka"),
        }

    def _producer_config(self) -> dict[str, Any]:
        return {
            **self.settings.confluent_config(),
            "client.id": f"telemetry-{self.stage}-dlq",
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 5,
            "logger": logging.getLogger("sinks.kafka"),
        }

    def _wait_for_kafka(self) -> bool:
        assert self.consumer is not None
        backoff = Backoff(0.5, 10.0)
        while not self.stopping:
            try:
                self.consumer.list_topics(timeout=5)
                return True
            except KafkaException as exc:
                delay = backoff.next_delay()
                log.warning("Kafka not reachable, retrying in %.1fs: %s", delay, exc)
                until = time.monotonic() + delay
                while not self.stopping and time.monotonic() < until:
                    time.sleep(0.1)
        return False

    def _setup_destination(self) -> None:
        try:
            self.destination.setup()
        except RetryableWriteError as exc:
            log.warning("%s not ready yet (writes retry until it is): %s", self.sink, exc.reason)

    def _close(self) -> None:
        # A write still under way (only after an error in this thread) ends first.
        self.writer.stop()
        if self.consumer is not None:
            self.stopping = True
            self.consumer.close()  # revokes: an unwritten batch is dropped, not committed
        if self.producer is not None:
            left = self.producer.flush(5)
            if left:
                log.error("%d dead letters not confirmed at exit", left)
        self.destination.close()

    # -- the loop (consumer thread) ---------------------------------------------------------

    def step(self) -> None:
        """One poll: take records, commit a written batch, hand the next one over when it is
        due and the writer is free, hand a failed one again when it is time.

        librdkafka drops records it fetched before a pause or a revoke (version barriers), so
        a record returned here never belongs to a batch that was already dropped.
        """
        assert self.consumer is not None
        self._settle(self.writer.outcome(0))
        if self.retry_at is not None:
            # Partitions are paused: this keeps the group membership and serves rebalances.
            wait = _POLL_WHILE_WRITING_S if self.writer.busy else _POLL_S
            if not self.writer.busy:
                wait = min(max(0.0, self.retry_at - self.clock()), wait)
            self._take(self.consumer.consume(num_messages=max(1, self.batch.room()),
                                             timeout=wait))
            if (
                self.retry_at is not None
                and self.handed is not None
                and not self.writer.busy
                and self.clock() >= self.retry_at
            ):
                self.writer.submit(self.handed)
        else:
            self._hand_if_due()
            room = self.batch.room()
            if room == 0:
                # Full, and the previous batch is still being written: wait for it, then the
                # full one goes next. Nothing more is taken meanwhile (bounded memory).
                self._settle(self.writer.outcome(_POLL_S))
            else:
                if self.writer.busy:
                    wait = _POLL_WHILE_WRITING_S
                else:
                    until_due = self.batch.seconds_until_due()
                    wait = _POLL_S if until_due is None else min(until_due, _POLL_S)
                self._take(self.consumer.consume(num_messages=min(room, 10_000), timeout=wait))
            self._hand_if_due()
        self._update_lag()

    def _hand_if_due(self) -> None:
        if (
            self.handed is None
            and self.retry_at is None
            and not self.writer.busy
            and self.batch.is_due()
        ):
            self._hand()

    def _hand(self) -> None:
        """Gives the batch being built to the writer; a new one is built meanwhile."""
        batch, self.batch = self.batch, self._new_batch()
        self.handed = batch
        self.writer.submit(batch)

    def _settle(self, outcome: Outcome | None) -> None:
        """Commits a written batch, or schedules its retry."""
        if outcome is None:
            return
        error = self._finish(outcome)
        if error is not None and self.handed is not None:
            self._schedule_retry(error)

    def _finish(self, outcome: Outcome) -> RetryableWriteError | None:
        """A written batch: commit its offsets (the batch is done). A failed one: its error.

        Anything but a `RetryableWriteError` from the writer is a bug: raised here.
        """
        batch, error = outcome
        if error is None:
            offsets = batch.commit_offsets()
            if offsets:
                self._commit(offsets)
            BATCHES.labels(self.sink).inc()
            self.handed = None
            if self.retry_at is not None:
                self._resume()
            return None
        if isinstance(error, RetryableWriteError):
            return error
        raise error

    def _write_everything(self) -> None:
        """Writes and commits, in order, the batch in hand and the one being built, waiting
        for each. Raises `RetryableWriteError` at the first that fails (it stays in hand)."""
        for _ in range(3):
            if not self.writer.busy:
                if self.handed is not None:
                    self.writer.submit(self.handed)
                elif self.batch.records:
                    self._hand()
                else:
                    return
            outcome = self.writer.outcome(None)
            assert outcome is not None
            error = self._finish(outcome)
            if error is not None:
                raise error
        raise AssertionError("more than two batches in hand")  # pragma: no cover

    def _take(self, messages: list[Message]) -> None:
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error: %s", err)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            self.add(topic, partition, offset, msg.key(), msg.value())

    def add(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        """One record into the batch: as a line, or as a dead letter with its reason."""
        try:
            if value is None:
                raise CodecError("the record has no value")
            reading = self.codec.decode(value, reader=READER)
        except CodecError as exc:
            self._dead_letter(
                Reason.UNDECODABLE_RECORD,
                f"cannot read the record as {READER}: {exc}",
                value or b"",
                "avro",
                topic,
                partition,
                offset,
                device_id=key.decode("utf-8", "replace") if key else None,
            )
            return
        try:
            line = self.encoder.encode(reading)
        except UnrepresentableError as exc:
            self._dead_letter(
                Reason.DATABASE_REJECTED,
                f"not written to {self.sink}: {exc}",
                value,
                "avro",
                topic,
                partition,
                offset,
                device_id=reading.get("device_id"),
                metric=exc.metric,
            )
            return
        self.batch.add_point(
            PendingPoint(
                line, reading["device_id"], topic, partition, offset, reading["received_at_ms"]
            )
        )

    def _dead_letter(
        self,
        reason: Reason,
        detail: str,
        original: bytes,
        original_format: str,
        topic: str,
        partition: int,
        offset: int,
        device_id: str | None = None,
        metric: str | None = None,
    ) -> None:
        record = self._letter(reason, detail, original, original_format, topic, device_id, metric)
        self.batch.add_dead_letter(record, topic, partition, offset)

    def _letter(
        self,
        reason: Reason,
        detail: str,
        original: bytes,
        original_format: str,
        topic: str,
        device_id: str | None,
        metric: str | None = None,
    ) -> dict[str, Any]:
        """This sink's dead letter (plumbing.dead_letters sizes it to fit a Kafka record)."""
        return dead_letter(
            reason,
            detail,
            self.stage,
            original,
            original_format,
            device_id=device_id,
            metric=metric,
            source_topic=topic,
        )

    # -- writing (writer thread) ------------------------------------------------------------

    def _write_batch(self, batch: Batch) -> None:
        """Writes the batch's points, then sends its dead letters and waits for Kafka.

        Raises `RetryableWriteError`; the batch remembers how far it got (a retry after the
        write succeeded only sends the dead letters again).
        """
        pending = batch.unwritten()
        if pending:
            refused = write_isolating_refused(pending, self._write)
            for point, reason in refused:
                record = self._letter(
                    Reason.DATABASE_REJECTED,
                    f"{self.sink} refused the point: {reason}",
                    point.line.encode(),
                    "line-protocol",
                    point.topic,
                    point.device_id,
                )
                batch.refused.append(PendingDeadLetter(record, point.topic, point.partition))
            batch.written = len(batch.points)
            self._observe_written(pending, refused)
            POINTS_WRITTEN.labels(self.sink).inc(len(pending) - len(refused))
            POINTS_REFUSED.labels(self.sink).inc(len(refused))
            if refused:
                log.warning(
                    "%d points refused by %s, sent to the DLQ",
                    len(refused),
                    self.sink,
                    extra={"first_reason": refused[0][1][:500]},
                )
        letters = batch.all_dead_letters()
        if letters:
            self._send_dead_letters(letters)

    def _write(self, points: Sequence[PendingPoint]) -> None:
        try:
            with WRITE_SECONDS.labels(self.sink).time():
                self.destination.write([p.line for p in points])
        except RefusedWriteError:
            WRITE_ERRORS.labels(self.sink, "refused").inc()
            raise
        except RetryableWriteError:
            WRITE_ERRORS.labels(self.sink, "retryable").inc()
            raise

    def _observe_written(
        self, pending: list[PendingPoint], refused: list[tuple[PendingPoint, str]]
    ) -> None:
        now_ms = time.time() * 1000
        # Points of a batch share few receive times (milliseconds): count them first.
        received = Counter(map(_RECEIVED_AT_MS, pending))
        received.subtract(point.received_at_ms for point, _ in refused)
        END_TO_END_SECONDS.observe_counted(
            self.sink,
            (
                (max(0.0, now_ms - at_ms) / 1000, count)
                for at_ms, count in received.items()
                if at_ms > 0 and count > 0
            ),
        )

    def _send_dead_letters(self, letters: list[PendingDeadLetter]) -> None:
        assert self.producer is not None
        self._delivery_errors = []
        for letter in letters:
            topic, key, value = encode_dead_letter(letter.record)
            while True:
                try:
                    self.producer.produce(topic, value, key, on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(0.1)
        left = self.producer.flush(30)
        if left or self._delivery_errors:
            raise RetryableWriteError(
                f"the dead-letter topic did not confirm {left or len(self._delivery_errors)} "
                f"records: {self._delivery_errors[:1]}"
            )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(str(err))

    # -- commits, retries, shutdown (consumer thread) ---------------------------------------

    def _commit(self, offsets: list[tuple[str, int, int]]) -> None:
        assert self.consumer is not None
        tps = [KafkaTopicPartition(t, p, o) for t, p, o in offsets]
        try:
            self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # The batch is in the database: its records will be read and written again
            # (same points, they overwrite themselves); later commits cover these offsets.
            COMMIT_FAILURES.labels(self.sink).inc()
            log.warning("commit failed after a successful write: %s", exc)

    def _schedule_retry(self, exc: RetryableWriteError) -> None:
        assert self.consumer is not None
        RETRIES.labels(self.sink).inc()
        delay = self.backoff.next_delay()
        if exc.retry_after_s:
            delay = max(delay, min(exc.retry_after_s, self.settings.sink_retry_max_s))
        if self.retry_at is None:
            self.consumer.pause(self.consumer.assignment())
            PAUSED.labels(self.sink).set(1)
        self.retry_at = self.clock() + delay
        log.warning(
            "write to %s failed, batch of %d records retried in %.2fs: %s",
            self.sink,
            self.handed.records if self.handed is not None else 0,
            delay,
            exc.reason,
        )

    def _resume(self) -> None:
        assert self.consumer is not None
        self.retry_at = None
        self.backoff.reset()
        self.consumer.resume(self.consumer.assignment())
        PAUSED.labels(self.sink).set(0)
        log.info("%s accepts writes again, partitions resumed", self.sink)

    def _drain(self) -> None:
        """At shutdown: no new input; write and commit what was taken, retrying until the
        deadline."""
        assert self.consumer is not None
        deadline = self.clock() + self.settings.sink_shutdown_timeout_s
        self.consumer.pause(self.consumer.assignment())
        # Records fetched before the pause may still be delivered; they join the batch.
        if self.batch.room():
            self._take(self.consumer.consume(num_messages=self.batch.room(), timeout=0))
        while self.handed is not None or self.batch.records or self.writer.busy:
            try:
                self._write_everything()
                log.info("final batch written and committed")
                return
            except RetryableWriteError as exc:
                left = deadline - self.clock()
                taken = self.batch.records + (self.handed.records if self.handed else 0)
                if left <= 0:
                    log.error(
                        "giving up the final %d records (not committed, read again on "
                        "restart): %s",
                        taken,
                        exc.reason,
                    )
                    return
                RETRIES.labels(self.sink).inc()
                wait = min(self.backoff.next_delay(), left)
                self._take(self.consumer.consume(num_messages=max(1, self.batch.room()),
                                                 timeout=wait))

    # -- rebalances and lag (consumer thread, inside consume) -------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        if self.retry_at is not None:
            # Still retrying a batch of partitions kept through the rebalance: take no more
            # input until it is written.
            consumer.assign(partitions)
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        """Write and commit what was taken from these partitions, or drop it to be re-read."""
        self._forget_lag(partitions)
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if not revoked & self._taken_partitions():
            return
        if self.retry_at is None and not self.stopping:
            try:
                self._write_everything()
                log.info("batch written and committed before giving up %s", _names(partitions))
                return
            except RetryableWriteError as exc:
                log.warning("could not write the batch before a rebalance: %s", exc.reason)
                self._schedule_retry(exc)
        self._drop(revoked, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._forget_lag(partitions)
        self._drop({(tp.topic, tp.partition) for tp in partitions}, "lost")

    def _taken_partitions(self) -> set[TopicPartition]:
        taken = set(self.batch.offsets)
        if self.handed is not None:
            taken |= set(self.handed.offsets)
        return taken

    def _drop(self, partitions: set[TopicPartition], why: str) -> None:
        """Forgets, uncommitted, what was taken from these partitions (after the write under
        way, if any, returned: the writer's batch is not changed under it)."""
        outcome = self.writer.outcome(None)
        dropped = self.batch.drop_partitions(partitions)
        if self.handed is not None:
            dropped += self.handed.drop_partitions(partitions)
            if self.handed.records == 0:
                self.handed = None
        if outcome is not None and outcome[0] is self.handed:
            self._settle(outcome)  # commits what is left of a written batch
        if dropped:
            log.warning(
                "dropped %d uncommitted records of %s partitions; they are read again by "
                "their next owner",
                dropped,
                why,
            )
        if self.handed is None and self.retry_at is not None:
            self.retry_at = None
            self.backoff.reset()
            PAUSED.labels(self.sink).set(0)

    def _forget_lag(self, partitions: list[KafkaTopicPartition]) -> None:
        for tp in partitions:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.sink, tp.topic, str(tp.partition))

    def _update_lag(self) -> None:
        now = self.clock()
        if self.consumer is None or now - self._lag_at < _LAG_EVERY_S:
            return
        self._lag_at = now
        try:
            positions = self.consumer.position(self.consumer.assignment())
            for tp in positions:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    CONSUMER_LAG.labels(self.sink, tp.topic, str(tp.partition)).set(
                        max(0, high - tp.offset)
                    )
        except KafkaException as exc:
            log.debug("lag not updated: %s", exc)


def _tune_gc() -> None:
    """Fewer, cheaper cyclic-GC passes for the loop.

    Each record allocates a few objects and a batch keeps thousands of points alive, so with
    the defaults (a pass every 700 allocations) the collector kept walking the points and
    everything imported at start: ~5 of ~45 CPU us per reading in the sink-alone benchmark
    (busy box). The loop makes no reference cycles worth collecting promptly; memory is freed
    by reference counting.
    """
    gc.freeze()  # what start-up built is never scanned again
    gc.set_threshold(50_000, 20, 10)


def _names(partitions: list[KafkaTopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
