"""Builds dead-letter records: every reject gets a reason, a place and its original bytes."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter

from plumbing.reasons import Reason
from plumbing.topics import DLQ
from schemas.codec import default_codec

REJECTED = Counter(
    "telemetry_rejected_total",
    "Rejected messages, readings or metrics, by pipeline stage and reason.",
    ["stage", "reason"],
)

#: A dead letter must fit in one Kafka record (1 MB by default) whatever it carries: past
#: these sizes the original and the detail are cut, and the detail says so.
MAX_ORIGINAL_BYTES = 512 * 1024
MAX_DETAIL_CHARS = 8_000


def dead_letter(
    reason: Reason,
    detail: str,
    stage: str,
    original: bytes,
    original_format: str,
    device_id: str | None = None,
    metric: str | None = None,
    source_topic: str | None = None,
) -> dict[str, Any]:
    """The dead-letter record, sized to fit a Kafka record; also counts the reject."""
    REJECTED.labels(stage=stage, reason=reason.value).inc()
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + " [...]"
    if len(original) > MAX_ORIGINAL_BYTES:
        detail += f" (original cut to {MAX_ORIGINAL_BYTES} of {len(original)} bytes)"
        original = original[:MAX_ORIGINAL_BYTES]
    return {
        "reason": reason.value,
        "detail": detail,
        "stage": stage,
        "device_id": device_id,
        "metric": metric,
        "source_topic": source_topic,
        "original": original,
        "original_format": original_format,
        "rejected_at_ms": int(time.time() * 1000),
    }


def encode_dead_letter(record: dict[str, Any]) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) ready for a Kafka producer; key is the device_id when known."""
    key = record["device_id"].encode() if record.get("device_id") else None
    return DLQ, key, default_codec().encode("DeadLetter", record)
