"""Acks batches of input records in the order they were taken, once Kafka confirmed all
their output.

Why not Faust's automatic ack: Faust acks a record when the `async for` body moves on (and
also when the body raises), while `topic.send()` only queued the output. Its commit does
flush the producer first, but a flush does not report a failed delivery, so the input
offset could be committed for output that never reached Kafka.

Why strictly in order: faust-streaming 0.15's `Consumer._new_offset` commits the first run of
consecutive acked offsets and only holds back when the gap before it is more than one offset
(faust-streaming/faust#606). Acking batch N+1 while N is still in flight could commit past
N. Acking in consumption order means no acked offset is ever ahead of an unacked one.

When an output fails for good, nothing after it is acked any more and `on_failure` is called
(the worker exits without committing; a restart replays from the last committed offset).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from processors.metrics import IN_FLIGHT, LATENCY, READINGS_OUT


class Ackable(Protocol):
    def ack(self) -> bool: ...


@dataclass(eq=False)
class _Taken:
    event: Ackable
    pending: int
    forwarded: int
    started: float


class InOrderBatchAcks:
    """The batches one agent took and has not acked yet, oldest first."""

    def __init__(
        self,
        agent: str,
        max_in_flight: int,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.agent = agent
        self.max_in_flight = max_in_flight
        self.on_failure = on_failure
        self.failure: BaseException | None = None
        self._taken: deque[_Taken] = deque()
        self._room = asyncio.Event()
        self._room.set()
        self._in_flight = IN_FLIGHT.labels(agent=agent)
        self._latency = LATENCY.labels(agent=agent)
        self._out = READINGS_OUT.labels(agent=agent)

    def __len__(self) -> int:
        return len(self._taken)

    def track(
        self, event: Ackable, deliveries: Sequence[asyncio.Future[Any]], forwarded: int
    ) -> None:
        """`event` is acked after every delivery succeeded and every older event is acked."""
        taken = _Taken(event, len(deliveries), forwarded, time.perf_counter())
        self._taken.append(taken)
        self._in_flight.inc()
        if not deliveries:
            self._ack_ready()
        for fut in deliveries:
            fut.add_done_callback(lambda f, t=taken: self._delivered(t, f))  # type: ignore[misc]

    async def wait_for_room(self) -> None:
        """Holds the agent while `max_in_flight` batches are waiting for Kafka."""
        while len(self._taken) >= self.max_in_flight and self.failure is None:
            self._room.clear()
            await self._room.wait()

    def _delivered(self, taken: _Taken, fut: asyncio.Future[Any]) -> None:
        if self.failure is not None:
            return
        error = (
            asyncio.CancelledError("output send was cancelled")
            if fut.cancelled()
            else fut.exception()
        )
        if error is not None:
            self.failure = error
            self._room.set()
            self.on_failure(error)
            return
        taken.pending -= 1
        if taken is self._taken[0]:
            self._ack_ready()

    def _ack_ready(self) -> None:
        taken = self._taken
        while taken and taken[0].pending == 0 and self.failure is None:
            done = taken.popleft()
            done.event.ack()
            self._in_flight.dec()
            self._out.inc(done.forwarded)
            self._latency.observe(time.perf_counter() - done.started)
        if len(taken) < self.max_in_flight:
            self._room.set()
