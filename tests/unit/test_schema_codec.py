"""Avro single-object encoding, writer lookup by fingerprint, and schema evolution both ways."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import MAGIC, SCHEMA_DIR, AvroCodec, CodecError, default_codec

READING: dict[str, Any] = {
    "device_id": 'dev 1,="é"',
    "ts": 1_763_701_200_123,
    "received_at_ms": 1_763_701_200_456,
    "seq": 42,
    "metrics": [
        {"name": "temperature", "value": 70.7, "unit": "degF"},
        {"name": "humidity", "value": 41, "unit": None},
    ],
}


def _crc64_avro(data: bytes) -> int:
    """The Avro spec's reference CRC-64-AVRO, written out independently of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty if fp & 1 else 0)
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_fingerprints_are_the_spec_crc64_little_endian() -> None:
    # The spec's own vector: the schema "null" has fingerprint 0x63dd24e7cc258f8a.
    assert _crc64_avro(b'"null"') == 0x63DD24E7CC258F8A
    for versions in default_codec().by_name.values():
        for schema in versions:
            canonical = to_parsing_canonical_form(schema.raw).encode()
            assert schema.fingerprint == struct.pack("<Q", _crc64_avro(canonical)), schema.name


def test_every_shipped_schema_round_trips_with_the_single_object_header() -> None:
    codec = default_codec()
    encoded = codec.encode("RawReading", READING)
    writer = codec.schema("RawReading")
    assert encoded[:2] == MAGIC == b"\xc3\x01"
    assert encoded[2:10] == writer.fingerprint
    assert codec.decode(encoded) == READING
    assert {s.rsplit(".", 1)[1] for s in codec.by_name} == {
        "Alert",
        "RawReading",
        "EnrichedReading",
        "DeviceMetadata",
        "DeadLetter",
    }


def _evolving_codec(tmp_path: Path) -> AvroCodec:
    """The shipped RawReading v1 plus a v2 that adds an optional field."""
    shutil.copy(SCHEMA_DIR / "raw_reading.v1.avsc", tmp_path / "raw_reading.v1.avsc")
    v2 = json.loads((SCHEMA_DIR / "raw_reading.v1.avsc").read_text())
    v2["fields"].append({"name": "firmware", "type": ["null", "string"], "default": None})
    (tmp_path / "raw_reading.v2.avsc").write_text(json.dumps(v2))
    return AvroCodec(tmp_path)


def test_v2_reads_v1_data_with_the_new_field_defaulted(tmp_path: Path) -> None:
    codec = _evolving_codec(tmp_path)
    v1_bytes = codec.encode("RawReading", READING, version=1)
    assert codec.writer_of(v1_bytes).version == 1
    assert codec.decode(v1_bytes) == {**READING, "firmware": None}  # newest reader: v2


def test_v1_reads_v2_data_ignoring_the_new_field(tmp_path: Path) -> None:
    codec = _evolving_codec(tmp_path)
    v2_bytes = codec.encode("RawReading", {**READING, "firmware": "1.4.2"})
    assert codec.writer_of(v2_bytes).version == 2
    assert codec.decode(v2_bytes, reader_version=1) == READING
    assert codec.decode(v2_bytes)["firmware"] == "1.4.2"


def test_a_reader_that_only_knows_v1_cannot_read_v2_and_says_which_schema_is_missing(
    tmp_path: Path,
) -> None:
    v2_bytes = _evolving_codec(tmp_path).encode("RawReading", {**READING, "firmware": "x"})
    with pytest.raises(CodecError, match="unknown writer schema fingerprint"):
        default_codec().decode(v2_bytes)


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"\xc3",
        b"\xc3\x01",
        b'{"json": true}',
        b"\x00" * 64,
        b"\xc3\x01" + b"\xff" * 8 + b"body",
    ],
)
def test_junk_is_a_codec_error_not_a_crash(junk: bytes) -> None:
    with pytest.raises(CodecError):
        default_codec().decode(junk)


def test_a_truncated_or_corrupt_body_is_a_codec_error() -> None:
    codec = default_codec()
    good = codec.encode("RawReading", READING)
    for cut in (11, len(good) // 2, len(good) - 1):
        with pytest.raises(CodecError):
            codec.decode(good[:cut])
    corrupt = good[:10] + b"\xff" * (len(good) - 10)
    with pytest.raises(CodecError):
        codec.decode(corrupt)


def test_schema_files_must_be_versioned(tmp_path: Path) -> None:
    (tmp_path / "reading.avsc").write_text(
        json.dumps({"type": "record", "name": "R", "fields": []})
    )
    with pytest.raises(CodecError, match=r"<name>\.v<N>\.avsc"):
        AvroCodec(tmp_path)


def test_a_record_of_another_name_is_a_codec_error_naming_both() -> None:
    codec = default_codec()
    raw = codec.encode("RawReading", READING)
    with pytest.raises(CodecError, match=r"RawReading record, not a io\.telemetry\.DeadLetter"):
        codec.decode(raw, reader="DeadLetter")
