"""The contract's canonical units, and how the simulator expresses a value in a device's unit.

Kept apart from the processors' catalog on purpose: the simulator is an independent oracle, so
a wrong factor in the pipeline shows up as a mismatch instead of cancelling out.
"""

from __future__ import annotations

#: metric -> canonical unit (DESIGN.md, "Validation and normalization").
CANONICAL_UNITS: dict[str, str] = {
    "temperature": "degC",
    "humidity": "percent",
    "pressure": "kPa",
    "voltage": "V",
    "current": "A",
    "power": "W",
    "energy": "kWh",
    "speed": "m/s",
}

#: unit -> (scale, offset) such that value_in_unit = canonical_value * scale + offset.
FROM_CANONICAL: dict[str, tuple[float, float]] = {
    "degC": (1.0, 0.0),
    "degF": (1.8, 32.0),
    "K": (1.0, 273.15),
    "percent": (1.0, 0.0),
    "kPa": (1.0, 0.0),
    "Pa": (1000.0, 0.0),
    "hPa": (10.0, 0.0),
    "V": (1.0, 0.0),
    "mV": (1000.0, 0.0),
    "A": (1.0, 0.0),
    "mA": (1000.0, 0.0),
    "W": (1.0, 0.0),
    "kW": (0.001, 0.0),
    "kWh": (1.0, 0.0),
    "Wh": (1000.0, 0.0),
    "m/s": (1.0, 0.0),
    "km/h": (3.6, 0.0),
    "mph": (3600.0 / 1609.344, 0.0),
}


def from_canonical(value: float, unit: str) -> float:
    scale, offset = FROM_CANONICAL[unit]
    return value * scale + offset


def to_canonical(value: float, unit: str) -> float:
    scale, offset = FROM_CANONICAL[unit]
    return (value - offset) / scale
