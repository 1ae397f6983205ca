"""The simulator's two overrides of paho internals (loadtest/mqtt_publisher.py): they behave,
and the upstream code they rely on or replace is the code they were written against."""

from __future__ import annotations

import hashlib
import inspect
import struct
from importlib.metadata import version
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from loadtest.mqtt_publisher import CoalescingSocket, PublisherClient

#: sha256 (first 16 hex) of the paho-mqtt 2.2.0 methods the overrides replace or depend on.
#: A paho upgrade that changes one fails here: read the new code, adapt the override (or drop
#: it), then update the hash.
PINNED = {
    "_handle_pubackcomp": "04d39ba283b1f3be",
    "_do_on_publish": "5bbcad6f9447107a",
    "_sock_recv": "c3b9043a46dd81b7",
    "_sock_send": "300d9f1031bd0dbd",
    "_sock_close": "638e9c4e5a7f32ae",
    "_create_socket": "3043436f2eb23690",
}


def test_paho_is_the_version_the_overrides_were_written_for() -> None:
    assert version("paho-mqtt").startswith("2.")
    changed = {
        name: digest
        for name, digest in PINNED.items()
        if hashlib.sha256(inspect.getsource(getattr(mqtt.Client, name)).encode()).hexdigest()[:16]
        != digest
    }
    assert not changed, f"paho changed {sorted(changed)}: re-check loadtest/mqtt_publisher.py"


class FakeSocket:
    """A non-blocking socket stand-in: takes at most `take` bytes per send, replays `incoming`."""

    def __init__(self, take: int = 1 << 30) -> None:
        self.take = take
        self.sent: list[bytes] = []
        self.incoming = b""
        self.recv_calls = 0
        self.closed = False

    def send(self, data: bytes | bytearray) -> int:
        if self.take == 0:
            raise BlockingIOError
        chunk = bytes(data[: self.take])
        self.sent.append(chunk)
        return len(chunk)

    def recv(self, n: int) -> bytes:
        self.recv_calls += 1
        if not self.incoming:
            raise BlockingIOError
        chunk, self.incoming = self.incoming[:n], self.incoming[n:]
        return chunk

    def fileno(self) -> int:
        return -1

    def setblocking(self, flag: bool) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_sends_are_gathered_and_written_together_even_when_the_kernel_takes_part() -> None:
    fake = FakeSocket(take=5)
    sock = CoalescingSocket(fake)
    for part in (b"abc", b"defg", b"hij"):
        assert sock.send(part) == len(part)
    assert fake.sent == [] and sock.unsent == 10
    assert sock.flush()
    assert b"".join(fake.sent) == b"abcdefghij" and len(fake.sent) == 2
    fake.take = 0
    sock.send(b"xyz")
    assert not sock.flush() and sock.unsent == 3  # the kernel is full: kept, not lost


def test_reads_are_served_from_one_large_read() -> None:
    fake = FakeSocket()
    fake.incoming = b"\x40\x02\x00\x01" * 3
    sock = CoalescingSocket(fake)
    got = b"".join(sock.recv(n) for n in (1, 1, 2, 1, 1, 2, 1, 1, 2))
    assert got == b"\x40\x02\x00\x01" * 3
    assert fake.recv_calls == 1 and sock.buffered == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)


def test_close_writes_what_is_buffered_first() -> None:
    fake = FakeSocket()
    sock = CoalescingSocket(fake)
    sock.send(b"\xe0\x00")  # DISCONNECT
    sock.close()
    assert fake.sent == [b"\xe0\x00"] and fake.closed


def connected_client(
    protocol: mqtt.MQTTProtocolVersion, fake: FakeSocket
) -> tuple[PublisherClient, list[int]]:
    client = PublisherClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)
    client.max_inflight_messages_set(0)
    acked: list[int] = []

    def on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        assert not rc.is_failure
        acked.append(mid)

    client.on_publish = on_publish
    client._sock = CoalescingSocket(fake)
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    return client, acked


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_pubacks_complete_their_publishes_in_either_protocol(
    protocol: mqtt.MQTTProtocolVersion,
) -> None:
    fake = FakeSocket()
    client, acked = connected_client(protocol, fake)
    mids = [client.publish(f"devices/d-{i}/telemetry", b"{}", qos=1).mid for i in range(3)]
    client.socket().flush()  # type: ignore[union-attr]
    assert b"".join(fake.sent).count(b"devices/d-") == 3  # three PUBLISH packets, one write
    assert len(fake.sent) == 1
    if protocol == mqtt.MQTTv5:  # a v5 PUBACK may carry a reason code: upstream handles it
        fake.incoming = b"".join(struct.pack("!BBHB", 0x40, 3, m, 0) for m in mids[::-1])
    else:
        fake.incoming = b"".join(struct.pack("!BBH", 0x40, 2, m) for m in mids[::-1])
    client.loop_read()
    assert acked == mids[::-1]
    assert not client._out_messages
    fake.incoming = struct.pack("!BBH", 0x40, 2, 999)  # an unknown id is ignored
    client.loop_read()
    assert acked == mids[::-1]
