"""The per-message logic of IngestService, with a fake producer and connection: what waits
for room, in which order, and when a PUBACK may go out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ingest.acks import InOrderAcks
from ingest.kafka_producer import DeliveryAbandoned, OnDone
from ingest.mqtt_connection import Inbound
from ingest.records import Headers, Outgoing
from ingest.service import IngestService
from ingest.settings import IngestSettings
from plumbing.health import HealthState
from plumbing.topics import RAW
from schemas.codec import default_codec


class FakeProducer:
    def __init__(self) -> None:
        self.room = True
        self.sent: list[tuple[Outgoing, Headers, OnDone]] = []

    @property
    def has_room(self) -> bool:
        return self.room

    def produce(self, record: Outgoing, headers: Headers, on_done: OnDone) -> None:
        self.sent.append((record, headers, on_done))

    def confirm(self, i: int, error: BaseException | None = None) -> None:
        record, _, on_done = self.sent[i]
        on_done(record, error)


class FakeConnection:
    def __init__(self) -> None:
        self.connected = True
        self.pubacks: list[int] = []
        self.acks = InOrderAcks(lambda mid, qos: self.pubacks.append(mid))


def service() -> tuple[IngestService, FakeProducer, FakeConnection]:
    svc = IngestService(IngestSettings(), HealthState())
    svc._stop = asyncio.Event()
    producer = FakeProducer()
    svc.producer = producer  # type: ignore[assignment]
    return svc, producer, FakeConnection()


def message(mid: int, device: str = "d1", readings: int = 1) -> Inbound:
    docs: list[dict[str, Any]] = [{"seq": mid * 10 + i, "metrics": {"v": i}}
                                  for i in range(readings)]
    payload = json.dumps(docs[0] if readings == 1 else docs).encode()
    return Inbound(f"devices/{device}/telemetry", payload, 1, mid)


def seqs(producer: FakeProducer) -> list[int]:
    out = []
    for record, _, _ in producer.sent:
        assert record.value is not None
        out.append(default_codec().decode(record.value)["seq"])
    return out


def test_a_message_is_produced_at_once_and_acknowledged_after_all_its_records() -> None:
    svc, producer, conn = service()
    svc._on_messages(conn, [message(1, readings=2)])  # type: ignore[arg-type]
    assert [r.topic for r, _, _ in producer.sent] == [RAW, RAW]
    assert seqs(producer) == [10, 11]
    trace = {h for _, headers, _ in producer.sent for h in headers if h[0] == "trace_id"}
    assert len(trace) == 1  # one trace id per MQTT message
    producer.confirm(1)
    assert conn.pubacks == []
    producer.confirm(0)
    assert conn.pubacks == [1]


def test_without_room_messages_wait_in_arrival_order_and_acks_keep_it() -> None:
    svc, producer, conn = service()
    svc._on_messages(conn, [message(1)])  # type: ignore[arg-type]
    producer.room = False
    for mid in (2, 3, 4):
        svc._on_messages(conn, [message(mid)])  # type: ignore[arg-type]
    assert seqs(producer) == [10]
    producer.room = True
    svc._on_messages(conn, [message(5)])  # type: ignore[arg-type]
    assert seqs(producer) == [10]  # nothing overtakes what waits
    svc._take_backlog()
    assert seqs(producer) == [10, 20, 30, 40, 50]
    for i in (4, 2, 3, 1):
        producer.confirm(i)
    assert conn.pubacks == []
    producer.confirm(0)
    assert conn.pubacks == [1, 2, 3, 4, 5]


def test_after_stopping_messages_are_left_for_the_broker_to_send_again() -> None:
    svc, producer, conn = service()
    svc._taking = False
    svc._on_messages(conn, [message(1)])  # type: ignore[arg-type]
    assert producer.sent == []
    assert svc._left_unhandled == 1
    assert len(conn.acks) == 0


def test_a_lost_connection_drops_what_waited_for_room() -> None:
    svc, producer, conn = service()
    producer.room = False
    svc._on_messages(conn, [message(1)])  # type: ignore[arg-type]
    conn.connected = False
    producer.room = True
    svc._take_backlog()
    assert producer.sent == []


def test_an_abandoned_record_is_never_acknowledged_and_a_refused_one_is_fatal() -> None:
    svc, producer, conn = service()
    svc._on_messages(conn, [message(1)])  # type: ignore[arg-type]
    svc._on_messages(conn, [message(2)])  # type: ignore[arg-type]
    producer.confirm(0, DeliveryAbandoned("shutdown"))
    assert svc._exit_code == 0
    producer.confirm(1, RuntimeError("MSG_SIZE_TOO_LARGE"))
    assert svc._exit_code == 1 and svc._stop.is_set()
    assert conn.pubacks == []


def test_a_reject_is_one_dead_letter_acknowledged_once_kafka_has_it() -> None:
    svc, producer, conn = service()
    bad = Inbound("devices/d1/telemetry", b"not json", 1, 9)
    svc._on_messages(conn, [bad])  # type: ignore[arg-type]
    [(record, _, _)] = producer.sent
    assert record.kind == "dead_letter"
    producer.confirm(0)
    assert conn.pubacks == [9]


def test_what_one_read_brought_is_produced_in_order_with_one_receive_time() -> None:
    svc, producer, conn = service()
    svc._on_messages(conn, [message(1, "a"), message(2, "b", readings=2), message(3, "a")])  # type: ignore[arg-type]
    assert seqs(producer) == [10, 20, 21, 30]
    assert len({h for _, headers, _ in producer.sent for h in headers
                if h[0] == "ingest_time_ms"}) == 1
    for i in (3, 1, 0):
        producer.confirm(i)
    assert conn.pubacks == [1]  # message 2 still waits for its second reading
    producer.confirm(2)
    assert conn.pubacks == [1, 2, 3]
