"""One dead letter as a JSON object with its original decoded: what `telemetry dlq show`
prints, one a line."""

from __future__ import annotations

import base64
import json
from typing import Any

from dlq.letters import StoredLetter
from dlq.moments import iso_ms
from schemas.codec import CodecError, default_codec


def _json_safe(value: Any) -> Any:
    """Avro bytes fields as base64; everything else is already JSON."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def decoded_original(original: bytes, original_format: str) -> dict[str, Any]:
    """`{"original": ...}` as the stage received it: JSON and line protocol as text, our Avro
    as the decoded record; `original_base64` (and why) when it cannot be shown so."""
    if original_format == "avro":
        try:
            return {"original": _json_safe(default_codec().decode(original))}
        except CodecError as exc:
            return {"original_base64": base64.b64encode(original).decode(),
                    "original_error": str(exc)}
    try:
        return {"original": original.decode("utf-8")}
    except UnicodeDecodeError as exc:
        return {"original_base64": base64.b64encode(original).decode(),
                "original_error": f"not UTF-8: {exc}"}


def letter_json(letter: StoredLetter) -> dict[str, Any]:
    """The dead letter, where it sits, and its decoded original."""
    out: dict[str, Any] = {"dlq": letter.id, "kafka_time": iso_ms(letter.timestamp_ms)}
    record = letter.record
    if record is None:
        out["error"] = f"unreadable dead letter: {letter.error}"
        if letter.key is not None:
            out["key"] = letter.key.decode("utf-8", "backslashreplace")
        return out
    out.update({
        "reason": record["reason"],
        "stage": record["stage"],
        "device_id": record.get("device_id"),
        "metric": record.get("metric"),
        "source_topic": record.get("source_topic"),
        "rejected_at": iso_ms(record["rejected_at_ms"]),
        "detail": record["detail"],
        "rejected_metrics": record.get("rejected_metrics") or [],
        "trace_id": record.get("trace_id"),
        "original_format": record["original_format"],
    })
    out.update(decoded_original(record["original"], record["original_format"]))
    return out


def letter_line(letter: StoredLetter) -> str:
    return json.dumps(letter_json(letter), ensure_ascii=False)
