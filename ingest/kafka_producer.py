"""An idempotent confluent-kafka producer polled on the event loop, with an in-flight bound.

The producer is polled by a timer on the event loop (every millisecond while records are in
flight), so delivery reports run on the loop's own thread: no polling thread, no hop per
report through `call_soon_threadsafe`, and no fight for the GIL with the MQTT reader. Each
record's `on_done(record, error)` is called once: error None when Kafka has it, a
`DeliveryAbandoned` at shutdown, or the exception Kafka refused it with. A failed delivery is
produced again after a backoff for as long as the process lives: the MQTT message stays
unacknowledged until then, so nothing is given up.

Backpressure: `has_room` turns false at `max_in_flight` records (or while librdkafka's own
queue is full); `on_room` is called when there is room again.
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
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.metrics import DELIVERY_LATENCY, DELIVERY_RETRIES, RECORDS_IN_FLIGHT
from ingest.records import Headers, Outgoing
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


#: on_done(record, error): error None when Kafka confirmed the record.
OnDone = Callable[[Outgoing, BaseException | None], None]

#: How often the producer is polled while records are in flight, and when none are (then only
#: for librdkafka's errors and logs).
POLL_BUSY_S = 0.001
POLL_IDLE_S = 0.2


class KafkaOut:
    """Produces records and reports each one's delivery (acks=all) on the event loop."""

    def __init__(
        self,
        config: dict[str, Any],
        max_in_flight: int,
        on_fatal: Callable[[str], None],
        on_room: Callable[[], None],
        retry_max_s: float = 30.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._closed = False
        self._on_fatal = on_fatal
        self._on_room = on_room
        self._room_wanted = False
        self._retry_max_s = retry_max_s
        self._retry_timers: dict[
            object, tuple[asyncio.TimerHandle, Outgoing, Headers, OnDone]] = {}
        #: Records librdkafka had no room for (BufferError), produced in order when it has.
        self._parked: deque[tuple[Outgoing, Headers, OnDone, Backoff | None]] = deque()
        self._parked_timer: asyncio.TimerHandle | None = None
        self.reachable = False
        self._producer = Producer({
            "reconnect.backoff.ms": 250,
            "reconnect.backoff.max.ms": 10_000,
            **config,
            "error_cb": self._on_error,
            "logger": librdkafka_log,
        })
        self._stop_watching = threading.Event()
        self._poll_timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._poll()
        RECORDS_IN_FLIGHT.set_function(lambda: self._in_flight)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def has_room(self) -> bool:
        """False at the in-flight limit: the caller should take no more work until `on_room`."""
        if self._in_flight < self._max_in_flight and not self._parked:
            return True
        self._room_wanted = True
        return False

    def produce(self, record: Outgoing, headers: Headers, on_done: OnDone) -> None:
        """Hands the record to librdkafka (never waits); `on_done` reports its delivery."""
        if self._closing:
            on_done(record, DeliveryAbandoned("the producer is shutting down"))
            return
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle.clear()
        if not self._busy:
            self._poll_busy()
        if self._parked:  # keep the order: nothing overtakes a parked record
            self._parked.append((record, headers, on_done, None))
            return
        self._produce(record, headers, on_done, None)

    def _produce(
        self, record: Outgoing, headers: Headers, on_done: OnDone, backoff: Backoff | None
    ) -> bool:
        try:
            self._producer.produce(
                record.topic, record.value, record.key, headers=headers,
                on_delivery=functools.partial(
                    self._on_delivery, record, headers, on_done, backoff, time.monotonic()),
            )
            return True
        except BufferError:  # librdkafka's local queue is full: let it drain
            self._parked.appendleft((record, headers, on_done, backoff))
            if self._parked_timer is None:
                self._parked_timer = self._loop.call_later(0.05, self._produce_parked)
            return False
        except KafkaException as exc:
            # Refused before sending (size, arguments, fatal state): retrying cannot help.
            self._settle(record, on_done, exc)
            return True

    def _produce_parked(self) -> None:
        self._parked_timer = None
        while self._parked:
            entry = self._parked.popleft()
            if not self._produce(*entry):
                return
        self._room_maybe()

    def _on_delivery(
        self, record: Outgoing, headers: Headers, on_done: OnDone, backoff: Backoff | None,
        started: float, err: KafkaError | None, _msg: Message,
    ) -> None:
        if err is None:
            DELIVERY_LATENCY.observe(time.monotonic() - started)
            self._settle(record, on_done, None)
        elif err.fatal():
            self._settle(record, on_done, KafkaException(err))
            self._on_fatal(f"fatal Kafka producer error: {err.str()}")
        elif self._closing:
            self._settle(record, on_done, DeliveryAbandoned(err.str()))
        else:
            DELIVERY_RETRIES.inc()
            backoff = backoff or Backoff(0.5, self._retry_max_s)
            delay = backoff.next_delay()
            log.warning("Kafka delivery to %s failed (%s); producing it again", record.topic,
                        err.str(), extra={"retry_in_s": round(delay, 2)})
            key = object()
            timer = self._loop.call_later(delay, self._retry, key, backoff)
            self._retry_timers[key] = (timer, record, headers, on_done)

    def _retry(self, key: object, backoff: Backoff) -> None:
        _timer, record, headers, on_done = self._retry_timers.pop(key)
        if self._parked:
            self._parked.append((record, headers, on_done, backoff))
        else:
            self._produce(record, headers, on_done, backoff)

    def _settle(self, record: Outgoing, on_done: OnDone, error: BaseException | None) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()
        on_done(record, error)
        if self._room_wanted:
            self._room_maybe()

    def _room_maybe(self) -> None:
        if self._room_wanted and self._in_flight < self._max_in_flight and not self._parked:
            self._room_wanted = False
            self._loop.call_soon(self._on_room)

    def _on_error(self, err: KafkaError) -> None:  # runs wherever the producer is polled
        if err.fatal():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(
                    self._on_fatal, f"fatal Kafka producer error: {err.str()}")
        else:
            log.warning("Kafka client error: %s", err.str())

    def _poll_busy(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.cancel()
        self._busy = True
        self._poll_timer = self._loop.call_later(POLL_BUSY_S, self._poll)

    def _poll(self) -> None:
        """Serves delivery reports, errors and logs, here on the loop; then re-arms."""
        try:
            self._producer.poll(0)
        except Exception:  # a callback's bug: say so, and keep polling
            log.exception("error while handling Kafka delivery reports")
        finally:
            self._busy = self._in_flight > 0
            self._poll_timer = None if self._closed else self._loop.call_later(
                POLL_BUSY_S if self._busy else POLL_IDLE_S, self._poll)

    def watch_reachability(self, topic: str, interval_s: float) -> None:
        """Keeps `reachable` current from a daemon thread (never delays the exit): True when a
        broker answers a metadata request for `topic`; retried with backoff while it is not."""
        threading.Thread(target=self._watch, args=(topic, interval_s), name="kafka-probe",
                         daemon=True).start()

    def _watch(self, topic: str, interval_s: float) -> None:
        backoff = Backoff(0.5, 30.0)
        while not self._stop_watching.is_set():
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
            self._stop_watching.wait(interval_s if ok else backoff.next_delay())

    async def drain(self, timeout: float) -> int:
        """Stops retrying and waits up to `timeout` s for deliveries; returns what is left."""
        self._closing = True
        abandoned = list(self._retry_timers.values())
        self._retry_timers.clear()
        for timer, record, _headers, on_done in abandoned:
            timer.cancel()
            self._settle(record, on_done, DeliveryAbandoned("shutdown before a retry"))
        while self._parked:
            record, _headers, on_done, _backoff = self._parked.popleft()
            self._settle(record, on_done, DeliveryAbandoned("shutdown before it was produced"))
        if self._in_flight:
            self._producer.flush(0)  # send what lingers now, not after linger.ms
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        return self._in_flight

    def close(self) -> None:
        """Stops polling; records still queued are dropped (never acknowledged)."""
        self._closing = True
        self._closed = True
        self._stop_watching.set()
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        if self._parked_timer is not None:
            self._parked_timer.cancel()
