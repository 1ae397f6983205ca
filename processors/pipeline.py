"""What every agent shares: decode, run the step, dead-letter rejects, forward, ack in order.

An agent is a thin `async for` over its input topic handed to `Pipeline.run` (a step from one
decoded record to a `StepResult`) or `Pipeline.run_handler` (anything that yields outputs,
such as table writes). Rejects and records that do not decode become dead letters; the input
is acked only after Kafka confirmed every output (see processors/delivery.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from plumbing.dead_letters import dead_letter, encode_dead_letter
from plumbing.reasons import Reason
from plumbing.topics import DLQ
from processors.delivery import InOrderAcks
from processors.metrics import DELIVERY_FAILURES, READINGS_IN
from processors.settings import ProcessorSettings
from processors.steps import Reject, StepResult
from schemas.codec import AvroCodec, CodecError, default_codec

log = logging.getLogger(__name__)

#: Header naming the app id and agent that produced a record (`<app id>/<agent>`), replaced
#: at every hop: when several processor deployments share the topics, it tells whose
#: output a record is. The contract's trace_id and ingest_time_ms headers pass through.
HEADER_PROCESSOR = "processor"



@dataclass(frozen=True)
class Incoming:
    """One Kafka record an agent took, with its decoded value (None for a tombstone)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    record: dict[str, Any] | None

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
Step = Callable[[dict[str, Any]], StepResult]


class Pipeline:
    """The app, its settings and the shared agent loop."""

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
        self._on_delivery_failure = on_delivery_failure
        self._acks: dict[str, InOrderAcks] = {}

    def source(self, topic: str) -> faust.TopicT:
        """An input topic: our Avro single-object bytes, decoded by the agent loop."""
        return self.app.topic(topic, key_serializer="raw", value_serializer="raw")

    def acks(self, agent: str) -> InOrderAcks:
        """One per agent for the life of the process, so a restarted agent never acks past
        a record its predecessor left unconfirmed."""
        if agent not in self._acks:
            self._acks[agent] = InOrderAcks(
                agent,
                self.settings.process_max_in_flight,
                lambda exc: self._delivery_failed(agent, exc),
            )
        return self._acks[agent]

    async def run(
        self, stream: faust.StreamT[Any], *, stage: str, reads: str, writes: str, step: Step
    ) -> None:
        """Decodes each `reads` record, applies `step`, produces its records to `writes`."""
        await self.run_handler(
            stream, stage=stage, reads=reads, handle=self.step_handler(stage, writes, step)
        )

    def step_handler(self, stage: str, writes: str, step: Step) -> Handler:
        """A handler producing the step's EnrichedReading records and its dead letters."""

        def handle(incoming: Incoming) -> list[Output]:
            assert incoming.record is not None
            result = step(incoming.record)
            outputs: list[Output] = [
                Send(
                    writes,
                    record["device_id"].encode(),  # the contract's key, whatever came in
                    self.codec.encode("EnrichedReading", record),
                )
                for record in result.records
            ]
            outputs.extend(self.dead_letter(incoming, stage, r) for r in result.rejects)
            return outputs

        return handle

    async def run_handler(
        self,
        stream: faust.StreamT[Any],
        *,
        stage: str,
        reads: str,
        handle: Handler,
        tombstones: bool = False,
        agent: str | None = None,
    ) -> None:
        """The agent loop. `handle` gets decoded records (and tombstones if asked for).

        `stage` names the step in dead letters; `agent` (default: the stage) in metrics.
        """
        agent = agent or stage
        acks = self.acks(agent)
        records_in = READINGS_IN.labels(agent=agent)
        async for event in cast("faust.Stream[Any]", stream).noack().events():
            records_in.inc()
            try:
                message = event.message
                headers = self.output_headers(message, agent)
                deliveries: list[asyncio.Future[Any]] = []
                forwarded = 0
                for output in self.outputs_for(message, stage, reads, handle, tombstones):
                    if isinstance(output, Send):
                        deliveries.append(await self._produce(output, message, stage, headers))
                        forwarded += output.forwarded
                    else:
                        deliveries.append(output)
                        forwarded += 1
            except Exception as exc:
                # Kafka refused (or a bug outside the step): this record cannot be acked, and
                # acking any later one would let Faust commit past it. Stop here.
                self._delivery_failed(agent, exc)
                raise
            acks.track(event, deliveries, forwarded)
            await acks.wait_for_room()

    def outputs_for(
        self, message: Any, stage: str, reads: str, handle: Handler, tombstones: bool = False
    ) -> Sequence[Output]:
        """What one Kafka message becomes; never raises for anything in the message."""
        value: bytes | None = message.value
        incoming = Incoming(message.topic, message.partition, message.key, value, None)
        if value is None and not tombstones:
            return [self.dead_letter(incoming, stage, Reject(
                Reason.UNDECODABLE_RECORD, f"a record without a value (tombstone) on "
                f"{message.topic}; expected a {reads}"))]
        if value is not None:
            try:
                record = self.codec.decode(value, reader=reads)
            except CodecError as exc:
                return [self.dead_letter(incoming, stage, Reject(
                    Reason.UNDECODABLE_RECORD,
                    f"cannot read the record on {message.topic}: {exc}"))]
            incoming = Incoming(message.topic, message.partition, message.key, value, record)
        try:
            return handle(incoming)
        except Exception as exc:  # a bug must not stop the pipeline nor lose the record
            log.exception(
                "step failed on a record; it goes to the dead-letter topic",
                extra={"agent": stage, "topic": message.topic, "offset": message.offset},
            )
            return [self.dead_letter(incoming, stage, Reject(
                Reason.UNDECODABLE_RECORD,
                f"{stage} failed on this record ({exc!r}); it is kept here to be replayed "
                "once the processors are fixed: please report it"))]

    def dead_letter(self, incoming: Incoming, stage: str, reject: Reject) -> Send:
        record = dead_letter(
            reject.reason,
            reject.detail,
            stage,
            incoming.value or b"",
            "avro",
            device_id=incoming.device_id,
            metric=reject.metric,
            source_topic=incoming.topic,
        )
        topic, key, value = encode_dead_letter(record)
        return Send(topic, key, value, forwarded=False)

    def output_headers(self, message: Any, agent: str) -> list[tuple[str, bytes]]:
        """The input's headers (trace_id, ingest_time_ms, ...) with our `processor` header."""
        given = message.headers or ()
        pairs = given.items() if isinstance(given, Mapping) else given
        headers = [
            (str(k), v if isinstance(v, bytes) else b"")
            for k, v in pairs
            if k != HEADER_PROCESSOR
        ]
        headers.append((HEADER_PROCESSOR, f"{self.app.conf.id}/{agent}".encode()))
        return headers

    async def _produce(
        self, send: Send, message: Any, stage: str, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        producer = self.app.producer
        try:
            fut = await producer.send(send.topic, send.key, send.value, None, None, headers)
        except ProducerSendError as exc:
            # Too large is about this record, not Kafka: dead-letter it instead of stopping.
            if send.topic == DLQ or not isinstance(exc.__cause__, MessageSizeTooLargeError):
                raise
            incoming = Incoming(message.topic, message.partition, message.key, message.value,
                                None)
            letter = self.dead_letter(incoming, stage, Reject(
                Reason.PAYLOAD_TOO_LARGE,
                f"the {stage} output for {send.topic} is {len(send.value)} bytes, more than "
                f"the producer sends ({exc}); shorten the device's tags or metric names"))
            fut = await producer.send(letter.topic, letter.key, letter.value, None, None, headers)
        return cast("asyncio.Future[Any]", fut)

    def _delivery_failed(self, stage: str, exc: BaseException) -> None:
        DELIVERY_FAILURES.labels(agent=stage).inc()
        self._on_delivery_failure(stage, exc)
