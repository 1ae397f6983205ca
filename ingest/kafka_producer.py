"""An idempotent confluent-kafka producer whose deliveries resolve asyncio futures.

librdkafka reports deliveries on whichever thread polls it (a dedicated thread here, or the
one flushing at shutdown); each report hops to the event loop with `call_soon_threadsafe`.
A semaphore bounds records in flight, so a slow or absent Kafka slows MQTT intake instead of
filling memory. A failed delivery is produced again after a backoff for as long as the
process lives: the MQTT message stays unacknowledged until then, so nothing is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.metrics import DELIVERY_LATENCY, DELIVERY_RETRIES, RECORDS_IN_FLIGHT
from ingest.records import Headers
from plumbing.backoff import Backoff

log = logging.getLogger("ingest.kafka")
librdkafka_log = logging.getLogger("ingest.kafka.librdkafka")


class _SameMessageRateLimit(logging.Filter):
    """Lets one line of a kind through per interval: an absent Kafka makes librdkafka report
    every reconnect attempt, and the log should say so once, not twenty times a second."""

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"\d+", "#", record.getMessage())[:120]
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) < self.interval_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[kind] = now
        return True


log.addFilter(_SameMessageRateLimit())
librdkafka_log.addFilter(_SameMessageRateLimit())


class DeliveryAbandoned(RuntimeError):
    """The record was not confirmed before shutdown (or a fatal producer error)."""


class _Record:
    __slots__ = ("backoff", "future", "headers", "key", "topic", "value")

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        future: asyncio.Future[None],
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.future = future
        self.backoff: Backoff | None = None


class AsyncProducer:
    """Produces records and resolves each one's future when Kafka has it (acks=all)."""

    def __init__(
        self,
        config: dict[str, Any],
        max_in_flight: int,
        on_fatal: Callable[[str], None],
        retry_max_s: float = 30.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._on_fatal = on_fatal
        self._retry_max_s = retry_max_s
        self._retry_timers: dict[_Record, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.reachable = False
        self._producer = Producer({
            "reconnect.backoff.ms": 250,
            "reconnect.backoff.max.ms": 10_000,
            **config,
            "error_cb": self._on_error,
            "logger": librdkafka_log,
        })
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> asyncio.Future[None]:
        """Waits for a free slot, produces, and returns the future of the delivery."""
        if self._closing:
            raise DeliveryAbandoned("the producer is shutting down")
        await self._slots.acquire()
        self._in_flight += 1
        RECORDS_IN_FLIGHT.inc()
        self._idle.clear()
        record = _Record(topic, key, value, headers, self._loop.create_future())
        await self._produce(record)
        return record.future

    async def _produce(self, record: _Record) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=record.headers,
                    on_delivery=functools.partial(self._on_delivery, record, time.monotonic()),
                )
                return
            except BufferError:  # librdkafka's local queue is full: let it drain
                await asyncio.sleep(0.05)
            except KafkaException as exc:
                # Refused before sending (size, arguments, fatal state): retrying cannot help.
                self._settle(record, exc)
                return

    def _on_delivery(
        self, record: _Record, started: float, err: KafkaError | None, _msg: Message
    ) -> None:  # runs on a librdkafka polling thread
        if err is None:
            DELIVERY_LATENCY.observe(time.monotonic() - started)
        with contextlib.suppress(RuntimeError):  # the loop is gone: the process is exiting
            self._loop.call_soon_threadsafe(self._delivered, record, err)

    def _delivered(self, record: _Record, err: KafkaError | None) -> None:
        if err is None:
            self._settle(record, None)
        elif err.fatal():
            self._settle(record, KafkaException(err))
            self._on_fatal(f"fatal Kafka producer error: {err.str()}")
        elif self._closing:
            self._settle(record, DeliveryAbandoned(err.str()))
        else:
            DELIVERY_RETRIES.inc()
            if record.backoff is None:
                record.backoff = Backoff(0.5, self._retry_max_s)
            delay = record.backoff.next_delay()
            log.warning("Kafka delivery to %s failed (%s); producing it again", record.topic,
                        err.str(), extra={"retry_in_s": round(delay, 2)})
            self._retry_timers[record] = self._loop.call_later(delay, self._retry, record)

    def _retry(self, record: _Record) -> None:
        self._retry_timers.pop(record, None)
        task = self._loop.create_task(self._produce(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _settle(self, record: _Record, error: BaseException | None) -> None:
        if not record.future.done():
            if error is None:
                record.future.set_result(None)
            else:
                record.future.set_exception(error)
        self._in_flight -= 1
        RECORDS_IN_FLIGHT.dec()
        self._slots.release()
        if self._in_flight == 0:
            self._idle.set()

    def _on_error(self, err: KafkaError) -> None:  # runs on a librdkafka polling thread
        if err.fatal():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(
                    self._on_fatal, f"fatal Kafka producer error: {err.str()}")
        else:
            log.warning("Kafka client error: %s", err.str())

    def _poll(self) -> None:
        while not self._stop_polling.is_set():
            self._producer.poll(0.1)

    def watch_reachability(self, topic: str, interval_s: float) -> None:
        """Keeps `reachable` current from a daemon thread (never delays the exit): True when a
        broker answers a metadata request for `topic`; retried with backoff while it is not."""
        threading.Thread(target=self._watch, args=(topic, interval_s), name="kafka-probe",
                         daemon=True).start()

    def _watch(self, topic: str, interval_s: float) -> None:
        backoff = Backoff(0.5, 30.0)
        while not self._stop_polling.is_set():
            try:
                metadata = self._producer.list_topics(topic, timeout=5.0)
                found = metadata.topics.get(topic)
                ok = found is not None and found.error is None
            except KafkaException:
                ok = False
            if ok != self.reachable:
                log.info("Kafka reachable" if ok else "Kafka not reachable")
            self.reachable = ok
            if ok:
                backoff.reset()
            self._stop_polling.wait(interval_s if ok else backoff.next_delay())

    async def drain(self, timeout: float) -> int:
        """Stops retrying and waits up to `timeout` s for deliveries; returns what is left."""
        self._closing = True
        for record, timer in list(self._retry_timers.items()):
            timer.cancel()
            self._settle(record, DeliveryAbandoned("shutdown before a retry"))
        self._retry_timers.clear()
        if self._in_flight:
            queued = await self._loop.run_in_executor(None, self._producer.flush, timeout)
            if queued == 0:  # all reported: let their callbacks reach the loop
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), 5.0)
        return self._in_flight

    def close(self) -> None:
        """Stops the polling thread; records still queued are dropped (never acknowledged)."""
        self._closing = True
        self._stop_polling.set()
        self._poller.join(timeout=5)
