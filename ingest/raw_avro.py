"""Single-object Avro of a RawReading, written by hand because it is ingest's hot path.

fastavro spends ~25 µs on one reading of 4 metrics, most of it choosing union branches; this
writer knows the schema and takes ~6 µs. Its bytes are exactly the codec's (the unit tests
compare them over ordinary, hostile and random readings). It is used only while the newest
`RawReading` in `schemas/` has the layout it was written for
(`schemas.avro_binary.RAW_READING_LAYOUT`); any other layout (a v2 added to the schemas)
falls back to the codec until this writer is updated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.avro_binary import (
    DOUBLE,
    RAW_READING_LAYOUT,
    layout_header,
    long_bytes,
    string_bytes,
)
from schemas.codec import default_codec

_DOUBLE = DOUBLE.pack


def _null_long_string(value: int | str | None) -> bytes:
    if value is None:
        return b"\x00"
    if type(value) is int:
        return b"\x02" + long_bytes(value)
    return b"\x04" + string_bytes(value)  # type: ignore[arg-type]


def _double(v: float) -> bytes:
    return b"\x02" + _DOUBLE(v)


def _int(v: int) -> bytes:
    return b"\x04" + long_bytes(v)


def _bool(v: bool) -> bytes:
    return b"\x06\x01" if v else b"\x06\x00"


def _str(v: str) -> bytes:
    return b"\x08" + string_bytes(v)


def _null(_v: None) -> bytes:
    return b"\x00"


#: Python type of a metric value (as ingest.payload makes them) -> its union branch.
_VALUE: dict[type, Callable[[Any], bytes]] = {
    float: _double, int: _int, bool: _bool, str: _str, type(None): _null}


#: MAGIC + fingerprint of the newest RawReading, or None when its layout is another.
HEADER = layout_header(default_codec(), "RawReading", RAW_READING_LAYOUT)


def encode_raw_reading(reading: dict[str, Any]) -> bytes:
    """Single-object Avro of a RawReading (a dict from `ingest.payload`)."""
    if HEADER is None:
        return encode_with_codec(reading)
    parts = [HEADER, string_bytes(reading["device_id"]), _null_long_string(reading["ts"]),
             long_bytes(reading["received_at_ms"]), _null_long_string(reading["seq"])]
    metrics = reading["metrics"]
    if metrics:
        parts.append(long_bytes(len(metrics)))
        for m in metrics:
            value = m["value"]
            unit = m["unit"]
            parts.append(string_bytes(m["name"]))
            parts.append(_VALUE[type(value)](value))
            parts.append(b"\x00" if unit is None else b"\x02" + string_bytes(unit))
    parts.append(b"\x00")
    return b"".join(parts)


#: Python type -> the RawMetric.value union branch. fastavro would otherwise write an int
#: into the first numeric branch that accepts it (double), losing the long.
_BRANCH = {bool: "boolean", int: "long", float: "double", str: "string"}


def encode_with_codec(reading: dict[str, Any]) -> bytes:
    """The same through `schemas.codec` (fastavro): the reference, and the fallback."""
    metrics = [
        {
            "name": m["name"],
            "value": None if m["value"] is None else (_BRANCH[type(m["value"])], m["value"]),
            "unit": m["unit"],
        }
        for m in reading["metrics"]
    ]
    return default_codec().encode("RawReading", {**reading, "metrics": metrics})
