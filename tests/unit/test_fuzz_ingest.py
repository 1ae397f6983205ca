"""Property tests of ingest's decoding (ingest/payload.py, ingest/records.py): whatever a
device sends, ingest accepts it or refuses it with a documented reason, in at most one dead
letter of bounded size, and an accepted reading keeps its values.

The number of examples is the Hypothesis profile's (tests/conftest.py); `make fuzz` runs a
million inputs through the same checks.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest.payload import decode_telemetry
from ingest.raw_avro import encode_raw_reading
from ingest.records import records_for
from ingest.rejected import Rejected
from ingest.settings import IngestSettings
from plumbing.reasons import Reason
from schemas.codec import default_codec
from tests.fuzz import strategies as fz
from tests.fuzz.pipeline import DEAD_LETTER_ALLOWANCE, RECEIVED_AT_MS
from tests.fuzz.run import MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE

SETTINGS = IngestSettings()
CODEC = default_codec()


@given(fz.telemetry_payload)
def test_decode_telemetry_accepts_or_refuses_with_a_documented_reason(payload: bytes) -> None:
    try:
        readings = decode_telemetry(payload, "dev-1", RECEIVED_AT_MS, 256 * 1024)
    except Rejected as rej:
        assert rej.reason in Reason
        assert rej.detail
        return
    assert readings
    for reading in readings:
        # what ingest accepts, the hand-written Avro writer can write and the codec read back
        assert CODEC.decode(encode_raw_reading(reading)) == reading


@given(fz.topic, st.one_of(fz.telemetry_payload, fz.metadata_payload))
def test_records_for_never_raises_and_makes_at_most_one_bounded_dead_letter(
    topic: str, payload: bytes
) -> None:
    kind, records = records_for(topic, payload, SETTINGS, RECEIVED_AT_MS)
    assert kind in ("telemetry", "metadata")
    letters = [r for r in records if r.kind == "dead_letter"]
    assert len(letters) <= 1
    for record in records:
        assert record.kind in ("reading", "metadata", "dead_letter")
        if record.value is None:
            assert record.kind == "metadata"  # a tombstone
            continue
        decoded = CODEC.decode(record.value)
        if record.kind == "dead_letter":
            assert decoded["reason"] in set(Reason)
            assert decoded["original"] == payload[: len(decoded["original"])]
    letter_bytes = sum(len(r.value or b"") for r in letters)
    assert letter_bytes <= MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE * (
        len(payload) + DEAD_LETTER_ALLOWANCE)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.-", min_size=1, max_size=20)
_finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False), fz.INT64)


@given(st.dictionaries(_names, _finite, min_size=1, max_size=8), fz.INT64, fz.INT64,
       st.booleans())
def test_an_accepted_reading_round_trips_into_the_raw_record(
    metrics: dict[str, Any], ts: int, seq: int, batch: bool
) -> None:
    reading = {"ts": ts, "seq": seq, "metrics": metrics}
    payload = fz.dumps([reading, reading] if batch else reading, ascii_only=True)
    _, records = records_for("devices/dev-1/telemetry", payload, SETTINGS, RECEIVED_AT_MS)
    assert [r.kind for r in records] == ["reading"] * (2 if batch else 1)
    for record in records:
        assert record.value is not None
        raw = CODEC.decode(record.value)
        assert (raw["device_id"], raw["ts"], raw["seq"]) == ("dev-1", ts, seq)
        got = {m["name"]: m["value"] for m in raw["metrics"]}
        assert got.keys() == metrics.keys()
        for name, value in metrics.items():
            assert type(got[name]) is type(value)
            assert got[name] == value and math.copysign(1, got[name]) == math.copysign(1, value)
