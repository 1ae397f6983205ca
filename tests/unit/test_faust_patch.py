"""The fetcher patch: pinned to the Faust it was written for, the same code but one line,
and a delivery that has to wait still goes through wait_first."""

from __future__ import annotations

import asyncio
import inspect
import re
import textwrap
from typing import Any

import faust
from faust.transport.consumer import Consumer

from processors import faust_patch


def code_lines(function: Any) -> list[str]:
    source = textwrap.dedent(inspect.getsource(function))
    lines = []
    for line in source.splitlines()[1:]:  # without the def line
        line = re.sub(r"\s+#.*$", "", line) if not line.strip().startswith("#") else ""
        if line.strip():
            lines.append(line.rstrip())
    return lines


def test_upstream_is_what_the_patch_was_written_for() -> None:
    # Fails when faust-streaming changes: review faust_patch._drain_messages against the new
    # upstream method, then update PINNED_VERSION and UPSTREAM_SOURCE_SHA256.
    assert faust.__version__ == faust_patch.PINNED_VERSION
    assert faust_patch.upstream_source_sha256() == faust_patch.UPSTREAM_SOURCE_SHA256


def test_the_copy_differs_from_upstream_in_the_delivery_line_only() -> None:
    upstream = code_lines(faust_patch._UPSTREAM_DRAIN)
    ours = code_lines(faust_patch._drain_messages)
    old = [i for i, line in enumerate(upstream) if "self.wait_first(" in line]
    assert len(old) == 1
    i = old[0]
    # upstream spreads the call over three lines
    assert upstream[i:i + 3] == [
        "                        await self.wait_first(",
        "                            callback(message), self.suspend_flow.wait()",
        "                        )",
    ]
    changed = "                        await deliver(self, callback(message))"
    assert ours == [*upstream[:i], changed, *upstream[i + 3:]]


def test_the_app_applies_it_only_when_told_to(tmp_path: Any) -> None:
    from processors.app import create_app
    from processors.settings import ProcessorSettings

    def never(agent: str, exc: BaseException) -> None:
        raise AssertionError

    original = Consumer._drain_messages
    try:
        Consumer._drain_messages = faust_patch._UPSTREAM_DRAIN  # type: ignore[method-assign]
        create_app(ProcessorSettings(process_data_dir=str(tmp_path)), never)
        assert Consumer._drain_messages is faust_patch._UPSTREAM_DRAIN  # off by default
        create_app(ProcessorSettings(process_data_dir=str(tmp_path),
                                     process_fetcher_patch=True), never)
        assert Consumer._drain_messages is faust_patch._drain_messages
    finally:
        Consumer._drain_messages = original  # type: ignore[method-assign]


class FakeConsumer:
    """The two attributes `deliver` uses."""

    def __init__(self) -> None:
        self.suspend_flow = asyncio.Event()
        self.waited: list[Any] = []

    async def wait_first(self, *coros: Any) -> None:
        self.waited.append(coros[0])
        _done, pending = await asyncio.wait(
            [asyncio.ensure_future(c if not isinstance(c, asyncio.Event) else c.wait())
             for c in coros], return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()


def test_a_delivery_that_does_not_wait_runs_in_place() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        seen = []

        async def put() -> None:
            seen.append(1)

        await faust_patch.deliver(consumer, put())  # type: ignore[arg-type]
        assert seen == [1] and consumer.waited == []

    asyncio.run(main())


def test_a_delivery_that_waits_finishes_through_wait_first_or_is_abandoned() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        room = asyncio.Event()
        seen: list[str] = []

        async def put(value: str) -> str:
            seen.append("started " + value)
            await room.wait()
            seen.append("put " + value)
            return value

        delivery = asyncio.ensure_future(
            faust_patch.deliver(consumer, put("a")))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert seen == ["started a"] and len(consumer.waited) == 1
        room.set()
        await delivery
        assert seen == ["started a", "put a"]

        # flow suspended while a delivery waits: it is abandoned (cancelled), as upstream
        room.clear()
        delivery = asyncio.ensure_future(
            faust_patch.deliver(consumer, put("b")))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()
        await delivery
        room.set()
        await asyncio.sleep(0.01)
        assert seen == ["started a", "put a", "started b"]

    asyncio.run(main())
