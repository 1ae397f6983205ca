"""The dew point example: Magnus formula against published psychrometric values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from processors.steps.dew_point import derive_dew_point, dew_point_c


@pytest.mark.parametrize(
    ("temperature", "humidity", "published"),
    [
        # dew point tables (e.g. the US National Weather Service calculator), 0.1 degC steps
        (20.0, 50.0, 9.3),
        (25.0, 60.0, 16.7),
        (30.0, 80.0, 26.2),
        (35.0, 30.0, 14.8),
        (0.0, 50.0, -9.2),
        (-10.0, 70.0, -14.4),
    ],
)
def test_known_values(temperature: float, humidity: float, published: float) -> None:
    value = dew_point_c(temperature, humidity)
    assert value is not None
    assert abs(value - published) <= 0.1


@pytest.mark.parametrize("temperature", [-40.0, -5.5, 0.0, 21.5, 60.0])
def test_saturated_air_has_its_own_temperature_as_dew_point(temperature: float) -> None:
    value = dew_point_c(temperature, 100.0)
    assert value is not None
    assert math.isclose(value, temperature, rel_tol=1e-12, abs_tol=1e-12)


def test_dew_point_never_exceeds_temperature_and_falls_with_humidity() -> None:
    previous = math.inf
    for humidity in [100.0, 90.0, 50.0, 10.0, 1.0, 0.5]:
        value = dew_point_c(25.0, humidity)
        assert value is not None and value <= 25.0 and value < previous
        previous = value


@pytest.mark.parametrize(
    ("temperature", "humidity"),
    [
        (20.0, 0.0), (20.0, -1.0), (-250.0, 50.0),
        # a humidity that small it underflows to 0 (math.log(0) is undefined) or nearly
        (20.0, 5e-324), (20.0, 1e-320), (20.0, 1e-300),
        # outside the formula's -45..60 degC, for the air or for the dew point
        (20.0, 0.01), (-46.0, 100.0), (61.0, 50.0), (-243.12, 50.0), (-243.1, 50.0),
        (20.0, 100.5), (0.0, 4.5e9), (1e308, 50.0), (20.0, 1e308),
        (math.nan, 50.0), (20.0, math.nan), (math.inf, 50.0), (20.0, math.inf),
    ],
)
def test_where_the_formula_gives_no_right_dew_point_there_is_none(
    temperature: float, humidity: float
) -> None:
    assert dew_point_c(temperature, humidity) is None


def test_every_dew_point_given_is_within_the_formula_and_below_the_temperature() -> None:
    temperatures = [-45.0, -44.9, -20.0, 0.0, 19.99, 45.5, 60.0]
    humidities = [5e-324, 1e-10, 0.1, 0.5, 3.7, 50.0, 99.999, 100.0]
    for t in temperatures:
        for h in humidities:
            value = dew_point_c(t, h)
            assert value is None or -45.0 <= value <= t + 1e-9, (t, h, value)


def enriched(fields: dict[str, float]) -> dict[str, Any]:
    return {
        "device_id": "dev-1",
        "ts_us": 1_763_701_200_123_456,
        "received_at_ms": 1_763_701_200_200,
        "seq": 9,
        "fields": fields,
        "units": {name: "x" for name in fields},
        "tags": {"site": "berlin"},
    }


def test_dew_point_is_a_field_of_the_same_reading() -> None:
    reading = enriched({"temperature": 20.0, "humidity": 50.0, "co2": 1.0})
    result = derive_dew_point(reading)
    [record] = result.records
    assert record["fields"].keys() == {"temperature", "humidity", "co2", "dew_point"}
    assert abs(record["fields"]["dew_point"] - 9.3) <= 0.1
    assert record["units"] == {"temperature": "x", "humidity": "x", "co2": "x",
                               "dew_point": "degC"}
    assert (record["device_id"], record["ts_us"], record["tags"], record["seq"]) == (
        "dev-1", 1_763_701_200_123_456, {"site": "berlin"}, 9)
    assert "dew_point" not in reading["fields"]  # the input is not changed in place


@pytest.mark.parametrize(
    "fields",
    [{"temperature": 20.0}, {"humidity": 50.0}, {}, {"temperature": 5.0, "humidity": 0.0},
     {"temperature": 5.0, "humidity": 5e-324}],
)
def test_without_both_inputs_the_reading_goes_on_unchanged(fields: dict[str, float]) -> None:
    reading = enriched(fields)
    result = derive_dew_point(reading)
    assert result.records == [reading] and result.rejects == []
