"""Line protocol encoding: exact lines, escaping of hostile strings, what cannot be written.

What InfluxDB really stores for these strings is checked against the real server in
tests/integration/test_sink_influxdb.py; here the encoder's output is pinned byte for byte.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from sinks.line_protocol import (
    Dialect,
    ReadingEncoder,
    UnrepresentableError,
    encode_point,
    escape_field_key,
    escape_string_value,
    escape_tag,
    leaves_quote_open,
    request_bodies,
)


def reading(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device_id": "dev-1",
        "ts_us": 1_763_701_200_123_456,
        "received_at_ms": 1_763_701_200_200,
        "seq": 42,
        "fields": {"temperature": 21.5, "humidity": 41.0},
        "units": {},
        "tags": {"site": "plant-1", "area": "north"},
    }
    base.update(over)
    return base


def test_plain_reading_is_one_exact_line() -> None:
    line = ReadingEncoder().encode(reading())
    assert line == (
        "telemetry,area=north,device_id=dev-1,site=plant-1 "
        "humidity=41.0,temperature=21.5,seq=42i 1763701200123456"
    )


def test_empty_tag_values_are_left_out_and_missing_seq_is_no_field() -> None:
    line = ReadingEncoder().encode(reading(seq=None, tags={"site": "", "zone": "z1"}))
    assert line == (
        "telemetry,device_id=dev-1,zone=z1 humidity=41.0,temperature=21.5 1763701200123456"
    )


def test_floats_keep_every_digit_and_integers_stay_floats() -> None:
    fields = {"a": 0.1 + 0.2, "b": 1e16, "c": -0.0, "d": 5e-324, "e": 1.7976931348623157e308,
              "f": 3.0}
    line = ReadingEncoder().encode(reading(fields=fields, seq=None, tags={}))
    assert line.split(" ")[1] == (
        "a=0.30000000000000004,b=1e+16,c=-0.0,d=5e-324,e=1.7976931348623157e+308,f=3.0"
    )
    for part in line.split(" ")[1].split(","):
        name, text = part.split("=")
        assert float(text) == fields[name]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ('a"b', 'a"b'),  # quotes need no escape in tags
        ("a\\b", "a\\b"),  # InfluxDB keeps tag backslashes as written: never doubled
        ("a\\,b", "a\\\\,b"),
        ("a\\ b", "a\\\\ b"),
        ("\\\\ x", "\\\\\\ x"),
        (" lead", "\\ lead"),
        ("ü日本🙂", "ü日本🙂"),
        ("a\tb\rc", "a\tb\rc"),
    ],
)
def test_tag_escaping(raw: str, escaped: str) -> None:
    assert escape_tag(raw, "tag") == escaped


def test_hostile_device_id_cannot_inject_a_second_point_or_tag() -> None:
    hostile = "x temperature=99 1,device_id=evil,site=hq"
    line = ReadingEncoder().encode(reading(device_id=hostile, tags={}))
    assert line == (
        "telemetry,device_id=x\\ temperature\\=99\\ 1\\,device_id\\=evil\\,site\\=hq "
        "humidity=41.0,temperature=21.5,seq=42i 1763701200123456"
    )
    # Exactly two unescaped spaces (tags|fields|time) and no newline.
    unescaped = line.replace("\\ ", "").replace("\\,", "").replace("\\=", "")
    assert unescaped.count(" ") == 2 and "\n" not in line


@pytest.mark.parametrize("bad", ["dev\nevil", "line\nbreak", "trail\\", "\\", "x\\\\"])
def test_unrepresentable_tag_values_are_refused(bad: str) -> None:
    with pytest.raises(UnrepresentableError):
        ReadingEncoder().encode(reading(device_id=bad))
    with pytest.raises(UnrepresentableError):
        ReadingEncoder().encode(reading(tags={"site": bad}))
    with pytest.raises(UnrepresentableError):
        ReadingEncoder().encode(reading(tags={bad: "v"}))


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnrepresentableError, match="Unicode"):
        ReadingEncoder().encode(reading(device_id="a\udcffb"))


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("temp erature", "temp\\ erature"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ('a"b', 'a\\"b'),
        ("a\\b", "a\\b"),
        ('a\\"b', 'a\\\\"b'),
        ("a\\\\,b", "a\\\\\\,b"),  # even run of backslashes before a comma is fine
        ("_field", "_field"),
    ],
)
def test_field_key_escaping(raw: str, escaped: str) -> None:
    assert escape_field_key(raw) == escaped


@pytest.mark.parametrize("bad", ["a\\,b", "a\\ b", "a\\=b", "a\\\\\\,b", "trail\\", "ev\\\\",
                                 "new\nline", ""])
def test_unrepresentable_field_keys_are_refused_with_the_metric_named(bad: str) -> None:
    with pytest.raises(UnrepresentableError) as info:
        ReadingEncoder().encode(reading(fields={bad: 1.0, "ok": 2.0}))
    assert info.value.metric == bad


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(value: float) -> None:
    with pytest.raises(UnrepresentableError, match="finite"):
        ReadingEncoder().encode(reading(fields={"temperature": value}))


@pytest.mark.parametrize("value", [True, "21.5", None, [1.0], {"v": 1.0}])
def test_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(UnrepresentableError, match="not a number"):
        ReadingEncoder().encode(reading(fields={"temperature": value}))


def test_reading_without_metrics_or_seq_is_refused() -> None:
    with pytest.raises(UnrepresentableError, match="nothing to store"):
        ReadingEncoder().encode(reading(fields={}, seq=None))
    assert ReadingEncoder().encode(reading(fields={}, seq=7, tags={})) == (
        "telemetry,device_id=dev-1 seq=7i 1763701200123456"
    )


def test_metric_named_seq_collides_with_seq() -> None:
    with pytest.raises(UnrepresentableError, match="seq"):
        ReadingEncoder().encode(reading(fields={"seq": 1.0}))


def test_device_id_tag_must_agree_with_the_reading() -> None:
    same = ReadingEncoder().encode(reading(tags={"device_id": "dev-1"}))
    assert same.startswith("telemetry,device_id=dev-1 ")
    with pytest.raises(UnrepresentableError, match="contradicts"):
        ReadingEncoder().encode(reading(tags={"device_id": "other"}))


@pytest.mark.parametrize("ts", [10**16, -(10**16), 1.5, "1763701200123456"])
def test_timestamps_a_database_cannot_hold_are_refused(ts: object) -> None:
    with pytest.raises(UnrepresentableError, match="ts_us"):
        ReadingEncoder().encode(reading(ts_us=ts))


def test_string_values_escape_quotes_and_backslashes() -> None:
    assert escape_string_value('say "hi"\\') == '"say \\"hi\\"\\\\"'
    line = encode_point("m", {"k": "v"}, {"s": 'a"b\\', "n": 2, "f": 1.5, "b": True}, 5)
    assert line == 'm,k=v s="a\\"b\\\\",n=2i,f=1.5,b=true 5'


def test_measurement_that_reads_as_a_comment_is_refused() -> None:
    with pytest.raises(UnrepresentableError, match="comment"):
        ReadingEncoder("#telemetry")


def test_tdengine_dialect_refuses_backslashes_and_keeps_the_rest() -> None:
    enc = ReadingEncoder(dialect=Dialect.TDENGINE)
    with pytest.raises(UnrepresentableError, match="TDengine"):
        enc.encode(reading(device_id="a\\b"))
    with pytest.raises(UnrepresentableError, match="TDengine"):
        enc.encode(reading(fields={"a\\b": 1.0}))
    line = enc.encode(reading(device_id="a b,c=d", fields={'q"x': 1.0}, tags={}, seq=None))
    assert line == 'telemetry,device_id=a\\ b\\,c\\=d q"x=1.0 1763701200123456'


def test_line_that_would_swallow_the_next_line_ends_its_request_body() -> None:
    hostile = ReadingEncoder().encode(reading(device_id='a\\ b\\="'))
    plain = ReadingEncoder().encode(reading())
    assert leaves_quote_open(hostile)
    assert not leaves_quote_open(plain)
    assert not leaves_quote_open(ReadingEncoder().encode(reading(device_id='a"b\\c')))
    bodies = request_bodies([plain, hostile, plain, plain])
    assert bodies == [
        f"{plain}\n{hostile}".encode(),
        f"{plain}\n{plain}".encode(),
    ]
    assert request_bodies([plain]) == [plain.encode()]
    assert request_bodies([]) == []


def test_cached_series_do_not_leak_between_readings() -> None:
    enc = ReadingEncoder()
    first = enc.encode(reading(tags={"site": "a"}))
    second = enc.encode(reading(tags={"site": "b"}))
    again = enc.encode(reading(tags={"site": "a"}))
    assert "site=a" in first and "site=b" in second and again == first


@pytest.mark.parametrize("bad", ["\tlead", "\x00lead", "\t", "\x00"])
def test_a_field_key_starting_with_what_influxdb_skips_as_whitespace_is_refused(
    bad: str,
) -> None:
    # Found by `make fuzz`: InfluxDB's scanFields skips tabs and NULs before the first field
    # key, so "\tlead=1.0" was stored as field "lead". validate refuses control characters,
    # but a user's step after it (or another producer of telemetry.enriched) may not.
    with pytest.raises(UnrepresentableError) as info:
        ReadingEncoder().encode(reading(fields={bad: 1.0, "ok": 2.0}))
    assert info.value.metric == bad
    with pytest.raises(UnrepresentableError):
        encode_point("m", {}, {bad: 1.0}, 1)


@pytest.mark.parametrize("bad", ["\tm", "\x00m", "a\\=b", 'a\\"b', "\\="])
def test_a_measurement_influxdb_would_store_altered_is_refused(bad: str) -> None:
    with pytest.raises(UnrepresentableError):
        ReadingEncoder(bad)


def test_a_tab_or_nul_inside_a_field_key_is_kept() -> None:
    assert escape_field_key("a\tb\x00") == "a\tb\x00"
