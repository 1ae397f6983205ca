"""Pre-filled Kafka backlogs for `telemetry benchmark --component`, and counting what arrives.

The records are written the way the contract describes them (schemas/*.avsc, key = device_id,
the trace-id and ingest-time headers), from the simulator's own devices, not through ingest or
the processors: each component is measured alone, as a black box fed by its input topic.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from loadtest.devices import SimulatedDevice, make_devices
from loadtest.units import CANONICAL_UNITS
from plumbing.topics import HEADER_INGEST_TIME, HEADER_TRACE_ID
from schemas.codec import default_codec

log = logging.getLogger("loadtest.backlog")

#: Python type -> the RawReading union branch (fastavro would write an int as a double).
_BRANCH = {bool: "boolean", int: "long", float: "double", str: "string"}


@dataclass(frozen=True)
class BacklogReading:
    device: SimulatedDevice
    ts_ms: int
    seq: int
    #: canonical values of the reported metrics
    canonical: dict[str, float]
    #: the `metrics` object as the device would send it (units of the device's choice)
    sent: dict[str, Any]


def backlog_readings(
    devices: int, prefix: str, seed: int, count: int, metrics_per_reading: int = 4,
    interval_s: float = 1.0,
) -> Iterator[BacklogReading]:
    """`count` readings, the devices taking turns; per device seq 1, 2, ... and ts strictly
    increasing, ending about now."""
    rng = random.Random(seed)
    fleet = make_devices(devices, prefix, rng, metrics_per_reading)
    per_device = -(-count // devices)
    start_ms = int(time.time() * 1000) - per_device  # 1 ms apart per device, ending near now
    for n in range(count):
        device = fleet[n % devices]
        values = device.advance(rng, interval_s)
        device.seq += 1
        ts_ms = max(start_ms + device.seq, device.last_ts_ms + 1)
        device.last_ts_ms = ts_ms
        reported = {s.name: round(values[s.name], s.decimals) for s in device.specs}
        yield BacklogReading(device, ts_ms, device.seq, reported, device.render(values))


def raw_reading_value(reading: BacklogReading, received_at_ms: int) -> bytes:
    """A RawReading as ingest writes it: the metrics as sent, units included."""
    metrics = []
    for name, sent in reading.sent.items():
        value, unit = (sent["value"], sent["unit"]) if isinstance(sent, dict) else (sent, None)
        metrics.append({"name": name, "value": (_BRANCH[type(value)], value), "unit": unit})
    record = {
        "device_id": reading.device.device_id,
        "ts": reading.ts_ms,
        "received_at_ms": received_at_ms,
        "seq": reading.seq,
        "metrics": metrics,
    }
    return default_codec().encode("RawReading", record)


def enriched_reading_value(reading: BacklogReading, received_at_ms: int) -> bytes:
    """An EnrichedReading as the processors write it: canonical units, the device's tags."""
    record = {
        "device_id": reading.device.device_id,
        "ts_us": reading.ts_ms * 1000,
        "received_at_ms": received_at_ms,
        "seq": reading.seq,
        "fields": {k: float(v) for k, v in reading.canonical.items()},
        "units": {k: CANONICAL_UNITS[k] for k in reading.canonical if k in CANONICAL_UNITS},
        "tags": dict(reading.device.tags),
    }
    return default_codec().encode("EnrichedReading", record)


def device_metadata_value(device: SimulatedDevice, now_ms: int) -> bytes:
    record = {
        "device_id": device.device_id,
        "tags": dict(device.tags),
        "updated_at_ms": now_ms,
        "source": "file",
    }
    return default_codec().encode("DeviceMetadata", record)


Headers = list[tuple[str, str | bytes | None]]


def headers(received_at_ms: int) -> Headers:
    return [
        (HEADER_TRACE_ID, uuid.uuid4().hex.encode()),
        (HEADER_INGEST_TIME, str(received_at_ms).encode()),
    ]


class BacklogProducer:
    """An idempotent producer like the pipeline's own (acks=all, the Java clients' key hash)."""

    def __init__(self, kafka_config: dict[str, Any]) -> None:
        self.producer = Producer(
            {
                **kafka_config,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "lz4",
                "linger.ms": 20,
                "partitioner": "murmur2_random",
            }
        )
        self.failed: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def produce(
        self, topic: str, key: bytes, value: bytes, hdrs: Headers | None = None
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=hdrs, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout: float = 120.0) -> None:
        left = self.producer.flush(timeout)
        if left or self.failed:
            raise KafkaException(
                f"the backlog was not written: {left} records unconfirmed, "
                f"{len(self.failed)} failed ({self.failed[:3]})"
            )


def end_offsets(admin: AdminClient, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """partition -> end offset (the offset the next record will get)."""
    meta = admin.list_topics(topic, timeout=timeout)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise KafkaException(f"topic {topic} not found; is the stack up?")
    partitions = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions},
                                 request_timeout=timeout)
    return {tp.partition: f.result(timeout).offset for tp, f in futures.items()}


def create_topic(admin: AdminClient, topic: str, partitions: int, timeout: float = 30.0) -> None:
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=timeout)
    futures[topic].result(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # metadata of a new topic takes a moment everywhere
        meta = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions:
            return
        time.sleep(0.2)


class KeyCounter:
    """Counts the records arriving on a topic from given offsets on, split into this run's
    (key starts with the device prefix) and anyone else's."""

    def __init__(
        self, kafka_config: dict[str, Any], topic: str, prefix: str, start: dict[int, int]
    ) -> None:
        self.consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"loadtest-count-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        self.prefix = prefix.encode()
        self.ours = 0
        self.others = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"count-{topic}", daemon=True)

    def start(self) -> KeyCounter:
        self._thread.start()
        return self

    def _loop(self) -> None:
        prefix = self.prefix
        while not self._stop.is_set():
            for msg in self.consumer.consume(1000, 0.2):
                if msg.error():
                    continue
                key = msg.key()
                if key is not None and key.startswith(prefix):
                    self.ours += 1
                else:
                    self.others += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.consumer.close()
