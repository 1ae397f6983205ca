"""In-order acks: nothing is acked before its output is confirmed and every older record is."""

from __future__ import annotations

import asyncio
from typing import Any

from processors.delivery import InOrderBatchAcks


class Taken:
    """Stands in for a Faust event: records when it is acked."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def ack(self) -> bool:
        self.log.append(self.name)
        return True


async def settle() -> None:
    """Lets every ready callback and task run."""
    for _ in range(10):
        await asyncio.sleep(0)


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def test_acks_follow_consumption_order_not_delivery_order() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        failures: list[BaseException] = []
        acks = InOrderBatchAcks("t", 100, failures.append)
        loop = asyncio.get_running_loop()
        f1, f2, f3a, f3b = (loop.create_future() for _ in range(4))
        acks.track(Taken("r1", acked), [f1], 1)
        acks.track(Taken("r2", acked), [f2], 1)
        acks.track(Taken("r3", acked), [f3a, f3b], 2)
        f3a.set_result(None)
        f3b.set_result(None)
        f2.set_result(None)
        await asyncio.sleep(0)
        assert acked == []  # r1 still in flight holds back r2 and r3
        f1.set_result(None)
        await asyncio.sleep(0)
        assert acked == ["r1", "r2", "r3"]
        assert len(acks) == 0 and failures == []

    run(scenario)


def test_a_record_with_no_output_waits_for_older_ones() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        acks = InOrderBatchAcks("t", 100, lambda exc: None)
        f1 = asyncio.get_running_loop().create_future()
        acks.track(Taken("r1", acked), [f1], 1)
        acks.track(Taken("nothing-to-forward", acked), [], 0)
        assert acked == []
        f1.set_result(None)
        await asyncio.sleep(0)
        assert acked == ["r1", "nothing-to-forward"]
        acks.track(Taken("alone", acked), [], 0)
        assert acked[-1] == "alone"

    run(scenario)


def test_a_failed_delivery_stops_all_acks_and_reports_once() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        failures: list[BaseException] = []
        acks = InOrderBatchAcks("t", 100, failures.append)
        loop = asyncio.get_running_loop()
        f0, f1, f2 = (loop.create_future() for _ in range(3))
        acks.track(Taken("r0", acked), [f0], 1)
        f0.set_result(None)
        await asyncio.sleep(0)
        acks.track(Taken("r1", acked), [f1], 1)
        acks.track(Taken("r2", acked), [f2], 1)
        f2.set_result(None)
        f1.set_exception(ConnectionError("broker gone"))
        await asyncio.sleep(0)
        acks.track(Taken("r3", acked), [], 0)
        await asyncio.sleep(0)
        assert acked == ["r0"]
        assert [str(e) for e in failures] == ["broker gone"]
        assert isinstance(acks.failure, ConnectionError)

    run(scenario)


def test_a_cancelled_delivery_is_a_failure() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        failures: list[BaseException] = []
        acks = InOrderBatchAcks("t", 100, failures.append)
        fut = asyncio.get_running_loop().create_future()
        acks.track(Taken("r1", acked), [fut], 1)
        fut.cancel()
        await asyncio.sleep(0)
        assert acked == [] and len(failures) == 1

    run(scenario)


def test_wait_for_room_holds_the_agent_at_the_in_flight_limit() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        acks = InOrderBatchAcks("t", 2, lambda exc: None)
        loop = asyncio.get_running_loop()
        f1, f2 = loop.create_future(), loop.create_future()
        acks.track(Taken("r1", acked), [f1], 1)
        await asyncio.wait_for(acks.wait_for_room(), 1)  # 1 of 2: room left
        acks.track(Taken("r2", acked), [f2], 1)
        waiter = asyncio.ensure_future(acks.wait_for_room())
        await settle()
        assert not waiter.done()
        f2.set_result(None)  # not the oldest: still full
        await settle()
        assert not waiter.done()
        f1.set_result(None)
        await asyncio.wait_for(waiter, 1)
        assert acked == ["r1", "r2"]

    run(scenario)
