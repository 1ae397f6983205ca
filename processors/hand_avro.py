"""The processors' two Avro conversions of every reading, written by hand: RawReading in,
EnrichedReading out.

fastavro spends about as much on one small reading's setup (schema checks, union branches)
as the whole step chain does on it. These know the two layouts: the same dicts and the same
bytes as `schemas.codec` (the unit tests compare them over ordinary, hostile and random
records), and anything they were not written for goes to the codec, which then decides
exactly as before: a schema whose layout changed (a new version in `schemas/`), another
writer version, a record a user's step made with other types, bytes they cannot read.
"""

from __future__ import annotations

from typing import Any

from schemas.avro_binary import (
    DOUBLE,
    RAW_READING_LAYOUT,
    AvroBinaryError,
    is_int64,
    layout_header,
    long_bytes,
    read_long,
    read_string,
    string_bytes,
)
from schemas.codec import HEADER_LEN, AvroCodec

#: The EnrichedReading layout `EnrichedReadingWriter` writes.
ENRICHED_LAYOUT: list[tuple[str, Any]] = [
    ("device_id", "string"),
    ("ts_us", "long"),
    ("received_at_ms", "long"),
    ("seq", ["null", "long"]),
    ("fields", {"type": "map", "values": "double"}),
    ("units", {"type": "map", "values": "string"}),
    ("tags", {"type": "map", "values": "string"}),
]

_unpack_double = DOUBLE.unpack_from
#: Entries in each of the writer's caches before it starts over, and the longest Avro
#: kept in them: a few MB at most.
_CACHE_ENTRIES = 4096
_CACHED_BYTES = 1024
_pack_double = DOUBLE.pack


class RawReadingReader:
    """`decode(data)` is `codec.decode(data, reader="RawReading")`, faster."""

    def __init__(self, codec: AvroCodec) -> None:
        self.codec = codec
        self.header = layout_header(codec, "RawReading", RAW_READING_LAYOUT)

    def decode(self, data: bytes) -> dict[str, Any]:
        if self.header is not None and data[:HEADER_LEN] == self.header:
            try:
                return self._read(data)
            except (AvroBinaryError, IndexError, UnicodeDecodeError, ValueError):
                pass  # the codec reads it, or says why not
        return self.codec.decode(data, reader="RawReading")

    @staticmethod
    def _read(data: bytes) -> dict[str, Any]:
        device_id, pos = read_string(data, HEADER_LEN)
        ts, pos = _null_long_string(data, pos)
        received_at_ms, pos = read_long(data, pos)
        seq, pos = _null_long_string(data, pos)
        metrics: list[dict[str, Any]] = []
        count, pos = read_long(data, pos)
        while count:
            if count < 0:  # a block with its size in bytes first
                count = -count
                _, pos = read_long(data, pos)
            for _ in range(count):
                name, pos = read_string(data, pos)
                branch = data[pos]
                pos += 1
                value: Any
                if branch == 2:  # double (the usual one)
                    if pos + 8 > len(data):
                        raise AvroBinaryError("a double past the record's end")
                    value = _unpack_double(data, pos)[0]
                    pos += 8
                elif branch == 0:
                    value = None
                elif branch == 4:
                    value, pos = read_long(data, pos)
                elif branch == 6:
                    flag = data[pos]
                    pos += 1
                    if flag > 1:
                        raise AvroBinaryError("a boolean that is neither 0 nor 1")
                    value = flag == 1
                elif branch == 8:
                    value, pos = read_string(data, pos)
                else:
                    raise AvroBinaryError("a RawMetric.value branch out of range")
                branch = data[pos]
                pos += 1
                if branch == 0:
                    unit = None
                elif branch == 2:
                    unit, pos = read_string(data, pos)
                else:
                    raise AvroBinaryError("a RawMetric.unit branch out of range")
                metrics.append({"name": name, "value": value, "unit": unit})
            count, pos = read_long(data, pos)
        return {"device_id": device_id, "ts": ts, "received_at_ms": received_at_ms,
                "seq": seq, "metrics": metrics}


def _null_long_string(data: bytes, pos: int) -> tuple[int | str | None, int]:
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch == 2:
        return read_long(data, pos + 1)
    if branch == 4:
        return read_string(data, pos + 1)
    raise AvroBinaryError("a [null, long, string] branch out of range")


class EnrichedReadingWriter:
    """`encode(record)` is `codec.encode("EnrichedReading", record)`, faster, for records
    of exactly the types the steps make; any other record goes to the codec."""

    def __init__(self, codec: AvroCodec) -> None:
        self.codec = codec
        self.header = layout_header(codec, "EnrichedReading", ENRICHED_LAYOUT)
        #: Metric names, and whole unit and tag maps, as Avro: the same few over and over
        self._names: dict[str, bytes] = {}
        self._string_maps: dict[tuple[Any, ...], bytes] = {}

    def encode(self, record: dict[str, Any]) -> bytes:
        if self.header is not None:
            try:
                written = self._write(record)
            except UnicodeEncodeError:  # a lone surrogate: the codec says so its own way
                written = None
            if written is not None:
                return written
        return self.codec.encode("EnrichedReading", record)

    def _write(self, record: dict[str, Any]) -> bytes | None:
        device_id = record.get("device_id")
        ts_us = record.get("ts_us")
        received_at_ms = record.get("received_at_ms")
        seq = record.get("seq")
        fields = record.get("fields")
        units = record.get("units")
        tags = record.get("tags")
        if not (type(device_id) is str and is_int64(ts_us) and is_int64(received_at_ms)
                and (seq is None or is_int64(seq)) and type(fields) is dict
                and type(units) is dict and type(tags) is dict):
            return None
        names = self._names
        parts = [self.header, string_bytes(device_id), long_bytes(ts_us),  # type: ignore[arg-type]
                 long_bytes(received_at_ms),  # type: ignore[arg-type]
                 b"\x00" if seq is None else b"\x02" + long_bytes(seq)]
        if fields:
            parts.append(long_bytes(len(fields)))
            for name, value in fields.items():
                if type(value) is not float:
                    return None
                written = names.get(name)
                if written is None:
                    if type(name) is not str:
                        return None
                    written = string_bytes(name)
                    self._remember(names, name, written)
                parts.append(written)
                parts.append(_pack_double(value))
        parts.append(b"\x00")
        maps = self._string_maps
        for strings in (units, tags):
            key = tuple(strings.items())
            try:
                written = maps.get(key)
            except TypeError:  # an unhashable value: not a map<string> anyway
                return None
            if written is None:
                written = _string_map(strings)
                if written is None:
                    return None
                self._remember(maps, key, written)
            parts.append(written)
        return b"".join(parts)  # type: ignore[arg-type]

    @staticmethod
    def _remember(cache: dict[Any, bytes], key: Any, written: bytes) -> None:
        """Bounded in entries and in size: a fleet has a few hundred metric names and unit
        and tag sets; hostile ones only make the cache start over."""
        if len(written) > _CACHED_BYTES:
            return
        if len(cache) >= _CACHE_ENTRIES:
            cache.clear()
        cache[key] = written


def _string_map(strings: dict[Any, Any]) -> bytes | None:
    """A map<string> as Avro (one block, then the end), or None for other types."""
    if not strings:
        return b"\x00"
    parts = [long_bytes(len(strings))]
    for name, value in strings.items():
        if type(name) is not str or type(value) is not str:
            return None
        parts.append(string_bytes(name))
        parts.append(string_bytes(value))
    parts.append(b"\x00")
    return b"".join(parts)
