"""PUBACKs written together are the bytes paho's own ack() writes one message at a time."""

from __future__ import annotations

import asyncio

from ingest.mqtt_connection import MqttConnection
from ingest.settings import IngestSettings


class Sink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def test_batched_pubacks_equal_pahos_one_by_one_in_one_write() -> None:
    async def main() -> tuple[list[bytes], list[bytes]]:
        conn = MqttConnection(IngestSettings(), lambda _conn, _messages: None)
        client = conn._paho
        client.on_socket_register_write = None  # paho then writes at once, to the sink
        ours, theirs = Sink(), Sink()
        client._sock = ours  # type: ignore[assignment]
        mids = [1, 2, 300, 65535]
        for mid in mids:
            conn._send_puback(mid, 1)
        await asyncio.sleep(0)  # the flush runs in the next pass of the loop
        client._sock = theirs  # type: ignore[assignment]
        for mid in mids:
            client.ack(mid, 1)
        client._sock = None
        return ours.writes, theirs.writes

    ours, theirs = asyncio.run(main())
    assert len(ours) == 1 and len(theirs) == 4
    assert ours[0] == b"".join(theirs)


def test_pubacks_of_a_lost_connection_are_not_written() -> None:
    async def main() -> list[bytes]:
        conn = MqttConnection(IngestSettings(), lambda _conn, _messages: None)
        conn._paho.on_socket_register_write = None
        sink = Sink()
        conn._paho._sock = sink  # type: ignore[assignment]
        conn._send_puback(7, 1)
        conn._client._disconnected.set_result(None)
        await asyncio.sleep(0)
        conn._paho._sock = None
        return sink.writes

    assert asyncio.run(main()) == []
