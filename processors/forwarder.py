"""What every agent shares: take records in batches, decode, handle, produce, ack in order.

An agent hands its stream to `Forwarder.run` with a handler from one decoded record to its
outputs (records to produce, or deliveries already under way, such as table writes).
Records that do not decode become dead letters. A batch is produced without awaiting each
record, and its inputs are acked only once Kafka confirmed every output of the batch and of
every batch before it (processors/delivery.py), so batches overlap with Kafka's round trip.

Why the extra reference on each message: Faust's `take_events` acks every event of a batch
in a `finally` when the agent asks for the next batch (or is cancelled), whether or not its
output reached Kafka. Holding one more reference per message makes that ack a no-op; ours,
after Kafka confirmed, is the one that lets Faust commit the offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from plumbing.dead_letters import RejectedMetric, dead_letter, encode_dead_letter
from plumbing.reasons import Reason
from plumbing.topics import DLQ, HEADER_TRACE_ID
from processors.delivery import InOrderBatchAcks
from processors.hand_avro import RawReadingReader
from processors.metrics import DELIVERY_FAILURES, READINGS_IN
from processors.settings import ProcessorSettings
from processors.steps import Reject
from schemas.codec import AvroCodec, CodecError, default_codec

log = logging.getLogger(__name__)

#: Header naming the app id and agent that produced a record (`<app id>/<agent>`): when
#: several processor deployments share the topics, it tells whose output a record is. The
#: contract's trace_id and ingest_time_ms headers pass through.
HEADER_PROCESSOR = "processor"


@dataclass(frozen=True)
class Incoming:
    """One Kafka record an agent took, with its decoded value (None for a tombstone)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    record: dict[str, Any] | None
    #: The Kafka record's headers as the consumer gave them (for the dead letters' trace id).
    headers: Any = None

    @property
    def trace_id(self) -> str | None:
        """The contract's trace_id header, when the record has one."""
        given = self.headers or ()
        pairs = given.items() if isinstance(given, Mapping) else given
        for key, value in pairs:
            if key == HEADER_TRACE_ID and isinstance(value, bytes):
                return value.decode("utf-8", "replace")[:100]
        return None

    @property
    def device_id(self) -> str | None:
        if self.record is not None and isinstance(self.record.get("device_id"), str):
            return str(self.record["device_id"])
        try:
            return self.key.decode() if self.key else None
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class Send:
    """A record to produce; `forwarded` is False for dead letters."""

    topic: str
    key: bytes | None
    value: bytes
    forwarded: bool = True


#: An agent's output: a record to produce, or a delivery already under way (a table write).
Output = Send | asyncio.Future[Any]
Handler = Callable[[Incoming], Sequence[Output]]


class TakenBatch:
    """The events of one batch, acked together once everything they produced is in Kafka."""

    __slots__ = ("events",)

    def __init__(self, events: Sequence[Any]) -> None:
        self.events = events
        for event in events:
            event.message.incref()  # see the module docstring

    def ack(self) -> bool:
        for event in self.events:
            event.ack()
        return True


class Forwarder:
    """The app, its settings, the codec and the shared agent loop."""

    def __init__(
        self,
        app: faust.App,
        settings: ProcessorSettings,
        on_delivery_failure: Callable[[str, BaseException], None],
        codec: AvroCodec | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec or default_codec()
        #: Hand-written readers of the records agents read most (processors/hand_avro.py)
        self._decoders = {"RawReading": RawReadingReader(self.codec).decode}
        self._on_delivery_failure = on_delivery_failure
        self._acks: dict[str, InOrderBatchAcks] = {}
        self._partitions: dict[str, dict[bytes, int]] = {}
        self._partitioner = DefaultPartitioner()
        #: `processor` header value per agent (the app's settings are slow to read per record)
        self._processor_header: dict[str, bytes] = {}
        #: Kafka refuses records over this (the producer's request limit)
        self.max_record_bytes = int(app.conf.producer_max_request_size) - 1024

    def kafka_producer(self) -> Any:
        """The app's aiokafka producer (Faust's own `send` is one record at a time).

        `_ensure_producer` is Faust's (0.15.3) accessor; processors/faust_patch.py pins the
        version this is written against.
        """
        return self.app.producer._ensure_producer()  # type: ignore[attr-defined]

    async def partition_of(self, topic: str, key: bytes | None) -> int:
        """The partition aiokafka's default partitioner would pick (murmur2 of the key, as
        Java clients and ingest), remembered per key."""
        known = self._partitions.get(topic)
        if known is None or len(known) > 100_000:  # bounded: a fleet's ids, not unlimited
            known = self._partitions[topic] = {}
        if key is not None and key in known:
            return known[key]
        partitions = sorted(await self.kafka_producer().partitions_for(topic))
        partition = int(self._partitioner(key, partitions, partitions))
        if key is not None:
            known[key] = partition
        return partition

    def source(self, topic: str) -> faust.TopicT:
        """An input topic: our Avro single-object bytes, decoded by the agent loop."""
        return self.app.topic(topic, key_serializer="raw", value_serializer="raw")

    def acks(self, agent: str) -> InOrderBatchAcks:
        """One per agent for the life of the process, so a restarted agent never acks past
        a batch its predecessor left unconfirmed."""
        if agent not in self._acks:
            self._acks[agent] = InOrderBatchAcks(
                agent,
                self.settings.process_max_batches_in_flight,
                lambda exc: self._delivery_failed(agent, exc),
            )
        return self._acks[agent]

    async def run(
        self,
        stream: faust.StreamT[Any],
        *,
        agent: str,
        stage: str,
        reads: str,
        handle: Handler,
        tombstones: bool = False,
    ) -> None:
        """The agent loop. `handle` gets decoded `reads` records (and tombstones if asked).

        `stage` names the agent's step in the dead letters of records that do not decode.
        """
        acks = self.acks(agent)
        records_in = READINGS_IN.labels(agent=agent)
        settings = self.settings
        batches = cast("faust.Stream[Any]", stream).take_events(
            settings.process_batch_size, settings.process_batch_wait_s
        )
        async for events in batches:
            taken = TakenBatch(events)
            records_in.inc(len(events))
            try:
                outbox = Outbox(self, stage)
                for event in events:
                    message = event.message
                    headers: list[tuple[str, bytes]] | None = None
                    for output in self.outputs_for(message, stage, reads, handle, tombstones):
                        if isinstance(output, Send):
                            if headers is None:
                                headers = self.output_headers(message, agent)
                            await outbox.add(output, message, headers)
                        else:
                            outbox.deliveries.append(output)
                            outbox.forwarded += 1
                await outbox.send()
            except Exception as exc:
                # Kafka refused (or a bug outside the handler): this batch cannot be acked,
                # and acking any later one would let Faust commit past it. Stop here.
                self._delivery_failed(agent, exc)
                raise
            acks.track(taken, outbox.deliveries, outbox.forwarded)
            await acks.wait_for_room()

    def outputs_for(
        self, message: Any, stage: str, reads: str, handle: Handler, tombstones: bool = False
    ) -> Sequence[Output]:
        """What one Kafka message becomes; never raises for anything in the message."""
        value: bytes | None = message.value
        record = None
        if value is None and not tombstones:
            return [self.dead_letter(self._undecoded(message), stage, Reject(
                Reason.UNDECODABLE_RECORD, f"a record without a value (tombstone) on "
                f"{message.topic}; expected a {reads}"))]
        if value is not None:
            try:
                decode = self._decoders.get(reads)
                record = (decode(value) if decode is not None
                          else self.codec.decode(value, reader=reads))
            except CodecError as exc:
                return [self.dead_letter(self._undecoded(message), stage, Reject(
                    Reason.UNDECODABLE_RECORD,
                    f"cannot read the record on {message.topic}: {exc}"))]
        incoming = Incoming(message.topic, message.partition, message.key, value, record,
                            message.headers)
        try:
            return handle(incoming)
        except Exception as exc:  # a bug must not stop the pipeline nor lose the record
            log.exception(
                "handler failed on a record; it goes to the dead-letter topic",
                extra={"agent": stage, "topic": message.topic, "offset": message.offset},
            )
            return [self.dead_letter(incoming, stage, Reject(
                Reason.UNDECODABLE_RECORD,
                f"{stage} failed on this record ({exc!r}); it is kept here to be replayed "
                "once the processors are fixed: please report it"))]

    def dead_letter(
        self,
        incoming: Incoming,
        stage: str,
        reject: Reject,
        rejected_metrics: Sequence[RejectedMetric] = (),
        counted: Iterable[tuple[str, Reason]] | None = None,
    ) -> Send:
        """The one dead letter of `incoming`: `reject` says why (for the whole record, or a
        summary of the `rejected_metrics` listed), the original bytes travel once; `counted`
        as in plumbing.dead_letters.dead_letter."""
        record = dead_letter(
            reject.reason,
            reject.detail,
            stage,
            incoming.value or b"",
            "avro",
            device_id=incoming.device_id,
            metric=reject.metric,
            source_topic=incoming.topic,
            rejected_metrics=rejected_metrics,
            trace_id=incoming.trace_id,
            counted=counted,
        )
        topic, key, value = encode_dead_letter(record)
        return Send(topic, key, value, forwarded=False)

    @staticmethod
    def _undecoded(message: Any) -> Incoming:
        return Incoming(message.topic, message.partition, message.key, message.value, None,
                        message.headers)

    def output_headers(self, message: Any, agent: str) -> list[tuple[str, bytes]]:
        """The input's headers (trace_id, ingest_time_ms, ...) with our `processor` header."""
        given = message.headers or ()
        pairs = given.items() if isinstance(given, Mapping) else given
        headers = [
            (str(k), v if isinstance(v, bytes) else b"")
            for k, v in pairs
            if k != HEADER_PROCESSOR
        ]
        ours = self._processor_header.get(agent)
        if ours is None:
            ours = self._processor_header[agent] = f"{self.app.conf.id}/{agent}".encode()
        headers.append((HEADER_PROCESSOR, ours))
        return headers

    def _delivery_failed(self, agent: str, exc: BaseException) -> None:
        DELIVERY_FAILURES.labels(agent=agent).inc()
        self._on_delivery_failure(agent, exc)


class Outbox:
    """The records one taken batch produces, sent as one Kafka batch per partition.

    aiokafka's `send()` per record costs more than our whole step chain (a coroutine, a
    pure-Python murmur2 of the key, a future and a callback each); a batch per partition
    has one future, and the key's partition is remembered.
    """

    def __init__(self, forwarder: Forwarder, stage: str) -> None:
        self.forwarder = forwarder
        self.stage = stage
        self.producer = forwarder.kafka_producer()
        self.deliveries: list[asyncio.Future[Any]] = []
        self.forwarded = 0
        self._open: dict[tuple[str, int], Any] = {}

    async def add(self, send: Send, message: Any, headers: list[tuple[str, bytes]]) -> None:
        size = len(send.value) + len(send.key or b"") + sum(len(k) + len(v) for k, v in headers)
        if size > self.forwarder.max_record_bytes:
            if send.topic == DLQ:
                raise MessageSizeTooLargeError(f"a dead letter of {size} bytes")
            # Too large is about this record, not Kafka: dead-letter it instead of stopping.
            incoming = Incoming(message.topic, message.partition, message.key, message.value,
                                None, getattr(message, "headers", None))
            send = self.forwarder.dead_letter(incoming, self.stage, Reject(
                Reason.PAYLOAD_TOO_LARGE,
                f"the {self.stage} output for {send.topic} is {size} bytes, more than the "
                f"producer sends ({self.forwarder.max_record_bytes}); shorten the device's "
                "tags or metric names"))
        partition = await self.forwarder.partition_of(send.topic, send.key)
        where = (send.topic, partition)
        batch = self._open.get(where)
        if batch is None or batch.append(timestamp=None, key=send.key, value=send.value,
                                         headers=headers) is None:
            if batch is not None:  # full: send it, start the next one
                self.deliveries.append(await self._send(batch, where))
            batch = self._open[where] = self.producer.create_batch()
            batch.append(timestamp=None, key=send.key, value=send.value, headers=headers)
        self.forwarded += send.forwarded

    async def send(self) -> None:
        for where, batch in self._open.items():
            self.deliveries.append(await self._send(batch, where))
        self._open.clear()

    async def _send(self, batch: Any, where: tuple[str, int]) -> asyncio.Future[Any]:
        topic, partition = where
        return cast("asyncio.Future[Any]",
                    await self.producer.send_batch(batch, topic, partition=partition))
