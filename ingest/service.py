"""`telemetry ingest`: MQTT shared subscription in, Kafka out, PUBACK only after Kafka has it.

At-least-once: a message is acknowledged to the broker only when Kafka confirmed every record
made from it (its readings, its metadata, or its dead letter). A crash before that leaves it
unacknowledged in this pod's persistent session, and the broker delivers it again when the
pod (same client id) comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections import deque
from typing import Any

import aiomqtt

from ingest.acks import PendingAck
from ingest.kafka_producer import DeliveryAbandoned, KafkaOut
from ingest.metrics import (
    MESSAGES_RECEIVED,
    METADATA_PRODUCED,
    MQTT_CONNECTS,
    READINGS_PRODUCED,
)
from ingest.mqtt_connection import Inbound, MqttConnection
from ingest.records import (
    STAGE_INGEST,
    Outgoing,
    dead_letter_outgoing,
    headers,
    new_trace_id,
    records_for,
)
from ingest.rejected import Rejected
from ingest.settings import IngestSettings
from plumbing.backoff import Backoff
from plumbing.health import HealthState
from plumbing.reasons import Reason
from plumbing.topics import RAW

log = logging.getLogger("ingest")


class IngestService:
    def __init__(self, settings: IngestSettings, health: HealthState) -> None:
        self.settings = settings
        self.health = health
        self.subscribed = False
        self._exit_code = 0
        self._unsubscribed = False
        self._deadline: float | None = None
        #: Messages received while the producer had no room, in arrival order. The broker
        #: sends at most `mqtt_receive_maximum` unacknowledged messages, which bounds it.
        self._backlog: deque[tuple[MqttConnection, Inbound]] = deque()
        #: False once stopping: what arrives then is left unacknowledged (delivered again).
        self._taking = True
        self._left_unhandled = 0
        self._received = {kind: MESSAGES_RECEIVED.labels(kind=kind)
                          for kind in ("telemetry", "metadata")}

    async def run(self) -> int:
        """Runs until SIGTERM/SIGINT (exit code 0) or a fatal Kafka error (1)."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        self.producer = KafkaOut(self.settings.producer_config(),
                                 self.settings.ingest_max_in_flight, self._fatal,
                                 on_room=self._take_backlog)
        self.producer.watch_reachability(RAW, self.settings.kafka_probe_interval_s)
        self.health.checks["mqtt_subscribed"] = lambda: self.subscribed
        self.health.checks["kafka_reachable"] = lambda: self.producer.reachable
        self.health.ready = True
        try:
            await self._mqtt_sessions()
        finally:
            self.producer.close()
        log.info("ingest stopped", extra={"exit_code": self._exit_code})
        return self._exit_code

    def stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping: no new messages; delivering and acknowledging what was taken")
        self._stop.set()

    def _fatal(self, why: str) -> None:
        log.critical(why + "; exiting, unacknowledged messages will be delivered again")
        self._exit_code = 1
        self._stop.set()

    async def _mqtt_sessions(self) -> None:
        """Connects, serves until stopped, reconnects with backoff when the broker is lost."""
        s = self.settings
        backoff = Backoff(0.5, s.mqtt_reconnect_max_s)
        while not self._stop.is_set():
            self._taking = True  # a persistent session's messages follow the CONNACK at once
            try:
                async with MqttConnection(s, self._on_messages) as conn:
                    await conn.subscribe(s.shared_telemetry_filter, s.mqtt_metadata_filter)
                    MQTT_CONNECTS.labels(outcome="subscribed").inc()
                    backoff.reset()
                    log.info("subscribed", extra={
                        "broker": f"{s.mqtt_host}:{s.mqtt_port}", "client_id": s.mqtt_client_id,
                        "telemetry": s.shared_telemetry_filter, "metadata": s.mqtt_metadata_filter})
                    self.subscribed = True
                    try:
                        await self._serve(conn)
                    finally:
                        self.subscribed = False
                    await self._drain(conn)
                    return
            except aiomqtt.MqttError as exc:
                self.subscribed = False
                # What waited for room came on the lost connection: the broker sends it again.
                self._backlog.clear()
                MQTT_CONNECTS.labels(outcome="failed").inc()
                if self._stop.is_set():
                    break
                delay = backoff.next_delay()
                log.warning("MQTT connection failed or lost; reconnecting", extra={
                    "error": str(exc), "retry_in_s": round(delay, 2)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        await self._drain(None)

    async def _serve(self, conn: MqttConnection) -> None:
        """Serves until stopped; raises aiomqtt.MqttError when the connection drops.

        Messages are handled in `_on_messages` as paho reads them. When the session is to end
        on shutdown, the subscriptions are dropped first and what the broker sent before its
        UNSUBACK is still handled: a session can only be ended once nothing it delivered is
        left unacknowledged.
        """
        lost = asyncio.ensure_future(conn.wait_lost())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((lost, stopped), return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                lost.result()
            self._deadline = time.monotonic() + self.settings.ingest_shutdown_timeout_s
            if self.settings.mqtt_end_session_on_shutdown and self._exit_code == 0:
                await self._finish_intake(conn, lost)
        finally:
            self._taking = False
            stopped.cancel()
            lost.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await lost

    async def _finish_intake(self, conn: MqttConnection, lost: asyncio.Future[Any]) -> None:
        deadline = time.monotonic() + self.settings.ingest_shutdown_timeout_s
        if self._deadline is not None:
            deadline = self._deadline
        try:
            await conn.unsubscribe(self.settings.shared_telemetry_filter,
                                   self.settings.mqtt_metadata_filter)
        except aiomqtt.MqttError as exc:
            log.warning("could not unsubscribe; keeping the session", extra={"error": str(exc)})
            return
        self._unsubscribed = True
        while self._backlog and not lost.done():
            if time.monotonic() > deadline:
                log.warning("messages received before unsubscribing were not all handled in "
                            "time; keeping the session so the broker delivers them again")
                return
            await asyncio.sleep(0.05)

    async def _drain(self, conn: MqttConnection | None) -> None:
        timeout = self.settings.ingest_shutdown_timeout_s
        if self._deadline is not None:  # one budget for the whole shutdown
            timeout = max(0.5, self._deadline - time.monotonic())
        left = await self.producer.drain(timeout)
        if conn is not None:
            await asyncio.sleep(0)  # let the last PUBACKs reach the socket writer
        if left:
            log.warning("Kafka did not confirm everything before shutdown; those messages "
                        "stay unacknowledged and will be delivered again",
                        extra={"records_unconfirmed": left})
            return
        log.info("everything handled was delivered and acknowledged")
        if (
            conn is not None
            and self._unsubscribed
            and self._exit_code == 0
            and not self._backlog
            and self._left_unhandled == 0
            and conn.messages_not_handed_over == 0
            and len(conn.acks) == 0
        ):
            await conn.end_session()
            log.info("MQTT session ended: the group's other pods take this pod's share")

    def _on_messages(self, conn: MqttConnection, messages: list[Inbound]) -> None:
        """Handles what one read brought now, or keeps it (in order) until there is room."""
        if not self._taking or not conn.connected:
            self._left_unhandled += len(messages)  # unacknowledged: delivered again
        elif self._backlog or not self.producer.has_room:
            self._backlog.extend((conn, message) for message in messages)
        else:
            self._handle(conn, messages)

    def _take_backlog(self) -> None:
        backlog = self._backlog
        while backlog and self._taking and self.producer.has_room:
            conn, message = backlog.popleft()
            if conn.connected:
                self._handle(conn, [message])

    def _handle(self, conn: MqttConnection, messages: list[Inbound]) -> None:
        """Decodes all the messages, then produces all their records: each stage over many
        messages in a row (see MqttConnection). They were read together: one receive time."""
        received_at_ms = time.time_ns() // 1_000_000
        decoded = [self._records(message, received_at_ms) for message in messages]
        produce = self.producer.produce
        track = conn.acks.track
        for message, (kind, records) in zip(messages, decoded, strict=True):
            self._received[kind].inc()
            pending = track(message.mid, message.qos, len(records)) if message.qos else None
            trace = headers(new_trace_id(), received_at_ms)
            confirmed = functools.partial(self._confirmed, conn, pending)
            for record in records:
                produce(record, trace, confirmed)

    def _records(self, message: Inbound, received_at_ms: int) -> tuple[str, list[Outgoing]]:
        try:
            return records_for(message.topic, message.payload, self.settings, received_at_ms)
        except Exception:  # a decoder bug must not stop the pod or loop on redelivery
            log.exception("could not decode a message; dead-lettering it",
                          extra={"topic": ascii(message.topic[:200])})
            return "telemetry", [_internal_error(message)]

    def _confirmed(
        self,
        conn: MqttConnection,
        pending: PendingAck | None,
        record: Outgoing,
        error: BaseException | None,
    ) -> None:
        if error is not None:
            if not isinstance(error, DeliveryAbandoned):
                self._fatal(f"Kafka refused a {record.kind} record for {record.topic}: {error}")
            return
        if record.kind == "reading":
            READINGS_PRODUCED.inc()
        elif record.kind == "metadata":
            METADATA_PRODUCED.inc()
        if pending is not None:
            conn.acks.part_done(pending)


def _internal_error(message: Inbound) -> Outgoing:
    rej = Rejected(Reason.INVALID_SHAPE, "ingest could not decode this payload (internal "
                   "error, logged by the pod); please report it with this dead letter")
    return dead_letter_outgoing(rej, STAGE_INGEST, message.topic, message.payload, None)
