"""Property tests of the Avro codec (schemas/codec.py): records of every schema round-trip,
and no bytes make `decode` raise anything but CodecError."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest.raw_avro import encode_raw_reading
from schemas.codec import HEADER_LEN, CodecError, default_codec
from tests.fuzz import strategies as fz

CODEC = default_codec()
SCHEMAS = sorted(CODEC.by_name)


def _decodes_or_refuses(data: bytes, reader: str | None = None) -> None:
    try:
        record = CODEC.decode(data, reader=reader)
    except CodecError:
        return
    assert isinstance(record, dict)


@given(fz.enriched_reading)
def test_an_enriched_reading_round_trips(record: dict[str, Any]) -> None:
    decoded = CODEC.decode(CODEC.encode("EnrichedReading", record))
    assert decoded.keys() == record.keys()
    for key in ("device_id", "ts_us", "received_at_ms", "seq", "units", "tags"):
        assert decoded[key] == record[key]
    assert decoded["fields"].keys() == record["fields"].keys()
    for name, value in record["fields"].items():  # NaN != NaN: compare the bits
        assert repr(decoded["fields"][name]) == repr(value)


@given(fz.raw_reading)
def test_the_hand_written_raw_reading_writer_matches_the_codec(record: dict[str, Any]) -> None:
    value = encode_raw_reading(record)
    decoded = CODEC.decode(value)
    for got, sent in zip(decoded["metrics"], record["metrics"], strict=True):
        assert got["name"] == sent["name"] and got["unit"] == sent["unit"]
        assert repr(got["value"]) == repr(sent["value"])
        assert type(got["value"]) is type(sent["value"])
    assert {k: decoded[k] for k in ("device_id", "ts", "received_at_ms", "seq")} == {
        k: record[k] for k in ("device_id", "ts", "received_at_ms", "seq")}


@given(st.binary(max_size=300), st.sampled_from([None, *SCHEMAS]))
def test_random_bytes_decode_or_raise_codec_error(data: bytes, reader: str | None) -> None:
    _decodes_or_refuses(data, reader)


@given(fz.enriched_reading, st.data())
def test_a_corrupted_record_decodes_or_raises_codec_error(
    record: dict[str, Any], data: st.DataObject
) -> None:
    value = bytearray(CODEC.encode("EnrichedReading", record))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(HEADER_LEN, max(HEADER_LEN, len(value) - 1)))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and i < len(value):
            value[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del value[i:]
        else:
            value[i:i] = data.draw(st.binary(min_size=1, max_size=9))
    _decodes_or_refuses(bytes(value))
    _decodes_or_refuses(bytes(value), "DeadLetter")
