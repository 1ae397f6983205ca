"""The validate step: whole-reading rejects, per-metric rejects, bad seq, the output shape."""

from __future__ import annotations

import math
from typing import Any

import pytest

from plumbing.reasons import Reason
from processors.steps.validate import metric_value, validate_reading
from processors.timestamps import TimeLimits
from schemas.codec import default_codec

LIMITS = TimeLimits.from_seconds(300, 604_800)
RECEIVED = 1_763_701_200_000


def raw(**overrides: Any) -> dict[str, Any]:
    reading: dict[str, Any] = {
        "device_id": "dev-1",
        "ts": RECEIVED - 5_000,
        "received_at_ms": RECEIVED,
        "seq": 42,
        "metrics": [
            {"name": "temperature", "value": 70.7, "unit": "degF"},
            {"name": "humidity", "value": 41.5, "unit": None},
            {"name": "count", "value": 7, "unit": "pieces"},
        ],
    }
    reading.update(overrides)
    return reading


def test_good_reading_becomes_an_enriched_reading_with_units_as_sent() -> None:
    result = validate_reading(raw(), LIMITS)
    assert result.rejects == []
    assert result.records == [
        {
            "device_id": "dev-1",
            "ts_us": (RECEIVED - 5_000) * 1000,
            "received_at_ms": RECEIVED,
            "seq": 42,
            "fields": {"temperature": 70.7, "humidity": 41.5, "count": 7.0},
            "units": {"temperature": "degF", "count": "pieces"},
            "tags": {},
        }
    ]
    assert isinstance(result.records[0]["fields"]["count"], float)
    # and it is a valid EnrichedReading for the next topic
    codec = default_codec()
    encoded = codec.encode("EnrichedReading", result.records[0])
    assert codec.decode(encoded) == result.records[0]


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
        None,
        "42",
        '{"value": 1}',
        "[1, 2]",
        "1e400",
        "\x00\x1b[31m" * 1000,
        10**400,  # not representable as a double (never reaches Avro, but still handled)
    ],
)
def test_a_bad_metric_is_rejected_alone_and_the_rest_goes_on(bad: object) -> None:
    reading = raw(
        metrics=[
            {"name": "temperature", "value": 21.5, "unit": "degC"},
            {"name": "broken", "value": bad, "unit": "V"},
        ]
    )
    result = validate_reading(reading, LIMITS)
    assert [(r.reason, r.metric) for r in result.rejects] == [
        (Reason.VALUE_NOT_A_NUMBER, "broken")
    ]
    assert len(result.rejects[0].detail) < 300
    [record] = result.records
    assert record["fields"] == {"temperature": 21.5}
    assert record["units"] == {"temperature": "degC"}


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("yesterday", Reason.INVALID_TIMESTAMP),
        ('{"a": 1}', Reason.INVALID_TIMESTAMP),
        (RECEIVED + 301_000, Reason.TIMESTAMP_IN_FUTURE),
        (RECEIVED - 8 * 86_400_000, Reason.TIMESTAMP_TOO_OLD),
    ],
)
def test_bad_time_rejects_the_whole_reading_once(ts: object, reason: Reason) -> None:
    result = validate_reading(raw(ts=ts, seq="x", metrics=[{"name": "a", "value": "b"}]), LIMITS)
    assert result.records == []
    assert [(r.reason, r.metric) for r in result.rejects] == [(reason, None)]


def test_no_metrics() -> None:
    result = validate_reading(raw(metrics=[]), LIMITS)
    assert result.records == []
    assert [r.reason for r in result.rejects] == [Reason.NO_METRICS]


@pytest.mark.parametrize("seq", ["4.5", '"42"', "true", "[1]", "99999999999999999999999"])
def test_bad_seq_is_dead_lettered_and_the_reading_goes_on_without_it(seq: str) -> None:
    result = validate_reading(raw(seq=seq), LIMITS)
    assert [(r.reason, r.metric) for r in result.rejects] == [(Reason.INVALID_SEQ, None)]
    [record] = result.records
    assert record["seq"] is None
    assert record["fields"]["temperature"] == 70.7


def test_missing_ts_is_the_receive_time_and_missing_seq_is_fine() -> None:
    result = validate_reading(raw(ts=None, seq=None), LIMITS)
    [record] = result.records
    assert record["ts_us"] == RECEIVED * 1000
    assert record["seq"] is None
    assert result.rejects == []


def test_every_metric_rejected_forwards_only_when_seq_is_left() -> None:
    bad = [{"name": "a", "value": math.nan, "unit": None}, {"name": "b", "value": "x"}]
    with_seq = validate_reading(raw(metrics=bad), LIMITS)
    assert len(with_seq.rejects) == 2
    [record] = with_seq.records
    assert record["fields"] == {} and record["seq"] == 42  # loss accounting still counts it
    without_seq = validate_reading(raw(metrics=bad, seq=None), LIMITS)
    assert len(without_seq.rejects) == 2
    assert without_seq.records == []


def test_metric_value_keeps_integers_exact_within_double_range() -> None:
    assert metric_value(2**53) == float(2**53)
    assert metric_value(-0.0) == 0.0
    assert metric_value(1e308) == 1e308
    assert isinstance(metric_value(10**400), str)


@pytest.mark.parametrize(
    "name",
    ["", "   ", "line\nbreak", "tab\there", "nul\x00", "esc\x1b[31m", "c1\x85", "seq", "time",
     "_value", "_field", "x" * 1025, "é" * 513],
)
def test_a_metric_name_no_database_can_store_is_rejected_alone(name: str) -> None:
    reading = raw(
        metrics=[
            {"name": "temperature", "value": 21.5, "unit": "degC"},
            {"name": name, "value": 1.0, "unit": None},
        ]
    )
    result = validate_reading(reading, LIMITS)
    assert [r.reason for r in result.rejects] == [Reason.INVALID_METRIC_NAME]
    assert result.rejects[0].detail
    [record] = result.records
    assert record["fields"] == {"temperature": 21.5}


@pytest.mark.parametrize(
    "name", ["temp erature", "a,b=c", 'quote"d', "back\\slash", "東京", "x" * 1024, "seq2", "t_"]
)
def test_awkward_but_storable_metric_names_pass(name: str) -> None:
    result = validate_reading(raw(metrics=[{"name": name, "value": 1.0, "unit": None}]), LIMITS)
    assert result.rejects == []
    assert result.records[0]["fields"] == {name: 1.0}
