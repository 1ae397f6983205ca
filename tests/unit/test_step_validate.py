"""The validate step: whole-reading rejects, per-metric rejects, bad seq, the output shape."""

from __future__ import annotations

import math
from typing import Any

import pytest

from plumbing.reasons import Reason
from processors.steps.validate import MetricNames, metric_value, validate_reading
from processors.timestamps import TimeLimits
from schemas.codec import default_codec
from sinks.line_protocol import UnrepresentableError, escape_field_key

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
    assert [(r.reason, r.metric) for r in result.rejects] == [(Reason.INVALID_SEQ, "seq")]
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
    ("name", "reason"),
    [
        ("", Reason.INVALID_METRIC_NAME),
        ("   ", Reason.INVALID_METRIC_NAME),
        ("line\nbreak", Reason.INVALID_METRIC_NAME),
        ("tab\there", Reason.INVALID_METRIC_NAME),
        ("nul\x00", Reason.INVALID_METRIC_NAME),
        ("esc\x1b[31m", Reason.INVALID_METRIC_NAME),
        ("c1\x85", Reason.INVALID_METRIC_NAME),
        ("seq", Reason.INVALID_METRIC_NAME),
        ("time", Reason.INVALID_METRIC_NAME),
        ("_value", Reason.INVALID_METRIC_NAME),
        ("_field", Reason.INVALID_METRIC_NAME),
        ("lone \ud800 surrogate", Reason.INVALID_METRIC_NAME),
        # what line protocol cannot carry as a field key (sinks/line_protocol.py)
        ("trailing\\", Reason.INVALID_METRIC_NAME),
        ("three\\\\\\", Reason.INVALID_METRIC_NAME),
        ("odd\\,comma", Reason.INVALID_METRIC_NAME),
        ("odd\\\\\\=equals", Reason.INVALID_METRIC_NAME),
        ("odd\\ space", Reason.INVALID_METRIC_NAME),
        # invisible: bidi controls, zero-width characters, the BOM
        ("temp\u202eerature", Reason.INVISIBLE_CHARACTER),
        ("\u2066temperature\u2069", Reason.INVISIBLE_CHARACTER),
        ("\u200btemperature", Reason.INVISIBLE_CHARACTER),
        ("temper\u200dature", Reason.INVISIBLE_CHARACTER),
        ("\ufefftemperature", Reason.INVISIBLE_CHARACTER),
        ("\u200e", Reason.INVISIBLE_CHARACTER),
        ("x" * 1025, Reason.METRIC_NAME_TOO_LONG),
        ("é" * 513, Reason.METRIC_NAME_TOO_LONG),
    ],
)
def test_a_metric_name_no_sink_can_store_is_rejected_alone(name: str, reason: Reason) -> None:
    reading = raw(
        metrics=[
            {"name": "temperature", "value": 21.5, "unit": "degC"},
            {"name": name, "value": 1.0, "unit": None},
        ]
    )
    result = validate_reading(reading, LIMITS)
    assert [(r.reason, r.metric) for r in result.rejects] == [(reason, name[:200])]
    assert len(result.rejects[0].detail) < 600
    for bad in ("\n", "\u202e", "\u200b", "\ufeff"):  # the detail shows them escaped
        assert bad not in result.rejects[0].detail
    [record] = result.records
    assert record["fields"] == {"temperature": 21.5}


@pytest.mark.parametrize(
    "name",
    ["temp erature", "a,b=c", 'quote"d', "back\\slash", "東京", "x" * 1024, "é" * 512, "seq2",
     "t_", "even\\\\,comma", "even\\\\\\\\ space", "mid\\dle", "\\lead", "🚀 rocket",
     "arabic \u0627\u0644"],
)
def test_awkward_but_storable_metric_names_pass(name: str) -> None:
    result = validate_reading(raw(metrics=[{"name": name, "value": 1.0, "unit": None}]), LIMITS)
    assert result.rejects == []
    assert result.records[0]["fields"] == {name: 1.0}


def test_metric_names_are_stored_in_nfc() -> None:
    nfd, nfc = "cafe\u0301", "caf\u00e9"
    result = validate_reading(raw(metrics=[{"name": nfd, "value": 1.0, "unit": "degC"}]), LIMITS)
    assert result.rejects == []
    [record] = result.records
    assert record["fields"] == {nfc: 1.0} and record["units"] == {nfc: "degC"}


@pytest.mark.parametrize("first", ["cafe\u0301", "caf\u00e9"])
def test_two_metrics_one_name_in_nfc_keep_the_first_and_refuse_the_other(first: str) -> None:
    other = "caf\u00e9" if first != "caf\u00e9" else "cafe\u0301"
    result = validate_reading(raw(metrics=[
        {"name": first, "value": 1.0, "unit": None},
        {"name": "humidity", "value": 40.0, "unit": None},
        {"name": other, "value": 2.0, "unit": None},
    ]), LIMITS)
    assert [(r.reason, r.metric) for r in result.rejects] == [
        (Reason.INVALID_METRIC_NAME, other)]
    assert "NFC" in result.rejects[0].detail
    assert result.records[0]["fields"] == {"caf\u00e9": 1.0, "humidity": 40.0}


def test_a_thousand_bad_metric_names_are_each_refused_and_the_good_ones_go_on() -> None:
    bad: list[dict[str, Any]] = [
        *({"name": f"m{i}" + "\\" * (2 * i + 1), "value": 1.0} for i in range(250)),
        *({"name": f"m{i}\u202e", "value": 1.0} for i in range(250)),
        *({"name": f"_m{i}", "value": 1.0} for i in range(250)),
        *({"name": f"m{i}" + "x" * 1024, "value": 1.0} for i in range(250)),
    ]
    good = [{"name": "temperature", "value": 21.5, "unit": "degC"},
            {"name": "humidity", "value": 40.0, "unit": None}]
    result = validate_reading(raw(metrics=[bad[0], good[0], *bad[1:], good[1]]), LIMITS)
    assert len(result.rejects) == 1000
    assert {r.metric for r in result.rejects} == {m["name"][:200] for m in bad}
    assert [r.reason for r in result.rejects].count(Reason.METRIC_NAME_TOO_LONG) == 250
    assert [r.reason for r in result.rejects].count(Reason.INVISIBLE_CHARACTER) == 250
    assert result.records[0]["fields"] == {"temperature": 21.5, "humidity": 40.0}


def test_nan_everywhere_refuses_every_metric_and_keeps_the_seq() -> None:
    metrics = [{"name": f"m{i}", "value": math.nan, "unit": "V"} for i in range(1000)]
    result = validate_reading(raw(metrics=metrics), LIMITS)
    assert [r.reason for r in result.rejects] == [Reason.VALUE_NOT_A_NUMBER] * 1000
    [record] = result.records
    assert record["fields"] == {} and record["seq"] == 42
    assert validate_reading(raw(metrics=metrics, seq=math.nan), LIMITS).records == []


def test_the_name_length_limit_counts_utf8_bytes_of_the_nfc_name() -> None:
    names = MetricNames(max_bytes=10)
    assert names.check("x" * 10) == (None, None)
    assert names.check("é" * 5) == (None, None)  # 10 bytes
    _, refused = names.check("é" * 6)
    assert refused is not None and refused.reason == Reason.METRIC_NAME_TOO_LONG
    assert "12 bytes" in refused.detail
    # 15 bytes as sent, 10 once composed: what is stored is what counts
    assert names.check("e\u0301" * 5) == ("\u00e9" * 5, None)


def test_hostile_names_cannot_grow_the_verdict_cache() -> None:
    names = MetricNames()
    for i in range(20_000):
        names.check(f"name-{i}\\")
        names.check(f"{i}" + "y" * 300)  # longer names are never cached
    info = names._cached.cache_info()
    assert info.currsize <= 4096 and info.hits == 0
    assert names.check("temperature") is names.check("temperature")  # a hit the second time


#: What a field key can be made of that matters to line protocol.
_ALPHABET = ["a", "\\", ",", "=", " ", '"']


def _every_name(max_len: int) -> list[str]:
    names = [""]
    out = []
    for _ in range(max_len):
        names = [n + c for n in names for c in _ALPHABET]
        out.extend(names)
    return out


def test_validate_refuses_exactly_the_names_the_sinks_would_refuse() -> None:
    # validate is the edge, the sinks' check the last line of defence: the same verdict on
    # every name of up to 5 characters over the characters that matter (9,330 names).
    names = MetricNames()
    for name in _every_name(5):
        try:
            escape_field_key(name)
            sink_refuses = False
        except UnrepresentableError:
            sink_refuses = True
        in_nfc, refused = names.verdict(name)
        assert in_nfc is None
        blank_or_reserved = not name.strip() or name.startswith("_")
        assert (refused is not None) == (sink_refuses or blank_or_reserved), name
