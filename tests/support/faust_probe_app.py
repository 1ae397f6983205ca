"""A minimal Faust app for the stack test: a table, an agent, topic creation by Faust."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import faust

app = faust.App(
    os.environ["PROBE_APP_ID"],
    broker=os.environ["PROBE_BROKER"],
    store="memory://",
    web_enabled=False,
    topic_partitions=6,
    datadir=os.environ["PROBE_DATADIR"],
)
source = app.topic(os.environ["PROBE_SOURCE"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["PROBE_SINK"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, key_type=bytes, value_type=int)


@app.agent(source)
async def count_and_forward(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for key, _value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=f"count={counts[key]}".encode())
        yield None
