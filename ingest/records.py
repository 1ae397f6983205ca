"""The Kafka records one MQTT message turns into: readings, metadata, or a dead letter.

No I/O: the caller produces the records and acknowledges the message once Kafka has all of
them. Every reject becomes exactly one dead letter carrying the original payload.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from ingest.device_ids import checked_device_id, device_id_from_topic, shown
from ingest.metadata import decode_metadata_payload, metadata_record
from ingest.payload import decode_telemetry
from ingest.raw_avro import encode_raw_reading
from ingest.rejected import Rejected
from ingest.settings import IngestSettings
from plumbing.dead_letters import RejectedMetric, dead_letter, encode_dead_letter
from plumbing.reasons import Reason
from plumbing.topics import HEADER_INGEST_TIME, HEADER_TRACE_ID, METADATA, RAW
from schemas.codec import default_codec

STAGE_INGEST = "ingest"
STAGE_METADATA = "metadata"

#: Kafka record headers as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]


class Outgoing(NamedTuple):
    """One record to produce. `kind` says what it is: reading, metadata or dead_letter."""

    topic: str
    key: bytes | None
    value: bytes | None
    kind: str


def records_for(
    topic: str, payload: bytes, settings: IngestSettings, received_at_ms: int
) -> tuple[str, list[Outgoing]]:
    """(message kind, records) for a message on `topic`; kind is telemetry or metadata."""
    kind, device_id, problem = route(
        topic, settings.mqtt_telemetry_filter, settings.mqtt_metadata_filter)
    if kind == "metadata":
        assert device_id is not None
        return kind, _metadata(topic, device_id, problem, payload, settings, received_at_ms)
    try:
        if problem is not None:  # a fresh one: the cached instance must not collect tracebacks
            raise Rejected(problem.reason, problem.detail)
        assert device_id is not None
        readings = decode_telemetry(
            payload, device_id, received_at_ms, settings.ingest_max_payload_bytes,
            settings.ingest_max_readings_per_message, settings.ingest_max_metrics_per_reading)
        out = _readings(readings, device_id, settings.kafka_max_record_bytes)
        if len(out) < len(readings):
            out.append(_no_metrics(readings, topic, payload, device_id))
        return kind, out
    except Rejected as rej:
        good_id = device_id if problem is None else None
        return kind, [dead_letter_outgoing(rej, STAGE_INGEST, topic, payload, good_id)]


#: Topics up to this long are remembered by `route` (a fleet sends on the same topics).
_ROUTE_CACHE_TOPIC_CHARS = 256


def route(
    topic: str, telemetry_filter: str, metadata_filter: str
) -> tuple[str, str | None, Rejected | None]:
    """(kind, device id in NFC, why the id or topic is refused, or None) of a topic."""
    if len(topic) > _ROUTE_CACHE_TOPIC_CHARS:
        return _route(topic, telemetry_filter, metadata_filter)
    return _cached_route(topic, telemetry_filter, metadata_filter)


def _route(
    topic: str, telemetry_filter: str, metadata_filter: str
) -> tuple[str, str | None, Rejected | None]:
    device_id = device_id_from_topic(topic, metadata_filter)
    if device_id is not None:
        return ("metadata", *checked_device_id(device_id))
    device_id = device_id_from_topic(topic, telemetry_filter)
    if device_id is None:
        return "telemetry", None, Rejected(Reason.INVALID_DEVICE_ID, (
            f"topic {shown(topic)} does not match {telemetry_filter!r}, so it names no device"))
    return ("telemetry", *checked_device_id(device_id))


#: ~16k topics of at most 256 characters: a few MB at most.
_cached_route = functools.lru_cache(maxsize=16384)(_route)


def _readings(
    readings: list[dict[str, Any]], device_id: str, max_record_bytes: int
) -> list[Outgoing]:
    key = device_id.encode()
    out = []
    for i, reading in enumerate(readings):
        if not reading["metrics"]:
            continue  # refused by _no_metrics
        value = encode_raw_reading(reading)
        if len(value) > max_record_bytes:
            raise Rejected(Reason.PAYLOAD_TOO_LARGE, (
                f"reading {i} encodes to {len(value)} bytes, above the Kafka record limit "
                f"of {max_record_bytes}: send fewer or shorter metrics per reading"))
        out.append(Outgoing(RAW, key, value, "reading"))
    return out


def _no_metrics(
    readings: list[dict[str, Any]], topic: str, payload: bytes, device_id: str
) -> Outgoing:
    """One dead letter for every reading of the message without metrics, so a batch of empty
    objects costs one dead letter carrying the payload once, not one per item."""
    empty = [i for i, reading in enumerate(readings) if not reading["metrics"]]
    if len(readings) == 1:
        detail = 'the reading has no metrics; send "metrics": {...}'
    else:
        shown_items = ", ".join(map(str, empty[:50])) + (", ..." if len(empty) > 50 else "")
        detail = (f"{len(empty)} of {len(readings)} readings have no metrics (batch items "
                  f'{shown_items}); the others went on. Send "metrics": {{...}} in each')
    rej = Rejected(Reason.NO_METRICS, detail)
    return dead_letter_outgoing(rej, STAGE_INGEST, topic, payload, device_id)


def _metadata(
    topic: str, device_id: str, problem: Rejected | None, payload: bytes,
    settings: IngestSettings,
    received_at_ms: int,
) -> list[Outgoing]:
    if problem is not None:
        return [dead_letter_outgoing(problem, STAGE_METADATA, topic, payload, None)]
    try:
        checked = decode_metadata_payload(
            payload, settings.ingest_max_payload_bytes, settings.tag_limits)
    except Rejected as rej:
        return [dead_letter_outgoing(rej, STAGE_METADATA, topic, payload, device_id)]
    value = None if checked is None else encode_device_metadata(
        metadata_record(device_id, checked.tags, "mqtt", received_at_ms))
    out = [Outgoing(METADATA, device_id.encode(), value, "metadata")]
    if checked is not None and checked.refused:
        refused = checked.refused
        summary = Rejected(refused[0].reason, (
            f"{len(refused)} of {len(refused) + len(checked.tags)} tags refused (each listed "
            f"with its reason); the other tags were stored. First: {refused[0].detail}"))
        out.append(
            dead_letter_outgoing(summary, STAGE_METADATA, topic, payload, device_id, refused))
    return out


def dead_letter_outgoing(
    rej: Rejected, stage: str, topic: str, payload: bytes, device_id: str | None,
    rejected_metrics: Sequence[RejectedMetric] = (),
) -> Outgoing:
    """The one dead letter of an MQTT message (counted by plumbing.dead_letters): the message
    whole, or the metrics or tags of it listed in `rejected_metrics`."""
    record = dead_letter(
        rej.reason, rej.detail, stage, payload, "json",
        device_id=device_id, source_topic=printable_topic(topic),
        rejected_metrics=rejected_metrics)
    dlq_topic, key, value = encode_dead_letter(record)
    return Outgoing(dlq_topic, key, value, "dead_letter")


def printable_topic(topic: str) -> str:
    """The topic as valid Unicode: bytes that were not UTF-8 shown as `\\x..` escapes."""
    return topic.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def encode_device_metadata(record: dict[str, Any]) -> bytes:
    return default_codec().encode("DeviceMetadata", record)


_random = random.Random()  # seeded from os.urandom
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_trace_id() -> str:
    """A random uuid4 as 32 hex digits, without uuid.uuid4's system call and UUID object
    (~3 µs a message); a trace id needs to be unique, not unguessable."""
    return "%032x" % (_random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)


def headers(trace_id: str, ingest_time_ms: int) -> Headers:
    """The contract's headers: one trace id per MQTT message, and its receive time."""
    return [
        (HEADER_TRACE_ID, trace_id.encode()),
        (HEADER_INGEST_TIME, str(ingest_time_ms).encode()),
    ]
