"""A pinned change of faust-streaming 0.15.3's fetcher: hand a message to the streams in place.

**Off by default, and not safe yet** (`process_fetcher_patch`): with it, a worker SIGKILLed
and restarted skipped the readings of its downtime (`telemetry chaos --fault kill-process
--times 2` lost 143-368 of ~4,300 in 3 of 3 runs; 0 without it). It halves the worker's CPU
per reading, so finding why is worth it: a delivery that waits while a rebalance or the
table recovery suspends the flow is the first suspect. Not to be offered upstream until then.

Upstream `Consumer._drain_messages` delivers every fetched message with
`await self.wait_first(callback(message), self.suspend_flow.wait())`, and mode's
`wait_first` wraps each argument, plus the service's `stopped` and `crashed` events, in a
task of its own, waits with `asyncio.wait` and cancels the losers: four tasks and a wait per
message, a large share of the worker's CPU once the steps themselves are cheap.

Almost every delivery completes without waiting (the stream's buffer has room). This patch
starts the delivery coroutine in the fetcher's own task; only when it has to wait (the
buffer is full, so the agent is the bottleneck anyway) does the rest of it go through
`wait_first` exactly as upstream, so a flow suspension (a rebalance) still abandons a
blocked delivery. When flow is already suspended, upstream's path is taken from the start.

The patch replaces the method only when the installed faust-streaming is the version it was
written against and the method's source is unchanged (`UPSTREAM_SOURCE_SHA256`);
otherwise it logs why and leaves Faust alone. `tests/unit/test_faust_patch.py` fails when
upstream changes, so the copy below is reviewed then. Offered upstream as: "fast path in
Consumer._drain_messages: run the delivery coroutine inline and fall back to wait_first
only when it suspends".
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import types
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, cast

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from mode import Service, ServiceT

log = logging.getLogger(__name__)

PINNED_VERSION = "0.15.3"
UPSTREAM_SOURCE_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
_UPSTREAM_DRAIN = Consumer._drain_messages


def upstream_source_sha256() -> str:
    return hashlib.sha256(inspect.getsource(_UPSTREAM_DRAIN).encode()).hexdigest()


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Drives a coroutine that already ran up to its first wait, as a task would."""
    try:
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                raise
            except BaseException as exc:
                waiting_on = coro.throw(exc)
            else:
                waiting_on = coro.send(sent)
    except StopIteration as stop:
        return stop.value
    finally:
        coro.close()


async def deliver(consumer: Consumer, coro: Coroutine[Any, Any, Any]) -> None:
    """What upstream's `wait_first(callback(message), suspend_flow.wait())` does, without
    a task per message when the delivery does not have to wait."""
    if consumer.suspend_flow.is_set():
        await consumer.wait_first(coro, consumer.suspend_flow.wait())
        return
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    rest = asyncio.ensure_future(_resume(coro, waiting_on))
    await consumer.wait_first(rest, consumer.suspend_flow.wait())


async def _drain_messages(self: Consumer, fetcher: ServiceT) -> None:  # pragma: no cover
    # Upstream's Consumer._drain_messages (faust-streaming 0.15.3) with one line changed,
    # marked CHANGED below.
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = cast(AsyncIterator, getmany(timeout=1.0))

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:  # noqa: SIM102 (upstream as is)
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        await deliver(self, callback(message))  # type: ignore[arg-type]  # CHANGED
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def apply() -> bool:
    """Installs the patch when it fits the installed Faust; True when it did."""
    if faust.__version__ != PINNED_VERSION or upstream_source_sha256() != UPSTREAM_SOURCE_SHA256:
        log.warning(
            "faust-streaming is not the version the fetcher patch was written for; running "
            "without it (slower per message, same behaviour)",
            extra={"installed": faust.__version__, "pinned": PINNED_VERSION},
        )
        return False
    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    return True
