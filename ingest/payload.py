"""Telemetry payloads (UTF-8 JSON) to RawReading records, or a reject reason.

Pure: no I/O, no clock. Only what makes the whole MQTT message unusable is rejected here;
a bad timestamp, seq or metric value travels on as its JSON text so the validate stage can
reject exactly that, with the rest of the reading intact.
"""

from __future__ import annotations

from typing import Any

from ingest.device_ids import shown
from ingest.rejected import Rejected
from ingest.strict_json import (
    INT64_MAX,
    INT64_MIN,
    BigInt,
    JsonProblem,
    NestedTooDeep,
    is_valid_unicode,
    json_text,
    loads_utf8,
    type_name,
)
from plumbing.reasons import Reason

_VALUE_OBJECT_KEYS = frozenset(("value", "unit"))
_FIX_SHAPE = 'send {"metrics": {"<name>": <number>}} or an array of such objects'


#: Defaults of IngestSettings.ingest_max_readings_per_message and _metrics_per_reading.
MAX_READINGS_PER_MESSAGE = 10_000
MAX_METRICS_PER_READING = 1_000


def decode_telemetry(
    payload: bytes,
    device_id: str,
    received_at_ms: int,
    max_bytes: int,
    max_readings: int = MAX_READINGS_PER_MESSAGE,
    max_metrics: int = MAX_METRICS_PER_READING,
) -> list[dict[str, Any]]:
    """The RawReading records of one MQTT message; raises Rejected for the whole message.

    The caps bound what one message can become downstream (records, dead letters): over
    them the message is one dead letter, whatever it holds.
    """
    if len(payload) > max_bytes:
        raise Rejected(
            Reason.PAYLOAD_TOO_LARGE,
            f"payload is {len(payload)} bytes; at most {max_bytes} are accepted: "
            "split the batch into smaller messages",
        )
    try:
        document = loads_utf8(payload)
    except NestedTooDeep as exc:
        raise Rejected(Reason.INVALID_SHAPE, str(exc)) from None
    except JsonProblem as exc:
        raise Rejected(Reason.INVALID_JSON, str(exc)) from None
    if isinstance(document, dict):
        objects = [document]
    elif isinstance(document, list):
        if not document:
            raise Rejected(Reason.INVALID_SHAPE, f"the batch array is empty; {_FIX_SHAPE}")
        if len(document) > max_readings:
            raise Rejected(Reason.TOO_MANY_READINGS, (
                f"the batch holds {len(document)} readings; at most {max_readings} are "
                "accepted in one message: send smaller batches"))
        for i, item in enumerate(document):
            if not isinstance(item, dict):
                raise Rejected(
                    Reason.INVALID_SHAPE,
                    f"batch item {i} is {type_name(item)}, not an object; {_FIX_SHAPE}",
                )
        objects = document
    else:
        raise Rejected(
            Reason.INVALID_SHAPE, f"the payload is {type_name(document)}; {_FIX_SHAPE}"
        )
    batch = len(objects) > 1 or isinstance(document, list)
    return [
        _reading(obj, f"batch item {i}: " if batch else "", device_id, received_at_ms,
                 max_metrics)
        for i, obj in enumerate(objects)
    ]


def _reading(
    obj: dict[str, Any], where: str, device_id: str, received_at_ms: int, max_metrics: int
) -> dict[str, Any]:
    metrics = obj.get("metrics")
    if metrics is None and "metrics" not in obj:
        metrics = {}  # no metrics at all: ingest/records.py refuses it as no_metrics
    if not isinstance(metrics, dict):
        raise Rejected(
            Reason.INVALID_SHAPE,
            f'{where}"metrics" is {type_name(metrics)}; it must be an object of metric name '
            "to number or {\"value\": <number>, \"unit\": \"<unit>\"}",
        )
    if len(metrics) > max_metrics:
        raise Rejected(Reason.TOO_MANY_METRICS, (
            f"{where}the reading holds {len(metrics)} metrics; at most {max_metrics} are "
            "accepted in one reading: split it"))
    try:
        return {
            "device_id": device_id,
            "ts": _ts(obj.get("ts")),
            "received_at_ms": received_at_ms,
            "seq": _seq(obj.get("seq")),
            "metrics": [_metric(name, value) for name, value in metrics.items()],
        }
    except NestedTooDeep as exc:
        raise Rejected(Reason.INVALID_SHAPE, f"{where}{exc}") from None
    except _NotUnicode as exc:
        raise Rejected(Reason.INVALID_JSON, f"{where}{exc}") from None


class _NotUnicode(ValueError):
    pass


def _text(value: str, what: str) -> str:
    if not is_valid_unicode(value):
        raise _NotUnicode(
            f"{what} {shown(value)} holds an unpaired UTF-16 surrogate escape, which is not "
            "Unicode text; escape characters outside the BMP as a surrogate pair"
        )
    return value


def _int64(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def _ts(value: Any) -> int | str | None:
    """Epoch ms as a long, an RFC 3339 string as is, anything else as its JSON text."""
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:  # the usual case, first
        return value
    if value is None:
        return None
    as_int = _int64(value)
    if as_int is not None:
        return as_int
    if isinstance(value, str):
        return _text(value, '"ts"')
    return json_text(value)


def _seq(value: Any) -> int | str | None:
    """An integer as a long; anything else as its JSON text, for an invalid_seq reject."""
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:  # the usual case, first
        return value
    if value is None:
        return None
    as_int = _int64(value)
    return as_int if as_int is not None else json_text(value)


def _metric(name: str, value: Any) -> dict[str, Any]:
    if name.isascii() and (type(value) is float or (
            type(value) is int and INT64_MIN <= value <= INT64_MAX)):
        return {"name": name, "value": value, "unit": None}  # the usual case, first
    _text(name, "metric name")
    try:
        return _metric_of(name, value)
    except NestedTooDeep as exc:
        raise NestedTooDeep(f"metric {shown(name)}: {exc}") from None


def _metric_of(name: str, value: Any) -> dict[str, Any]:
    unit: str | None = None
    if isinstance(value, dict) and "value" in value and value.keys() <= _VALUE_OBJECT_KEYS:
        raw_unit = value.get("unit")
        if isinstance(raw_unit, str):
            unit = _text(raw_unit, f"unit of metric {shown(name)}")
        elif raw_unit is not None:
            unit = json_text(raw_unit, 1)
        value = value["value"]
    return {"name": name, "value": _scalar(value, name), "unit": unit}


def _scalar(value: Any, name: str) -> float | int | bool | str | None:
    """A number as double or long, a boolean or string as is, the rest as JSON text."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, BigInt):
        return value.text
    if isinstance(value, str):
        return _text(value, f"value of metric {shown(name)}")
    return json_text(value, 1)
