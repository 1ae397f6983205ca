"""paho reads the broker's packets through BufferedSocket whole and in order, in few reads."""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
from typing import Any

import paho.mqtt.client as mqtt

from ingest.mqtt_connection import BufferedSocket


def publish_packet(mid: int, payload: bytes) -> bytes:
    """A QoS 1 MQTT v5 PUBLISH without properties."""
    topic = f"devices/d{mid % 7}/telemetry".encode()
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + b"\x00" + payload
    n, length = len(body), bytearray()
    while True:
        n, digit = divmod(n, 128)
        length.append(digit | (0x80 if n else 0))
        if not n:
            break
    return bytes([0x32]) + bytes(length) + body


class CountingSocket:
    """A socket that counts its reads and the bytes of the largest one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0
        self.largest = 0

    def recv(self, n: int) -> bytes:
        data = self.sock.recv(n)
        self.reads += 1
        self.largest = max(self.largest, len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_paho_gets_every_packet_in_order_whatever_the_chunking() -> None:
    rng = random.Random(7)
    payloads = [bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 120, 127, 128,
                                                                     5000, 70_000])))
                for _ in range(150)]
    wire = b"".join(publish_packet(i + 1, p) for i, p in enumerate(payloads))
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    counting = CountingSocket(reader)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    got: list[tuple[int, bytes]] = []
    client.on_message = lambda _c, _u, m: got.append((m.mid, bytes(m.payload)))
    buffered = BufferedSocket(counting)
    client._sock = buffered

    def send_in_random_pieces() -> None:
        pos = 0
        while pos < len(wire):
            step = rng.choice([1, 3, 50, 999, 4096, 40_000, 100_000])
            writer.sendall(wire[pos:pos + step])
            pos += step

    feeder = threading.Thread(target=send_in_random_pieces)
    feeder.start()
    while len(got) < len(payloads):
        select.select([reader], [], [], 5)
        while True:  # one round of aiomqtt's reader callback
            client.loop_read()
            if buffered.pending() == 0:
                break
    feeder.join()
    writer.close()
    reader.close()
    assert got == [(i + 1, p) for i, p in enumerate(payloads)]
    # A round reads in large once; a packet cut by that read is finished with exact reads.
    assert counting.largest <= max(BufferedSocket.CHUNK, 70_100)


def test_small_packets_take_one_read_per_chunk_not_three_per_packet() -> None:
    payload = b'{"ts": 1763701200123, "seq": 42, "metrics": {"humidity": 41.5}}'
    wire = b"".join(publish_packet(i + 1, payload) for i in range(200))
    reader, writer = socket.socketpair()
    writer.sendall(wire)
    reader.setblocking(False)
    counting = CountingSocket(reader)
    buffered = BufferedSocket(counting)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    got: list[int] = []
    client.on_message = lambda _c, _u, m: got.append(m.mid)
    client._sock = buffered
    while len(got) < 200:
        client.loop_read()
        if buffered.pending() == 0 and len(got) < 200:
            select.select([reader], [], [], 5)
    assert got == list(range(1, 201))
    assert counting.reads <= len(wire) // BufferedSocket.CHUNK + 3  # paho alone: 600+
    writer.close()
    reader.close()


def test_aiomqtt_still_reads_on_while_the_socket_says_bytes_are_pending() -> None:
    """BufferedSocket relies on this: if aiomqtt stopped calling `pending()` after each
    read, buffered packets would wait for the next time the socket turns readable."""
    import inspect

    import aiomqtt

    source = inspect.getsource(aiomqtt.Client._on_socket_open)
    assert "client.loop_read()" in source
    assert ".pending() > 0" in source
