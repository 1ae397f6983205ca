"""Property tests of the InfluxDB sink's line-protocol encoder (sinks/line_protocol.py)
against InfluxDB's own parser, ported in tests/fuzz/influx_line_protocol.py: every line it
writes is read back as exactly the reading (measurement, tag set, field set, time), alone and
in the request bodies the sink sends; what it cannot write that way it refuses.

The first tests pin the ported parser to what InfluxDB's own tests and docs say, so the
oracle is not just our encoder read backwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.line_protocol import (
    ReadingEncoder,
    UnrepresentableError,
    encode_point,
    request_bodies,
)
from tests.fuzz import strategies as fz
from tests.fuzz.influx_line_protocol import ParseError, Point, parse_body
from tests.fuzz.pipeline import expected_point, line_problem, same_point


@pytest.mark.parametrize(
    ("line", "point"),
    [
        (b'weather,location=us\\,midwest temperature=82 1465839830100400200',
         Point("weather", (("location", "us,midwest"),), (("temperature", 82.0),),
               1465839830100400200)),
        (b'my\\ measurement,tag\\ key=tag\\ value field\\ key="string \\"value\\"" 1',
         Point("my measurement", (("tag key", "tag value"),),
               (("field key", 'string "value"'),), 1)),
        (b'm,b=2,a=1 f=1i,g=t,h=-1.5e-3,s="a\\\\b" 5',  # tags sorted, value types
         Point("m", (("a", "1"), ("b", "2")), (("f", 1), ("g", True), ("h", -0.0015),
                                               ("s", "a\\b")), 5)),
        (b'm,t=a\\b f\\=x=1 1',  # a backslash before another byte stays
         Point("m", (("t", "a\\b"),), (("f=x", 1.0),), 1)),
        (b'm \tf=1 1',  # whitespace before the first field key is skipped
         Point("m", (), (("f", 1.0),), 1)),
    ],
)
def test_the_ported_parser_reads_what_influxdb_reads(line: bytes, point: Point) -> None:
    assert parse_body(line, precision_ns=1) == [point]


@pytest.mark.parametrize("line", [
    b"m", b"m f=1 1 x", b"m,t= f=1 1", b"m,t=a=b f=1 1", b"m f= 1", b'm f="x 1',
    b"m f=1,f2 1", b"m f=NaN 1", b"m f=1.1.1 1", b"m f=1i2 1", b"m,a=1,a=2 f=1 1",
    b"m f=tru 1", b"m f=1 1a", b"m f=99999999999999999999i 1", b", f=1 1",
])
def test_the_ported_parser_refuses_what_influxdb_refuses(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_body(line)


def test_a_quoted_newline_joins_lines_as_influxdb_splits_them() -> None:
    assert len(parse_body(b'm f="a\nb" 1\nm g=1 2')) == 2
    # a tag value `a\ b\="`: scanLine takes the backslash-space for the start of the fields
    # and the quote as opening a string, so the newline after this line is not its end
    line = b'm,t=a\\\\ b\\\\=" f=1 1'
    [point] = parse_body(line)
    assert point.tags == (("t", 'a\\ b\\="'),)
    try:
        points = parse_body(line + b"\nm g=1 2")
    except ParseError:
        points = []
    assert len(points) != 2


def _encoded(encoder: ReadingEncoder, reading: dict[str, Any]) -> str | None:
    try:
        return encoder.encode(reading)
    except UnrepresentableError:
        return None


@given(fz.enriched_reading)
def test_every_line_reads_back_as_exactly_its_reading(reading: dict[str, Any]) -> None:
    line = _encoded(ReadingEncoder(), reading)
    if line is None:
        return
    assert line_problem(line, expected_point(reading)) is None


_tricky = st.text(alphabet=st.sampled_from(list(',= "\\\tx\x00#')), min_size=1, max_size=8)


@given(st.lists(st.fixed_dictionaries({
    "device_id": st.one_of(_tricky, st.just("dev-1")),
    "ts_us": st.integers(0, 2**53),
    "seq": st.one_of(st.none(), fz.INT64),
    "fields": st.dictionaries(_tricky, st.floats(allow_nan=False), min_size=1, max_size=3),
    "tags": st.dictionaries(_tricky, _tricky, max_size=3),
}), min_size=1, max_size=6))
def test_request_bodies_read_back_as_exactly_their_readings(
    readings: list[dict[str, Any]],
) -> None:
    encoder = ReadingEncoder()
    lines, expected = [], []
    for reading in readings:
        line = _encoded(encoder, reading)
        if line is not None:
            lines.append(line)
            expected.append(expected_point(reading))
    points = [p for body in request_bodies(lines) for p in parse_body(body)]
    assert len(points) == len(expected)
    assert all(same_point(a, b) for a, b in zip(points, expected, strict=True))


_field_value = st.one_of(st.floats(allow_nan=False, allow_infinity=False), fz.INT64,
                         st.booleans(), fz.unicode_text)


@given(fz.unicode_text, st.dictionaries(fz.unicode_text, fz.unicode_text, max_size=3),
       st.dictionaries(fz.unicode_text, _field_value, min_size=1, max_size=4),
       st.integers(-(2**53), 2**53))
def test_any_point_with_string_bool_and_int_fields_reads_back(
    measurement: str, tags: dict[str, str], fields: dict[str, Any], ts: int
) -> None:
    try:
        line = encode_point(measurement, tags, fields, ts)
    except UnrepresentableError:
        return
    [point] = [p for body in request_bodies([line]) for p in parse_body(body, 1)]
    assert point.measurement == measurement
    assert sorted(point.tags) == sorted((k, v) for k, v in tags.items() if v != "")
    assert len(point.fields) == len(fields)
    for (key, value), (sent_key, sent) in zip(point.fields, fields.items(), strict=True):
        assert key == sent_key and type(value) is type(sent)
        assert repr(value) == repr(sent)
    assert point.time_ns == ts
