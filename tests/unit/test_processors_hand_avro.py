"""The processors' hand-written RawReading reader and EnrichedReading writer give exactly
the codec's dicts and bytes, for ordinary, hostile, random and corrupt records."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest

from ingest.payload import decode_telemetry
from ingest.raw_avro import encode_raw_reading
from processors import hand_avro
from processors.hand_avro import EnrichedReadingWriter, RawReadingReader
from schemas.codec import HEADER_LEN, CodecError, default_codec

CODEC = default_codec()
READER = RawReadingReader(CODEC)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def test_both_are_in_use_for_the_shipped_schemas() -> None:
    """If this fails, a schema changed: update hand_avro's layouts and code."""
    assert READER.header == b"\xc3\x01" + CODEC.schema("RawReading").fingerprint
    assert EnrichedReadingWriter(CODEC).header == (
        b"\xc3\x01" + CODEC.schema("EnrichedReading").fingerprint)


def decoded_both_ways(data: bytes) -> Any:
    """The codec's result (or its error's type) and the hand-written reader's, compared."""
    try:
        expected: Any = CODEC.decode(data, reader="RawReading")
    except CodecError:
        with pytest.raises(CodecError):
            READER.decode(data)
        return CodecError
    got = READER.decode(data)
    assert repr(got) == repr(expected)  # types, -0.0 and NaN included
    return got


@pytest.mark.parametrize("payload", [
    '{"ts": 1763701200123, "seq": 42, "metrics": {"temperature": {"value": 70.7, '
    '"unit": "degF"}, "humidity": 41.5, "pressure": 101.2, "voltage": 3.3}}',
    '{"metrics": {}}',
    '{"ts": "2025-11-21T05:00:00Z", "seq": "x", "metrics": {"on": true, "off": false, '
    '"s": "text", "n": null, "obj": {"a": [1, 2]}, "big": 123456789012345678901}}',
    f'{{"ts": {INT64_MIN}, "seq": {INT64_MAX}, "metrics": {{"min": {INT64_MIN}, '
    f'"max": {INT64_MAX}, "neg": -1, "zero": 0, "m63": -64, "p64": 64, "negz": -0.0}}}}',
    '{"metrics": {"nan": NaN, "inf": Infinity, "ninf": -Infinity}}',
    '{"metrics": {"' + "n" * 200 + '": "' + "v" * 70_000 + '", "emoji-🙂": "Zürich 🙂"}}',
    '{"metrics": {' + ", ".join(f'"m{i}": {i * 1.5}' for i in range(300)) + "}}",
])
def test_raw_readings_read_like_the_codec(payload: str) -> None:
    for reading in decode_telemetry(payload.encode(), "dev-ü-1", 1_763_701_200_999, 256 * 1024):
        data = encode_raw_reading(reading)
        assert decoded_both_ways(data) is not CodecError
        assert repr(READER._read(data)) == repr(CODEC.decode(data))  # not the fallback


def test_corrupt_and_truncated_records_fail_or_read_as_the_codec_says() -> None:
    reading = decode_telemetry(
        b'{"ts": "2025-11-21T05:00:00Z", "seq": 7, "metrics": {"a": 1.5, "b": "x", "c": true,'
        b' "d": 3, "e": null}}', "dev-1", 1_763_701_200_999, 1024)[0]
    good = encode_raw_reading(reading)
    rng = random.Random(11)
    outcomes = {"read": 0, "refused": 0}
    for cut in range(HEADER_LEN, len(good)):  # every truncation
        outcomes["refused" if decoded_both_ways(good[:cut]) is CodecError else "read"] += 1
    for _ in range(3000):  # random byte flips past the header
        data = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(HEADER_LEN, len(data))] = rng.randrange(256)
        outcomes["refused" if decoded_both_ways(bytes(data)) is CodecError else "read"] += 1
    assert outcomes["refused"] and outcomes["read"]  # both kinds were exercised


def test_a_block_with_its_size_and_an_unknown_writer_read_like_the_codec() -> None:
    # A negative block count, then the block's size in bytes, is valid Avro for arrays.
    item = b"\x02a" + b"\x02" + struct.pack("<d", 0.5) + b"\x00"
    body = (b"\x0adev-1" + b"\x00" + b"\x02" + b"\x00"
            + b"\x01" + bytes([len(item) << 1]) + item + b"\x00")
    assert READER.header is not None
    assert decoded_both_ways(READER.header + body)["metrics"] == [
        {"name": "a", "value": 0.5, "unit": None}]
    with pytest.raises(CodecError):
        READER.decode(b"\xc3\x01" + b"\x00" * 8 + body)  # unknown fingerprint: the codec's error


def enriched(**changes: Any) -> dict[str, Any]:
    record = {"device_id": "dev-ü-1", "ts_us": 1_763_701_200_123_456,
              "received_at_ms": 1_763_701_200_999, "seq": 42,
              "fields": {"temperature": 21.5, "humidity": 41.5, "dew_point": 7.9},
              "units": {"temperature": "degC", "humidity": "percent", "dew_point": "degC"},
              "tags": {"site": "berlin", "room": 'lab 1,="x"'}}
    record.update(changes)
    return record


@pytest.mark.parametrize("record", [
    enriched(),
    enriched(seq=None, fields={}, units={}, tags={}),
    enriched(ts_us=INT64_MIN, received_at_ms=INT64_MAX, seq=INT64_MIN),
    enriched(fields={"nan": math.nan, "inf": math.inf, "negz": -0.0, "tiny": 5e-324}),
    enriched(fields={f"m{i}🙂": i * 1.5 for i in range(300)},
             tags={"t" * 200: "v" * 70_000, "emoji": "Zürich 🙂"}),
])
def test_enriched_readings_write_the_codecs_bytes(record: dict[str, Any]) -> None:
    writer = EnrichedReadingWriter(CODEC)
    for _ in range(2):  # the second time from the writer's caches
        assert writer._write(record) == CODEC.encode("EnrichedReading", record)  # no fallback
        assert writer.encode(record) == CODEC.encode("EnrichedReading", record)


@pytest.mark.parametrize("record", [
    enriched(fields={"an_int": 3}),  # the codec writes an int as a double
    enriched(fields={"a_bool": True}),
    enriched(seq=True),
    enriched(ts_us=2**70),
    enriched(tags={"site": 5}),
    enriched(tags={"site": ["a", "list"]}),
    enriched(units={"temperature": None}),
    enriched(device_id="lone \ud800 surrogate"),
    enriched(fields={"lone \udfff": 1.0}),
    {k: v for k, v in enriched().items() if k != "tags"},  # the schema's default
    {k: v for k, v in enriched().items() if k != "ts_us"},
    enriched(extra="ignored"),
])
def test_any_other_record_is_the_codecs_to_write_or_refuse(record: dict[str, Any]) -> None:
    writer = EnrichedReadingWriter(CODEC)
    try:
        expected: Any = CODEC.encode("EnrichedReading", record)
    except Exception as exc:  # whatever fastavro raises, ours raises too
        with pytest.raises(type(exc)):
            writer.encode(record)
        return
    assert writer.encode(record) == expected


def test_random_enriched_readings_write_the_codecs_bytes() -> None:
    rng = random.Random(5)
    writer = EnrichedReadingWriter(CODEC)
    text = "aZ9 ü€🙂\"\\\n,="
    for _ in range(2000):
        def word() -> str:
            return "".join(rng.choice(text) for _ in range(rng.randrange(0, 12)))
        record = enriched(
            device_id=word(), ts_us=rng.randint(INT64_MIN, INT64_MAX),
            seq=rng.choice([None, 0, -1, 64, INT64_MAX]),
            fields={word(): rng.choice([0.0, -1.5, 1e308, rng.uniform(-1e6, 1e6)])
                    for _ in range(rng.randrange(5))},
            units={word(): word() for _ in range(rng.randrange(4))},
            tags={rng.choice(["site", "room", word()]): rng.choice(["a", "b", word()])
                  for _ in range(rng.randrange(4))})
        assert writer.encode(record) == CODEC.encode("EnrichedReading", record)


def test_the_writers_caches_stay_bounded() -> None:
    writer = EnrichedReadingWriter(CODEC)
    for i in range(3 * hand_avro._CACHE_ENTRIES):
        writer.encode(enriched(fields={f"name-{i}": 1.0}, tags={"site": f"s{i}"},
                               units={"x" * 2000: "y"}))
    assert len(writer._names) <= hand_avro._CACHE_ENTRIES
    assert len(writer._string_maps) <= hand_avro._CACHE_ENTRIES
    assert all(len(v) <= hand_avro._CACHED_BYTES for v in writer._string_maps.values())
