"""The hand-written RawReading writer gives the codec's bytes exactly, for any reading."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ingest import raw_avro
from ingest.payload import decode_telemetry
from ingest.raw_avro import encode_raw_reading, encode_with_codec
from ingest.rejected import Rejected
from schemas.codec import default_codec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def readings(payload: str | bytes) -> list[dict[str, Any]]:
    data = payload.encode() if isinstance(payload, str) else payload
    return decode_telemetry(data, "dev-ü-1", 1_763_701_200_999, 256 * 1024)


def test_the_fast_writer_is_in_use_for_the_shipped_schema() -> None:
    """If this fails, the newest RawReading changed: update RAW_READING_LAYOUT and the writer."""
    assert raw_avro.HEADER is not None
    assert b"\xc3\x01" + default_codec().schema("RawReading").fingerprint == raw_avro.HEADER


@pytest.mark.parametrize("payload", [
    '{"ts": 1763701200123, "seq": 42, "metrics": {"temperature": {"value": 70.7, '
    '"unit": "degF"}, "humidity": 41.5, "pressure": 101.2, "voltage": 3.3}}',
    '{"metrics": {}}',
    "{}",
    '{"ts": "2025-11-21T05:00:00Z", "seq": "x", "metrics": {"on": true, "off": false, '
    '"s": "text", "n": null, "obj": {"a": [1, 2]}, "arr": [1, "b"], "big": 123456789012345678901}}',
    f'{{"ts": {INT64_MIN}, "seq": {INT64_MAX}, "metrics": {{"min": {INT64_MIN}, '
    f'"max": {INT64_MAX}, "neg": -1, "zero": 0, "m63": -64, "p64": 64, "negz": -0.0}}}}',
    '{"ts": 1.5, "seq": true, "metrics": {"nan": NaN, "inf": Infinity, "ninf": -Infinity}}',
    '{"metrics": {"u": {"value": 1, "unit": 5}, "long-unit": {"value": 2, "unit": "'
    + "µ" * 100 + '"}}}',
    '{"metrics": {"' + "n" * 200 + '": "' + "v" * 70_000 + '"}}',
    json.dumps({"metrics": {f"m{i}": i * 1.5 for i in range(300)}}),
    '{"metrics": {"emoji-🙂": "Zürich 🙂", "nul\\u0000": "\\ud83d\\ude00"}}',
    '[{"seq": 1, "metrics": {"a": 1}}, {"seq": 2, "metrics": {"b": 2}}]',
])
def test_bytes_equal_the_codecs(payload: str) -> None:
    for reading in readings(payload):
        fast = encode_raw_reading(reading)
        assert fast == encode_with_codec(reading)
        decoded = default_codec().decode(fast)
        assert decoded["device_id"] == reading["device_id"]
        assert len(decoded["metrics"]) == len(reading["metrics"])


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return rng.choice([0, 1, -1, 63, 64, -64, -65, INT64_MIN, INT64_MAX,
                           rng.randint(INT64_MIN, INT64_MAX), 10**25])
    if kind == 1:
        return rng.choice([0.0, -0.0, 1e308, -1e-308, rng.uniform(-1e6, 1e6)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4, 5):
        return "".join(rng.choice("aZ9 ü€🙂\"\\\n") for _ in range(rng.randrange(0, 80)))
    if kind == 6:
        return {"value": _random_value(rng, depth + 1),
                **({"unit": _random_value(rng, depth + 1)} if rng.random() < 0.5 else {})}
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(3))}


def test_random_readings_encode_like_the_codec() -> None:
    rng = random.Random(6)
    for _ in range(500):
        doc = {
            "ts": _random_value(rng), "seq": _random_value(rng),
            "metrics": {f"m{i}-{rng.random()}": _random_value(rng)
                        for i in range(rng.randrange(0, 70))},
        }
        try:
            batch = readings(json.dumps(doc))
        except Rejected:
            continue
        for reading in batch:
            assert encode_raw_reading(reading) == encode_with_codec(reading), reading
