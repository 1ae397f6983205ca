"""The unit catalog: every accepted unit, exactness, wrong dimensions, impossible values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from plumbing.reasons import Reason
from processors.steps import StepResult
from processors.units import CatalogError, UnitCatalog, exact_rational

CATALOG = UnitCatalog.load()

#: An oracle written independently of the catalog: the textbook formula per unit.
DIRECT: dict[tuple[str, str], Callable[[float], float]] = {
    ("temperature", "degF"): lambda f: (f - 32) * 5 / 9,
    ("temperature", "K"): lambda k: k - 273.15,
    ("temperature", "degC"): lambda c: c,
    ("humidity", "percent"): lambda p: p,
    ("pressure", "Pa"): lambda p: p / 1000,
    ("pressure", "hPa"): lambda p: p / 10,
    ("pressure", "bar"): lambda p: p * 100,
    ("pressure", "psi"): lambda p: p * 6.894757293168361,
    ("pressure", "kPa"): lambda p: p,
    ("voltage", "mV"): lambda v: v / 1000,
    ("voltage", "V"): lambda v: v,
    ("current", "mA"): lambda a: a / 1000,
    ("current", "A"): lambda a: a,
    ("power", "kW"): lambda w: w * 1000,
    ("power", "W"): lambda w: w,
    ("energy", "Wh"): lambda e: e / 1000,
    ("energy", "kWh"): lambda e: e,
    ("speed", "km/h"): lambda v: v / 3.6,
    ("speed", "mph"): lambda v: v * 1609.344 / 3600,
    ("speed", "m/s"): lambda v: v,
}
SAMPLES = [-1234.5, -40.0, -1.0, 0.0, 1e-6, 0.3, 1.0, 32.0, 70.7, 98.6, 212.0, 101325.0, 5e9]


def reading(fields: dict[str, float], units: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "device_id": "dev-1",
        "ts_us": 1_763_701_200_000_000,
        "received_at_ms": 1_763_701_200_000,
        "seq": 7,
        "fields": fields,
        "units": units or {},
        "tags": {},
    }


def one(metric: str, value: float, unit: str | None) -> StepResult:
    return CATALOG.normalize(reading({metric: value}, {metric: unit} if unit is not None else {}))


def close(got: float, want: float, *terms: float) -> bool:
    """Within 1e-9 relative of the larger of the result and the terms summed to get it
    (where `a*s + o` crosses zero, the cancellation leaves ~1e-16 of the terms, no more)."""
    scale = max([abs(want), *(abs(t) for t in terms), 1e-300])
    return abs(got - want) <= 1e-9 * scale


def test_the_contract_units_are_all_accepted() -> None:
    for metric, unit in DIRECT:
        assert (metric, unit) in CATALOG.conversions, (metric, unit)
    assert {q: CATALOG.canonical[q] for q in CATALOG.canonical} == {
        "temperature": "degC",
        "humidity": "percent",
        "pressure": "kPa",
        "voltage": "V",
        "current": "A",
        "power": "W",
        "energy": "kWh",
        "speed": "m/s",
    }


@pytest.mark.parametrize(("metric", "unit"), sorted(DIRECT))
def test_conversion_matches_the_textbook_formula(metric: str, unit: str) -> None:
    conversion = CATALOG.conversions[(metric, unit)]
    for value in SAMPLES:
        want = DIRECT[(metric, unit)](value)
        low, high = conversion.minimum, conversion.maximum
        if (low is not None and want < low - 1e-9) or (high is not None and want > high + 1e-9):
            continue
        result = one(metric, value, unit)
        assert result.rejects == [], (value, result.rejects)
        got = result.records[0]["fields"][metric]
        assert close(got, want, value * conversion.scale, conversion.offset), (value, got, want)
        assert result.records[0]["units"][metric] == CATALOG.canonical[conversion.quantity]


def every_accepted_unit() -> list[tuple[str, str]]:
    return sorted((m, u) for (m, u) in CATALOG.conversions if u is not None)


@pytest.mark.parametrize(("metric", "unit"), every_accepted_unit())
def test_every_accepted_unit_is_exact_to_1e9_relative(metric: str, unit: str) -> None:
    """Against exact rational arithmetic of the catalog's own factors."""
    conversion = CATALOG.conversions[(metric, unit)]
    for value in SAMPLES:
        exact = Fraction(value) * conversion.exact_scale + conversion.exact_offset
        got = value * conversion.scale + conversion.offset
        assert close(got, float(exact), value * conversion.scale, conversion.offset), value


def test_degf_factors_are_precomputed_from_exact_fractions() -> None:
    conversion = CATALOG.conversions[("temperature", "degF")]
    assert conversion.scale == float(Fraction(5, 9))
    assert conversion.offset == float(Fraction(-160, 9))
    # the rounding of scale+offset against the direct (f - 32) * 5 / 9
    for f in [-459.67, -40.0, 0.0, 32.0, 50.0, 70.7, 98.6, 212.0, 451.0, 1e6]:
        precomputed = f * conversion.scale + conversion.offset
        direct = (f - 32) * 5 / 9
        assert abs(precomputed - direct) <= 4 * math.ulp(max(abs(direct), 160 / 9)), f
    assert one("temperature", -40.0, "degF").records[0]["fields"]["temperature"] == pytest.approx(
        -40.0, abs=1e-12
    )
    assert one("temperature", 212.0, "degF").records[0]["fields"]["temperature"] == pytest.approx(
        100.0, abs=1e-12
    )


def test_psi_uses_the_exact_definition() -> None:
    conversion = CATALOG.conversions[("pressure", "psi")]
    assert conversion.exact_scale == Fraction("4.4482216152605") / Fraction("0.00064516") / 1000


@pytest.mark.parametrize(
    ("alias", "same_as", "metric"),
    [("C", "degC", "temperature"), ("F", "degF", "temperature"), ("%", "percent", "humidity")],
)
def test_documented_aliases(alias: str, same_as: str, metric: str) -> None:
    assert CATALOG.conversions[(metric, alias)] == CATALOG.conversions[(metric, same_as)]


@pytest.mark.parametrize(
    ("metric", "unit", "other"),
    [
        ("temperature", "kPa", "pressure"),
        ("humidity", "degC", "temperature"),
        ("pressure", "%", "humidity"),
        ("voltage", "mA", "current"),
        ("energy", "kW", "power"),
        ("speed", "K", "temperature"),
    ],
)
def test_wrong_dimension(metric: str, unit: str, other: str) -> None:
    result = CATALOG.normalize(reading({metric: 1.0, "ok": 2.0}, {metric: unit}))
    assert [(r.reason, r.metric) for r in result.rejects] == [(Reason.WRONG_DIMENSION, metric)]
    assert other in result.rejects[0].detail
    assert result.records[0]["fields"] == {"ok": 2.0}


@pytest.mark.parametrize(
    "unit",
    ["furlong", "degf", "DEGF", "k", " degF", "degF ", "", "kpa", "°K", "\x00", "x" * 10_000,
     '{"unit": "degF"}'],
)
def test_unknown_unit(unit: str) -> None:
    result = one("temperature", 20.0, unit)
    assert [(r.reason, r.metric) for r in result.rejects] == [(Reason.UNKNOWN_UNIT, "temperature")]
    assert len(result.rejects[0].detail) < 400
    assert result.records == [{**reading({}), "fields": {}, "units": {}}]  # seq carries it on


@pytest.mark.parametrize(
    ("metric", "value", "unit"),
    [
        ("temperature", -273.16, "degC"),
        ("temperature", -273.150001, None),
        ("temperature", -0.001, "K"),
        ("temperature", -459.68, "degF"),
        ("temperature", -1e308, "degC"),
        ("humidity", -0.1, "percent"),
        ("humidity", 100.0001, None),
        ("humidity", 150.0, "%"),
    ],
)
def test_physically_impossible(metric: str, value: float, unit: str | None) -> None:
    result = one(metric, value, unit)
    assert [(r.reason, r.metric) for r in result.rejects] == [
        (Reason.PHYSICALLY_IMPOSSIBLE, metric)
    ]


@pytest.mark.parametrize(
    ("metric", "value", "unit", "want"),
    [
        ("temperature", 0.0, "K", -273.15),
        ("temperature", -273.15, "degC", -273.15),
        ("humidity", 0.0, "percent", 0.0),
        ("humidity", 100.0, None, 100.0),
    ],
)
def test_the_limits_themselves_are_possible(
    metric: str, value: float, unit: str | None, want: float
) -> None:
    result = one(metric, value, unit)
    assert result.rejects == []
    assert result.records[0]["fields"][metric] == want


def test_no_unit_means_already_canonical() -> None:
    result = CATALOG.normalize(reading({"temperature": 21.5, "pressure": 101.3}))
    assert result.rejects == []
    assert result.records[0]["fields"] == {"temperature": 21.5, "pressure": 101.3}
    assert result.records[0]["units"] == {"temperature": "degC", "pressure": "kPa"}


def test_metrics_not_in_the_catalog_pass_through_unchanged() -> None:
    result = CATALOG.normalize(
        reading({"rpm": 1500.0, "co2": 415.25, "temperature": 50.0}, {"rpm": "1/min",
                                                                        "temperature": "degF"})
    )
    assert result.rejects == []
    [record] = result.records
    assert record["fields"]["rpm"] == 1500.0 and record["fields"]["co2"] == 415.25
    assert record["units"] == {"rpm": "1/min", "temperature": "degC"}
    assert record["fields"]["temperature"] == pytest.approx(10.0, abs=1e-12)
    assert {k: record[k] for k in ("device_id", "ts_us", "seq", "tags")} == {
        "device_id": "dev-1", "ts_us": 1_763_701_200_000_000, "seq": 7, "tags": {}}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("metric", ["temperature", "not_in_catalog"])
def test_non_finite_values_are_rejected_even_after_validation(metric: str, bad: float) -> None:
    result = one(metric, bad, None)
    assert [(r.reason, r.metric) for r in result.rejects] == [(Reason.VALUE_NOT_A_NUMBER, metric)]


def test_overflow_by_conversion_is_rejected() -> None:
    result = one("energy", 1e308, "MWh")
    assert [(r.reason, r.metric) for r in result.rejects] == [(Reason.VALUE_NOT_A_NUMBER, "energy")]


def test_nothing_left_and_no_seq_forwards_nothing() -> None:
    result = CATALOG.normalize({**reading({"temperature": 1.0}, {"temperature": "bogus"}),
                                "seq": None})
    assert result.records == []
    assert len(result.rejects) == 1


@pytest.mark.parametrize(
    ("text", "want"),
    [("5/9", Fraction(5, 9)), ("-32*5/9", Fraction(-160, 9)), (100, Fraction(100)),
     ("0.001", Fraction(1, 1000)), (0.1, Fraction(1, 10)), (" 1000 / 3600 ", Fraction(5, 18))],
)
def test_exact_rationals(text: object, want: Fraction) -> None:
    assert exact_rational(text, "here") == want


@pytest.mark.parametrize("text", ["5/0", "abc", "1//2", "2**3", True, None, [1], "1/"])
def test_bad_rationals(text: object) -> None:
    with pytest.raises(CatalogError, match="here"):
        exact_rational(text, "here")


def base_document() -> dict[str, Any]:
    return {
        "quantities": {
            "temperature": {"canonical": "degC", "minimum": "-273.15",
                            "units": {"degF": {"scale": "5/9", "offset": "-32*5/9"}}},
            "pressure": {"canonical": "kPa", "units": {"Pa": {"scale": "1/1000"}}},
        },
        "metrics": {"temperature": "temperature", "pressure": "pressure"},
    }


def test_catalog_is_data_and_easy_to_extend(tmp_path: Path) -> None:
    document = base_document()
    # one new unit and one new metric, nothing else
    document["quantities"]["pressure"]["units"]["inHg"] = {"scale": "3.386389"}
    document["metrics"]["air_pressure"] = "pressure"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document))
    catalog = UnitCatalog.load(path)
    result = catalog.normalize(reading({"air_pressure": 30.0}, {"air_pressure": "inHg"}))
    assert result.records[0]["fields"]["air_pressure"] == pytest.approx(101.59167, rel=1e-9)
    assert result.records[0]["units"]["air_pressure"] == "kPa"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["quantities"]["pressure"]["units"].update({"degF": {}}), "one quantity"),
        (lambda d: d["metrics"].update({"x": "nope"}), "unknown quantity"),
        (lambda d: d["quantities"]["pressure"]["units"].update({"Pa": {"scale": "0"}}), "not be 0"),
        (lambda d: d["quantities"]["pressure"]["units"].update({"kPa": {"scale": "2"}}), "1:1"),
        (lambda d: d["quantities"]["pressure"].update({"aliases": {"P": "bar"}}), "not a unit"),
        (lambda d: d["quantities"]["pressure"]["units"].update({"bar": {"factor": 100}}),
         "only `scale`"),
        (lambda d: d["quantities"]["temperature"].update({"maximum": "-300"}), "above maximum"),
        (lambda d: d.pop("metrics"), "quantities` and `metrics"),
        (lambda d: d["quantities"]["pressure"].pop("canonical"), "canonical"),
    ],
)
def test_catalog_mistakes_are_reported_with_where_to_fix(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    document = base_document()
    change(document)
    with pytest.raises(CatalogError, match=message):
        UnitCatalog(document, "my-catalog.yaml")


def test_unreadable_catalog_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("quantities: [unclosed")
    with pytest.raises(CatalogError, match="cannot read unit catalog"):
        UnitCatalog.load(bad)
    with pytest.raises(CatalogError, match="cannot read unit catalog"):
        UnitCatalog.load(tmp_path / "missing.yaml")
