"""Telemetry payload decoding: the contract's shapes, and hostile input that must not crash."""

from __future__ import annotations

import json
import math
import random

import pytest

from ingest.payload import decode_telemetry
from ingest.records import encode_raw_reading
from ingest.rejected import Rejected
from ingest.strict_json import MAX_NESTING
from plumbing.reasons import Reason
from schemas.codec import default_codec

LIMIT = 256 * 1024
INGEST_REASONS = {Reason.PAYLOAD_TOO_LARGE, Reason.INVALID_JSON, Reason.INVALID_SHAPE,
                  Reason.TOO_MANY_READINGS, Reason.TOO_MANY_METRICS}


def decode(payload: bytes | str, limit: int = LIMIT) -> list[dict]:
    data = payload.encode() if isinstance(payload, str) else payload
    return decode_telemetry(data, "dev-1", 1_763_701_200_999, limit)


def rejected(payload: bytes | str, limit: int = LIMIT) -> Rejected:
    with pytest.raises(Rejected) as info:
        decode(payload, limit)
    return info.value


def metrics_of(payload: str) -> dict[str, tuple[object, object]]:
    [reading] = decode(payload)
    return {m["name"]: (m["value"], m["unit"]) for m in reading["metrics"]}


def round_trip(reading: dict) -> dict:
    return default_codec().decode(encode_raw_reading(reading))


# --- the contract's shapes ------------------------------------------------------------------

def test_the_design_example_becomes_one_raw_reading() -> None:
    payload = ('{"ts": 1763701200123, "seq": 42, "metrics": {"temperature": '
               '{"value": 70.7, "unit": "degF"}, "humidity": 41.5}}')
    assert decode(payload) == [{
        "device_id": "dev-1",
        "ts": 1763701200123,
        "received_at_ms": 1_763_701_200_999,
        "seq": 42,
        "metrics": [
            {"name": "temperature", "value": 70.7, "unit": "degF"},
            {"name": "humidity", "value": 41.5, "unit": None},
        ],
    }]


def test_a_batch_gives_one_reading_per_object_in_order() -> None:
    readings = decode('[{"seq": 1, "metrics": {"a": 1}}, {"seq": 2, "metrics": {"a": 2}},'
                      ' {"seq": 3, "metrics": {"a": 3}}]')
    assert [r["seq"] for r in readings] == [1, 2, 3]
    assert [r["metrics"][0]["value"] for r in readings] == [1, 2, 3]


def test_missing_ts_and_seq_stay_null_and_missing_metrics_is_an_empty_list() -> None:
    [reading] = decode("{}")
    assert reading["ts"] is None and reading["seq"] is None and reading["metrics"] == []
    [reading] = decode('{"ts": null, "seq": null, "metrics": {}}')
    assert reading["ts"] is None and reading["seq"] is None


@pytest.mark.parametrize(
    ("ts_json", "expected"),
    [
        ("1763701200123", 1763701200123),
        ('"2025-11-21T05:00:00.123Z"', "2025-11-21T05:00:00.123Z"),
        ('"yesterday"', "yesterday"),  # validate rejects it with invalid_timestamp
        ("1.7637012e12", "1763701200000.0"),
        ("true", "true"),
        ('{"s": 1}', '{"s":1}'),
        ("[1, 2]", "[1,2]"),
        ("9223372036854775807", 9223372036854775807),
        ("9223372036854775808", "9223372036854775808"),
        ("-9223372036854775809", "-9223372036854775809"),
        ("1" * 400, "1" * 400),
        ("NaN", "NaN"),
    ],
)
def test_ts_of_any_json_type_travels_as_long_string_or_its_json_text(
    ts_json: str, expected: object
) -> None:
    [reading] = decode(f'{{"ts": {ts_json}, "metrics": {{"a": 1}}}}')
    assert reading["ts"] == expected
    assert round_trip(reading)["ts"] == expected


@pytest.mark.parametrize(
    ("seq_json", "expected"),
    [("42", 42), ("-1", -1), ('"42"', '"42"'), ("4.5", "4.5"), ("false", "false"),
     ("18446744073709551616", "18446744073709551616"), ("[]", "[]")],
)
def test_seq_is_a_long_or_its_json_text(seq_json: str, expected: object) -> None:
    [reading] = decode(f'{{"seq": {seq_json}}}')
    assert reading["seq"] == expected
    assert round_trip(reading)["seq"] == expected


def test_metric_values_keep_their_json_type() -> None:
    metrics = metrics_of(
        '{"metrics": {"int": 7, "neg": -3, "float": 2.5, "bool": true, "null": null,'
        ' "str": "on", "arr": [1, "x"], "obj": {"a": 1}, "big": 9223372036854775808,'
        ' "max": 9223372036854775807, "huge": ' + "9" * 5000 + ','
        ' "with_unit": {"value": 3, "unit": "V"}, "no_unit": {"value": 4.5},'
        ' "odd_unit": {"value": 1, "unit": 5}, "extra_key": {"value": 1, "unit": "V", "q": 1},'
        ' "nested": {"value": {"value": 1}}, "unit_only": {"unit": "V"}}}'
    )
    assert metrics == {
        "int": (7, None), "neg": (-3, None), "float": (2.5, None), "bool": (True, None),
        "null": (None, None), "str": ("on", None), "arr": ('[1,"x"]', None),
        "obj": ('{"a":1}', None), "big": ("9223372036854775808", None),
        "max": (9223372036854775807, None), "huge": ("9" * 5000, None),
        "with_unit": (3, "V"), "no_unit": (4.5, None), "odd_unit": (1, "5"),
        "extra_key": ('{"value":1,"unit":"V","q":1}', None),
        "nested": ('{"value":1}', None), "unit_only": ('{"unit":"V"}', None),
    }


def test_longs_stay_longs_and_booleans_stay_booleans_through_avro() -> None:
    [reading] = decode('{"metrics": {"i": 9007199254740993, "b": false, "d": 1.0, "s": "1"}}')
    values = {m["name"]: m["value"] for m in round_trip(reading)["metrics"]}
    assert values == {"i": 9007199254740993, "b": False, "d": 1.0, "s": "1"}
    assert type(values["i"]) is int and type(values["b"]) is bool and type(values["d"]) is float


def test_nan_and_infinity_literals_pass_as_doubles_for_validate_to_reject_per_metric() -> None:
    [reading] = decode('{"metrics": {"n": NaN, "p": Infinity, "m": -Infinity, "big": 1e999,'
                       ' "ok": 1}}')
    values = {m["name"]: m["value"] for m in round_trip(reading)["metrics"]}
    assert math.isnan(values["n"])
    assert values["p"] == math.inf and values["m"] == -math.inf and values["big"] == math.inf
    assert values["ok"] == 1


def test_unicode_text_survives_and_surrogate_pairs_are_joined() -> None:
    metrics = metrics_of('{"metrics": {"temp\\u00e9rature": "\\ud83d\\ude00", "z\u00fcrich": 1}}')
    assert metrics == {"température": ("\U0001f600", None), "zürich": (1, None)}


def test_control_characters_inside_strings_are_data_not_errors() -> None:
    metrics = metrics_of('{"metrics": {"a\\u0000b": "line\\nbreak", "c": {"value": 1,'
                         ' "unit": "\\u0007"}}}')
    assert metrics == {"a\x00b": ("line\nbreak", None), "c": (1, "\x07")}


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    [reading] = decode(b'\xef\xbb\xbf{"metrics": {"a": 1}}')
    assert reading["metrics"] == [{"name": "a", "value": 1, "unit": None}]


def test_a_hundred_thousand_metrics_decode_when_the_limit_allows_them() -> None:
    payload = json.dumps({"metrics": {f"m{i}": i for i in range(100_000)}})
    assert len(payload) > LIMIT
    assert rejected(payload).reason == Reason.PAYLOAD_TOO_LARGE
    data = payload.encode()
    assert rejected(payload, limit=len(payload)).reason == Reason.TOO_MANY_METRICS
    [reading] = decode_telemetry(data, "dev-1", 1, len(data), max_metrics=100_000)
    assert len(reading["metrics"]) == 100_000
    assert reading["metrics"][99_999] == {"name": "m99999", "value": 99_999, "unit": None}


def test_a_batch_over_the_readings_cap_is_rejected_whole() -> None:
    payload = b"[" + b",".join([b"{}"] * 87_380) + b"]"  # 256 KiB of empty readings
    rej = rejected(payload, limit=len(payload))
    assert rej.reason == Reason.TOO_MANY_READINGS and "87380 readings" in rej.detail
    assert len(decode_telemetry(payload, "d", 1, len(payload), max_readings=87_380)) == 87_380


def test_nesting_up_to_the_limit_is_kept_as_json_text() -> None:
    depth = MAX_NESTING - 1
    metrics = metrics_of('{"metrics": {"deep": ' + "[" * depth + "]" * depth + "}}")
    assert metrics["deep"] == ("[" * depth + "]" * depth, None)


# --- whole-message rejects ------------------------------------------------------------------

def test_payload_size_limit_is_exact() -> None:
    body = '{"metrics": {"a": "' + "x" * 100 + '"}}'
    assert decode(body, limit=len(body))
    rej = rejected(body, limit=len(body) - 1)
    assert rej.reason == Reason.PAYLOAD_TOO_LARGE
    assert str(len(body)) in rej.detail and str(len(body) - 1) in rej.detail


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe{}",
        b'{"metrics": {"a": "\xc3"}}',  # truncated UTF-8 sequence
        b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8)
        b"\xc0\xaf",  # overlong encoding
        '{"metrics": {"a": 1}}'.encode("utf-16"),
        '{"metrics": {"a": 1}}'.encode("utf-32-le"),
    ],
)
def test_bytes_that_are_not_utf8_are_invalid_json(payload: bytes) -> None:
    rej = rejected(payload)
    assert rej.reason == Reason.INVALID_JSON
    assert "UTF-8" in rej.detail


@pytest.mark.parametrize(
    "payload",
    ["", " ", "{", '{"metrics": {"a": 1}', '{"metrics": {"a": 1}} x', "{'a': 1}",
     '{"a": 01}', '{"a": .5}', "[1,]", '{"a" 1}', "nan", "undefined", "\x00",
     '{"a": "unterminated}', '{"a": "\\x41"}'],
)
def test_text_that_is_not_json_is_invalid_json_with_a_location(payload: str) -> None:
    rej = rejected(payload)
    assert rej.reason == Reason.INVALID_JSON
    assert "not JSON" in rej.detail and "line 1 column" in rej.detail


@pytest.mark.parametrize(
    "payload",
    ['{"metrics": {"a": 1}, "metrics": {"a": 2}}', '{"metrics": {"a": 1, "a": 2}}',
     '[{"seq": 1}, {"seq": 1, "seq": 2}]', '{"metrics": {"t": {"value": 1, "value": 2}}}'],
)
def test_duplicate_keys_are_invalid_json_rather_than_last_one_wins(payload: str) -> None:
    rej = rejected(payload)
    assert rej.reason == Reason.INVALID_JSON
    assert "duplicate key" in rej.detail


@pytest.mark.parametrize(
    "payload",
    ['{"metrics": {"\\ud800": 1}}', '{"metrics": {"a": "\\udfff"}}',
     '{"metrics": {"a": {"value": 1, "unit": "\\ud83d"}}}', '{"ts": "\\ude00"}'],
)
def test_unpaired_surrogate_escapes_in_kept_strings_are_invalid_json(payload: str) -> None:
    rej = rejected(payload)
    assert rej.reason == Reason.INVALID_JSON
    assert "surrogate" in rej.detail


def test_unpaired_surrogates_inside_json_text_values_stay_escaped() -> None:
    [reading] = decode('{"metrics": {"a": ["\\ud800"]}, "seq": "\\udc00"}')
    assert reading["metrics"][0]["value"] == '["\\ud800"]'
    assert reading["seq"] == '"\\udc00"'
    round_trip(reading)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("[]", "empty"),
        ("42", "a number"),
        ('"hello"', "a string"),
        ("null", "null"),
        ("true", "a boolean"),
        ("[1, 2]", "batch item 0 is a number"),
        ('[{"metrics": {}}, []]', "batch item 1 is an array"),
        ("[[{}]]", "batch item 0 is an array"),
        ('{"metrics": [1, 2]}', '"metrics" is an array'),
        ('{"metrics": 5}', '"metrics" is a number'),
        ('{"metrics": "temp=5"}', '"metrics" is a string'),
        ('{"metrics": null}', '"metrics" is null'),
        ('[{"metrics": {}}, {"metrics": true}]', 'batch item 1: "metrics" is a boolean'),
    ],
)
def test_wrong_shapes_are_invalid_shape_and_say_where(payload: str, words: str) -> None:
    rej = rejected(payload)
    assert rej.reason == Reason.INVALID_SHAPE
    assert words in rej.detail


@pytest.mark.parametrize("opener", ["[", '{"a":', '{"metrics": {"x": ['])
def test_nesting_deeper_than_the_parser_goes_is_invalid_shape(opener: str) -> None:
    payload = opener * 100_000
    rej = rejected(payload, limit=len(payload))
    assert rej.reason in (Reason.INVALID_SHAPE, Reason.INVALID_JSON)


def test_a_metric_nested_past_the_limit_is_invalid_shape_and_named() -> None:
    depth = MAX_NESTING + 5
    rej = rejected('{"metrics": {"deep": ' + "[" * depth + "]" * depth + "}}")
    assert rej.reason == Reason.INVALID_SHAPE
    assert "'deep'" in rej.detail and "nested" in rej.detail


def test_balanced_deep_nesting_of_500_levels_is_refused_without_recursion_errors() -> None:
    payload = '{"metrics": {"x": ' + '{"a":' * 500 + "1" + "}" * 500 + "}}"
    assert rejected(payload).reason == Reason.INVALID_SHAPE


# --- never crash ----------------------------------------------------------------------------

HOSTILE = [
    b"",
    b"\x00" * 1000,
    b"[" * 300_000,
    b"{" * 300_000,
    b'{"metrics": {"a": ' + b"9" * 200_000 + b"}}",
    b'{"ts": ' + b"-" + b"1" * 100_000 + b"}",
    b'{"metrics": {"a": 1e99999999999}}',
    b'{"metrics": {"a": -0.0, "b": 5e-324, "c": 1.7976931348623157e308}}',
    b'{"metrics": {"a": NaN, "b": -NaN}}',
    b'{"metrics": {"a": Infinity}, "ts": -Infinity, "seq": NaN}',
    b'\xef\xbb\xbf\xef\xbb\xbf{"metrics": {}}',
    b'{"metrics": {"\\u0000": "\\u0000", "\\ud800\\ud800": 1}}',
    b'{"metrics": {"a": "\\ud800\\udc00\\udc00"}}',
    b'{"metrics": {"\xf0\x9f\x98\x80": 1}}',
    b'{"metrics": {"a": "\xf4\x90\x80\x80"}}',  # beyond U+10FFFF
    json.dumps([{"metrics": {str(i): i}} for i in range(20_000)]).encode(),
    json.dumps({"metrics": {"a": {"value": {"value": {"value": [None] * 10_000}}}}}).encode(),
    b'{"metrics": {"a": {"value": 1, "unit": {"x": [1, {"y": NaN}]}}}}',
    b'{"ts": {"$date": 1}, "seq": {"$numberLong": "1"}, "metrics": {"__proto__": 1}}',
    b'{"metrics": {}, "metrics ": 1, "METRICS": 2}',
]


@pytest.mark.parametrize("payload", HOSTILE, ids=lambda p: repr(p[:30]))
def test_hostile_payloads_are_rejected_with_a_reason_or_encode_cleanly(payload: bytes) -> None:
    assert_decodes_or_rejects(payload, limit=max(LIMIT, len(payload)))


def test_random_mutations_of_good_payloads_never_crash() -> None:
    rng = random.Random(20251121)
    seeds = [
        b'{"ts": 1763701200123, "seq": 42, "metrics": {"t": {"value": 70.7, "unit": "degF"}}}',
        b'[{"metrics": {"a": 1, "b": [1, 2, {"c": null}]}}, {"ts": "2025-11-21T05:00:00Z"}]',
    ]
    junk = [b"\\ud800", b"\\u0000", b"NaN", b"\xff", b"\xc3", b"[", b"]", b"{", b"}", b'"',
            b":", b",", b"\\", b"1e999", b"-", b"\x00", b"\xef\xbb\xbf", b"99999999999999999999"]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.random()
            if op < 0.4:
                data[at:at] = rng.choice(junk)
            elif op < 0.7 and data:
                del data[at:at + rng.randint(1, 5)]
            else:
                data[at:at] = bytes([rng.randrange(256)])
        assert_decodes_or_rejects(bytes(data), LIMIT)


def assert_decodes_or_rejects(payload: bytes, limit: int) -> None:
    try:
        readings = decode_telemetry(payload, "dev-1", 1, limit)
    except Rejected as rej:
        assert rej.reason in INGEST_REASONS
        assert rej.detail
        return
    assert readings
    for reading in readings:
        back = round_trip(reading)
        assert back["device_id"] == "dev-1"
        assert len(back["metrics"]) == len(reading["metrics"])
