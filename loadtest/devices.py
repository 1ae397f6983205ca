"""Simulated devices: what each kind measures, in which units, and values that drift smoothly.

A device keeps its unit choices for its whole life (a real sensor does not switch from degF to
degC between messages), so a run exercises every unit while each series stays plausible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loadtest.units import CANONICAL_UNITS, from_canonical


@dataclass(frozen=True)
class MetricSpec:
    """One measured quantity, in its canonical unit (or as-is when not in the catalog)."""

    name: str
    low: float
    high: float
    #: standard deviation of one drift step, canonical unit
    step: float
    #: unit choices; None = a bare number in the canonical unit
    units: tuple[str | None, ...]
    decimals: int = 2


ENVIRONMENT = "environment"
POWER_METER = "power_meter"
VEHICLE = "vehicle"

#: kind -> metrics, in the order a payload lists them. `power` of a power meter is computed
#: from voltage and current, `energy` integrates power, `heading` is not in the unit catalog
#: (the contract passes such numeric metrics through unchanged).
KINDS: dict[str, tuple[MetricSpec, ...]] = {
    ENVIRONMENT: (
        MetricSpec("temperature", 12.0, 32.0, 0.05, (None, "degC", "degF")),
        MetricSpec("humidity", 20.0, 80.0, 0.2, (None, "percent")),
        MetricSpec("pressure", 98.0, 104.0, 0.02, (None, "kPa", "Pa", "hPa"), decimals=3),
    ),
    POWER_METER: (
        MetricSpec("voltage", 224.0, 236.0, 0.2, (None, "V", "mV")),
        MetricSpec("current", 0.5, 16.0, 0.1, (None, "A", "mA"), decimals=3),
        MetricSpec("power", 0.0, 4000.0, 0.0, (None, "W", "kW"), decimals=4),
        MetricSpec("energy", 0.0, 1e9, 0.0, (None, "kWh", "Wh"), decimals=4),
    ),
    VEHICLE: (
        MetricSpec("speed", 0.0, 33.0, 0.4, (None, "m/s", "km/h", "mph")),
        MetricSpec("heading", 0.0, 360.0, 2.0, (None,), decimals=1),
    ),
}

#: Further metrics a kind reports only when a fixed number of metrics per reading asks for more
#: than its own (`--metrics-per-reading`), so every kind can send the same number. None is in
#: the unit catalog: they pass through the processors unchanged.
EXTRA_METRICS: dict[str, tuple[MetricSpec, ...]] = {
    ENVIRONMENT: (MetricSpec("co2", 400.0, 2000.0, 5.0, (None,), decimals=0),),
    POWER_METER: (),
    VEHICLE: (
        MetricSpec("battery_level", 20.0, 100.0, 0.05, (None,), decimals=1),
        MetricSpec("engine_rpm", 700.0, 3500.0, 20.0, (None,), decimals=0),
    ),
}
#: The largest fixed number of metrics per reading every kind can report.
MAX_METRICS_PER_READING = min(len(KINDS[k]) + len(EXTRA_METRICS[k]) for k in KINDS)

KIND_CODES = {ENVIRONMENT: "env", POWER_METER: "pwr", VEHICLE: "veh"}
MODELS = {
    ENVIRONMENT: "EnviroSense ES-200",
    POWER_METER: "PowerWatch PM3",
    VEHICLE: "FleetTrack VT-9",
}
#: Site names with a space, a comma and an `=`, so tags exercise line-protocol escaping.
SITES = ("Lyon Plant", "Austin, TX", "Osaka 2", "Rotterdam=Dock 7")
FIRMWARES = ("1.4.2", "1.5.0", "2.0.1-rc3")


@dataclass
class SimulatedDevice:
    device_id: str
    kind: str
    tags: dict[str, str]
    #: metric -> unit the device reports in; None = bare canonical number
    units: dict[str, str | None]
    #: metric -> current value in the canonical unit
    state: dict[str, float] = field(default_factory=dict)
    #: seq of the last reading expected to be stored (0 = none yet)
    seq: int = 0
    #: ts (epoch ms) of the last reading sent with a valid timestamp
    last_ts_ms: int = 0
    #: metrics beyond the kind's own (EXTRA_METRICS), drifting like the others
    extra_specs: tuple[MetricSpec, ...] = ()
    #: how many metrics a reading carries; 0 = the kind's own
    reported: int = 0

    @property
    def all_specs(self) -> tuple[MetricSpec, ...]:
        """Everything the device tracks (a power meter's power needs voltage and current)."""
        return KINDS[self.kind] + self.extra_specs

    @property
    def specs(self) -> tuple[MetricSpec, ...]:
        """The metrics a reading of this device carries, in payload order."""
        specs = self.all_specs
        return specs[: self.reported] if self.reported else specs

    def advance(self, rng: random.Random, dt_s: float) -> dict[str, float]:
        """Moves every value one smooth step (mean-reverting random walk); canonical units."""
        for spec in self.all_specs:
            if spec.name == "power":
                self.state["power"] = self.state["voltage"] * self.state["current"]
            elif spec.name == "energy":
                self.state["energy"] += self.state["power"] * dt_s / 3_600_000.0
            elif spec.name == "heading":
                self.state["heading"] = (self.state["heading"] + rng.gauss(0, spec.step)) % 360.0
            else:
                mid = (spec.low + spec.high) / 2
                value = self.state[spec.name]
                value += rng.gauss(0, spec.step) + 0.01 * (mid - value)
                self.state[spec.name] = min(spec.high, max(spec.low, value))
        return dict(self.state)

    def render(self, values: dict[str, float]) -> dict[str, Any]:
        """The `metrics` object: bare numbers or {"value", "unit"} in the device's units."""
        out: dict[str, Any] = {}
        for spec in self.specs:
            unit = self.units[spec.name]
            if unit is None:
                out[spec.name] = round(values[spec.name], spec.decimals)
            else:
                value = from_canonical(values[spec.name], unit)
                out[spec.name] = {"value": round(value, spec.decimals + 1), "unit": unit}
        return out

    def metadata(self) -> dict[str, str]:
        return dict(self.tags)


def make_devices(
    count: int, prefix: str, rng: random.Random, metrics_per_reading: int = 0
) -> list[SimulatedDevice]:
    """`count` devices cycling through the kinds, ids like `<prefix>env-0001`.

    `metrics_per_reading` (1..MAX_METRICS_PER_READING, 0 = each kind's own) fixes how many
    metrics every reading carries: a kind's own first, then its EXTRA_METRICS.
    """
    if not 0 <= metrics_per_reading <= MAX_METRICS_PER_READING:
        raise ValueError(f"metrics per reading must be 0..{MAX_METRICS_PER_READING}")
    kinds = list(KINDS)
    devices = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        device_id = f"{prefix}{KIND_CODES[kind]}-{i + 1:04d}"
        tags = {
            "site": SITES[rng.randrange(len(SITES))],
            "line": f"line-{rng.randint(1, 6)}",
            "model": MODELS[kind],
            "firmware": FIRMWARES[rng.randrange(len(FIRMWARES))],
            "kind": kind,
        }
        units = {spec.name: rng.choice(spec.units) for spec in KINDS[kind]}
        state: dict[str, float] = {}
        for spec in KINDS[kind]:
            if spec.name == "energy":
                state["energy"] = rng.uniform(100.0, 5000.0)
            elif spec.name == "power":
                state["power"] = state["voltage"] * state["current"]
            else:
                state[spec.name] = rng.uniform(spec.low, spec.high)
        devices.append(SimulatedDevice(device_id, kind, tags, units, state))
    if metrics_per_reading:
        # drawn after every device's own choices, so the base devices of a seed stay the same
        for device in devices:
            extra = EXTRA_METRICS[device.kind][: max(0, metrics_per_reading - len(device.specs))]
            for spec in extra:
                device.units[spec.name] = rng.choice(spec.units)
                device.state[spec.name] = rng.uniform(spec.low, spec.high)
            device.extra_specs = extra
            device.reported = metrics_per_reading
    return devices


def canonical_unit(metric: str) -> str | None:
    return CANONICAL_UNITS.get(metric)
