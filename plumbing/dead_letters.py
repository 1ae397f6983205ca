"""Builds dead-letter records: every reject gets a reason, a place and its original bytes."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

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
#: Each rejected metric's own detail is cut shorter: a reading may list many of them.
MAX_METRIC_DETAIL_CHARS = 500
#: The listed metrics are cut past this many bytes of UTF-8 (names, reasons and details
#: together), so original + detail + list stay under one Kafka record (1 MB) whatever the
#: script; the detail says how many were left out.
MAX_REJECTED_METRICS_BYTES = 256 * 1024
#: What Avro adds to each listed metric (three length prefixes and slack).
_LISTED_OVERHEAD_BYTES = 8


class RejectedMetric(NamedTuple):
    """One metric (or tag) of a reading refused alone, listed in its reading's dead letter."""

    metric: str
    reason: Reason
    detail: str


def dead_letter(
    reason: Reason,
    detail: str,
    stage: str,
    original: bytes,
    original_format: str,
    device_id: str | None = None,
    metric: str | None = None,
    source_topic: str | None = None,
    rejected_metrics: Sequence[RejectedMetric] = (),
    trace_id: str | None = None,
    counted: Iterable[tuple[str, Reason]] | None = None,
) -> dict[str, Any]:
    """The dead-letter record (schema DeadLetter v2), sized to fit a Kafka record.

    Counts the rejects it stands for: `counted` (stage, reason) pairs when given (a letter
    for everything several stages refused in one reading), else once for `reason` when
    nothing is listed in `rejected_metrics`, else once per listed metric under that metric's
    own reason (the rejects are the metrics).
    """
    if counted is None:
        if rejected_metrics:
            counted = ((stage, rejected.reason) for rejected in rejected_metrics)
        else:
            counted = ((stage, reason),)
    for (by_stage, by_reason), n in Tally(counted).items():
        REJECTED.labels(stage=by_stage, reason=by_reason.value).inc(n)
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + " [...]"
    detail = unicode_text(detail)
    listed, left_out = _listed(rejected_metrics)
    if left_out:
        detail += f" ({left_out} more rejected metrics not listed)"
    if len(original) > MAX_ORIGINAL_BYTES:
        detail += f" (original cut to {MAX_ORIGINAL_BYTES} of {len(original)} bytes)"
        original = original[:MAX_ORIGINAL_BYTES]
    return {
        "reason": reason.value,
        "detail": detail,
        "stage": stage,
        "device_id": None if device_id is None else unicode_text(device_id),
        "metric": None if metric is None else unicode_text(metric),
        "source_topic": source_topic,
        "original": original,
        "original_format": original_format,
        "rejected_at_ms": int(time.time() * 1000),
        "rejected_metrics": listed,
        "trace_id": trace_id,
    }


def _listed(rejected_metrics: Sequence[RejectedMetric]) -> tuple[list[dict[str, str]], int]:
    """The rejected metrics as records, cut to the size budget; and how many were left out."""
    listed: list[dict[str, str]] = []
    used = 0
    for i, r in enumerate(rejected_metrics):
        detail = r.detail
        if len(detail) > MAX_METRIC_DETAIL_CHARS:
            detail = detail[:MAX_METRIC_DETAIL_CHARS] + " [...]"
        used += (len(r.metric.encode("utf-8", "replace")) + len(detail.encode("utf-8", "replace"))
                 + len(r.reason.value) + _LISTED_OVERHEAD_BYTES)
        if used > MAX_REJECTED_METRICS_BYTES:
            return listed, len(rejected_metrics) - i
        listed.append({"metric": unicode_text(r.metric), "reason": r.reason.value,
                       "detail": unicode_text(detail)})
    return listed, 0


def unicode_text(text: str) -> str:
    """`text` as Avro can write it: a lone UTF-16 surrogate (a tag key sent as `"\\ud800"`,
    which is refused for it and then listed by name) shown as its `\\udXXX` escape."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def encode_dead_letter(record: dict[str, Any]) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) ready for a Kafka producer; key is the device_id when known."""
    key = record["device_id"].encode() if record.get("device_id") else None
    return DLQ, key, default_codec().encode("DeadLetter", record)
