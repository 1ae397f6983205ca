"""The batching base of every sink: Kafka in, line-protocol batches out, offsets committed
only after the database accepted the batch (DESIGN.md, "Delivery guarantees").

One thread: the consumer loop polls, batches, writes and commits. While a write keeps failing
for a retryable reason the assigned partitions are paused and polling goes on (the consumer
stays in its group); the same batch is retried with exponential backoff and full jitter.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from plumbing.backoff import Backoff
from plumbing.dead_letters import dead_letter, encode_dead_letter
from plumbing.health import HealthState, serve_health
from plumbing.reasons import Reason
from schemas.codec import AvroCodec, CodecError, default_codec
from sinks.batch import Batch, PendingDeadLetter, PendingPoint
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
_LAG_EVERY_S = 5.0


class Destination(Protocol):
    """One database. `write` raises `RetryableWriteError` or `RefusedWriteError`."""

    name: str
    dialect: Dialect

    def setup(self) -> None: ...

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class BatchingSink:
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
        self.batch = Batch(
            settings.sink_batch_max_points, settings.sink_batch_max_age_ms / 1000, clock
        )
        self.backoff = Backoff(settings.sink_retry_initial_s, settings.sink_retry_max_s)
        self.state = HealthState()
        self.retry_at: float | None = None
        self.stopping = False
        self._lag_at = 0.0
        self._delivery_errors: list[str] = []
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None

    # -- process ----------------------------------------------------------------------------

    def run(self) -> int:
        """Consumes until SIGTERM/SIGINT, then flushes, commits, closes; returns the exit code."""
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
        if self.consumer is not None:
            self.stopping = True
            self.consumer.close()  # revokes: an unwritten batch is dropped, not committed
        if self.producer is not None:
            left = self.producer.flush(5)
            if left:
                log.error("%d dead letters not confirmed at exit", left)
        self.destination.close()

    # -- the loop ---------------------------------------------------------------------------

    def step(self) -> None:
        """One poll: take records, write the batch when it is due, retry when it is time.

        librdkafka drops records it fetched before a pause or a revoke (version barriers), so
        a record returned here never belongs to a batch that was already dropped.
        """
        assert self.consumer is not None
        if self.retry_at is not None:
            wait = min(max(0.0, self.retry_at - self.clock()), _POLL_S)
            # Partitions are paused: this keeps the group membership and serves rebalances.
            self._take(self.consumer.consume(num_messages=500, timeout=wait))
            if self.retry_at is not None and self.clock() >= self.retry_at:
                self._try_flush()
        else:
            until_due = self.batch.seconds_until_due()
            wait = _POLL_S if until_due is None else min(until_due, _POLL_S)
            room = max(1, min(self.batch.max_records - self.batch.records, 10_000))
            self._take(self.consumer.consume(num_messages=room, timeout=wait))
            if self.batch.is_due():
                self._try_flush()
        self._update_lag()

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

    # -- writing ----------------------------------------------------------------------------

    def _try_flush(self) -> bool:
        try:
            self.flush()
        except RetryableWriteError as exc:
            self._schedule_retry(exc)
            return False
        if self.retry_at is not None:
            self._resume()
        return True

    def flush(self) -> None:
        """Writes the batch, sends its dead letters, commits its offsets, in that order.

        Raises `RetryableWriteError`; the batch remembers how far it got.
        """
        batch = self.batch
        if batch.records == 0:
            return
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
        self._commit(batch.commit_offsets())
        BATCHES.labels(self.sink).inc()
        batch.clear()

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
        skip = {id(point) for point, _ in refused}
        histogram = END_TO_END_SECONDS.labels(self.sink)
        for point in pending:
            if id(point) not in skip and point.received_at_ms > 0:
                histogram.observe(max(0.0, now_ms - point.received_at_ms) / 1000)

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
            self.batch.records,
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
        """At shutdown: no new input; write and commit the batch, retrying until the deadline."""
        assert self.consumer is not None
        deadline = self.clock() + self.settings.sink_shutdown_timeout_s
        self.consumer.pause(self.consumer.assignment())
        # Records fetched before the pause may still be delivered; they join the batch.
        self._take(self.consumer.consume(num_messages=10_000, timeout=0))
        while self.batch.records:
            try:
                self.flush()
                log.info("final batch written and committed")
                return
            except RetryableWriteError as exc:
                left = deadline - self.clock()
                if left <= 0:
                    log.error(
                        "giving up the final batch of %d records (not committed, read again "
                        "on restart): %s",
                        self.batch.records,
                        exc.reason,
                    )
                    return
                RETRIES.labels(self.sink).inc()
                wait = min(self.backoff.next_delay(), left)
                self._take(self.consumer.consume(num_messages=10_000, timeout=wait))

    # -- rebalances and lag ------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        if self.retry_at is not None:
            # Still retrying a batch of partitions kept through the rebalance: take no more
            # input until it is written.
            consumer.assign(partitions)
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        """Write and commit what is batched for these partitions, or drop it to be re-read."""
        self._forget_lag(partitions)
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if not revoked & set(self.batch.offsets):
            return
        if self.retry_at is None and not self.stopping:
            try:
                self.flush()
                log.info("batch written and committed before giving up %s", _names(partitions))
                return
            except RetryableWriteError as exc:
                log.warning("could not write the batch before a rebalance: %s", exc.reason)
        self._drop(revoked, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._forget_lag(partitions)
        self._drop({(tp.topic, tp.partition) for tp in partitions}, "lost")

    def _drop(self, partitions: set[tuple[str, int]], why: str) -> None:
        dropped = self.batch.drop_partitions(partitions)
        if dropped:
            log.warning(
                "dropped %d uncommitted records of %s partitions; they are read again by "
                "their next owner",
                dropped,
                why,
            )
        if self.batch.records == 0 and self.retry_at is not None:
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


def _names(partitions: list[KafkaTopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
