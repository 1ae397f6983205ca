"""Avro binary primitives for the hand-written readers and writers of the hot paths.

fastavro's per-call setup (schema checks, union branch choice by trying each branch) costs
more than the bytes of a reading; ingest/raw_avro.py and processors/hand_avro.py write and
read the few records of the hot path by hand with these, and fall back to `schemas.codec`
whenever a record or a schema is not the layout they were written for.
"""

from __future__ import annotations

import struct
from typing import Any

from schemas.codec import MAGIC, AvroCodec, CodecError

#: The RawReading layout the hand-written writer (ingest) and reader (processors) implement:
#: (name, type) without docs and defaults, as `layout_of` gives it.
RAW_READING_LAYOUT: list[tuple[str, Any]] = [
    ("device_id", "string"),
    ("ts", ["null", "long", "string"]),
    ("received_at_ms", "long"),
    ("seq", ["null", "long", "string"]),
    ("metrics", {"type": "array", "items": {"type": "record", "name": "RawMetric", "fields": [
        ("name", "string"),
        ("value", ["null", "double", "long", "boolean", "string"]),
        ("unit", ["null", "string"]),
    ]}}),
]

_ONE_BYTE = [bytes((z,)) for z in range(128)]
DOUBLE = struct.Struct("<d")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class AvroBinaryError(ValueError):
    """The bytes are not what the hand-written reader expects (the codec then decides)."""


def long_bytes(n: int) -> bytes:
    """Zig-zag varint of an int64."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _ONE_BYTE[z]
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def string_bytes(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    return (_ONE_BYTE[n << 1] if n < 64 else long_bytes(n)) + data


def is_int64(n: Any) -> bool:
    """An int (not a bool) that Avro's long can carry."""
    return type(n) is int and _INT64_MIN <= n <= _INT64_MAX


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """(the zig-zag varint at `pos`, the position after it)."""
    b = data[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    z = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 63:
            raise AvroBinaryError("a varint longer than 10 bytes")
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        shift += 7
    return (z >> 1) ^ -(z & 1), pos


def read_string(data: bytes, pos: int) -> tuple[str, int]:
    """(the UTF-8 string at `pos`, strictly decoded, the position after it)."""
    n, pos = read_long(data, pos)
    end = pos + n
    if n < 0 or end > len(data):
        raise AvroBinaryError("a string length outside the record")
    return data[pos:end].decode(), end


def layout_of(raw: dict[str, Any]) -> list[tuple[str, Any]]:
    """A record schema's fields as (name, type), docs and defaults left out: what a
    hand-written reader or writer compares with the layout it implements."""

    def strip(t: Any) -> Any:
        if isinstance(t, dict) and t.get("type") == "record":
            return {"type": "record", "name": t["name"],
                    "fields": [(f["name"], strip(f["type"])) for f in t["fields"]]}
        if isinstance(t, dict) and t.get("type") in ("array", "map"):
            key = "items" if t["type"] == "array" else "values"
            return {"type": t["type"], key: strip(t[key])}
        return t

    return [(f["name"], strip(f["type"])) for f in raw["fields"]]


def layout_header(codec: AvroCodec, name: str, layout: list[tuple[str, Any]]) -> bytes | None:
    """The single-object header (magic + fingerprint) of the codec's newest `name` when its
    layout is `layout`, else None: a hand-written reader or writer is used only then."""
    try:
        schema = codec.schema(name)
    except CodecError:
        return None
    return MAGIC + schema.fingerprint if layout_of(schema.raw) == layout else None
