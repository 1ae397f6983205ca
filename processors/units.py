"""The unit catalog, loaded once into (scale, offset) per (metric, unit), and normalization.

The catalog is data (`unit_catalog.yaml`); factors are exact rationals rounded once at load,
so a conversion costs one multiply and one add and is within a couple of ulps of exact.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from plumbing.reasons import Reason
from processors.steps import Reject, StepResult, worth_forwarding
from processors.timestamps import short_repr

BUILTIN_CATALOG = Path(__file__).with_name("unit_catalog.yaml")

_RATIONAL_TOKEN = re.compile(r"\s*([*/])\s*")


class CatalogError(ValueError):
    """The catalog file is wrong; the message says where and what to fix."""


@dataclass(frozen=True)
class Conversion:
    """How one accepted unit of one metric becomes the canonical unit."""

    quantity: str
    canonical: str
    scale: float
    offset: float
    minimum: float | None
    maximum: float | None
    exact_scale: Fraction
    exact_offset: Fraction


def exact_rational(text: object, where: str) -> Fraction:
    """A number, or decimal numbers joined by `*` and `/`, as an exact Fraction."""
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise CatalogError(f"{where}: {text!r} is not a number or a rational like '5/9'")
    parts = _RATIONAL_TOKEN.split(str(text).strip())
    try:
        value = Fraction(parts[0])
        for op, operand in zip(parts[1::2], parts[2::2], strict=True):
            number = Fraction(operand)
            value = value * number if op == "*" else value / number
    except (ValueError, ZeroDivisionError) as exc:
        raise CatalogError(f"{where}: {text!r} is not an exact rational: {exc}") from None
    return value


class UnitCatalog:
    """Canonical units, accepted units and physical limits, precomputed for the hot path."""

    def __init__(self, document: Mapping[str, Any], source: str = "<catalog>") -> None:
        self.source = source
        quantities = document.get("quantities")
        metrics = document.get("metrics")
        if not isinstance(quantities, Mapping) or not isinstance(metrics, Mapping):
            raise CatalogError(f"{source}: needs the mappings `quantities` and `metrics`")
        #: quantity -> unit -> Conversion (aliases included)
        self.units: dict[str, dict[str, Conversion]] = {}
        #: quantity -> its canonical unit
        self.canonical: dict[str, str] = {}
        #: every accepted unit -> its quantity
        self.unit_quantity: dict[str, str] = {}
        for name, spec in quantities.items():
            self.units[name] = self._load_quantity(str(name), spec)
            self.canonical[name] = spec["canonical"]
        for quantity, units in self.units.items():
            for unit in units:
                if unit in self.unit_quantity:
                    raise CatalogError(
                        f"{source}: unit {unit!r} is in both {self.unit_quantity[unit]!r} and "
                        f"{quantity!r}; a unit must belong to one quantity"
                    )
                self.unit_quantity[unit] = quantity
        #: metric -> quantity
        self.metric_quantity: dict[str, str] = {}
        for metric, quantity in metrics.items():
            if quantity not in self.units:
                raise CatalogError(
                    f"{source}: metric {metric!r} names unknown quantity {quantity!r}"
                )
            self.metric_quantity[str(metric)] = quantity
        #: (metric, unit or None) -> Conversion: the hot-path lookup
        self.conversions: dict[tuple[str, str | None], Conversion] = {}
        for metric, quantity in self.metric_quantity.items():
            units = self.units[quantity]
            for unit, conversion in units.items():
                self.conversions[(metric, unit)] = conversion
            self.conversions[(metric, None)] = units[self.canonical[quantity]]

    def _load_quantity(self, name: str, spec: Any) -> dict[str, Conversion]:
        where = f"{self.source}: quantities.{name}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("canonical"), str):
            raise CatalogError(f"{where}: needs `canonical: <unit>`")
        canonical: str = spec["canonical"]
        minimum = self._limit(spec.get("minimum"), f"{where}.minimum")
        maximum = self._limit(spec.get("maximum"), f"{where}.maximum")
        if minimum is not None and maximum is not None and minimum > maximum:
            raise CatalogError(f"{where}: minimum {minimum} is above maximum {maximum}")
        listed = spec.get("units") or {}
        aliases = spec.get("aliases") or {}
        if not isinstance(listed, Mapping) or not isinstance(aliases, Mapping):
            raise CatalogError(f"{where}: `units` and `aliases` are mappings")
        units: dict[str, Conversion] = {}
        for unit, factors in {canonical: {}, **listed}.items():
            factors = factors or {}
            if not isinstance(factors, Mapping) or set(factors) - {"scale", "offset"}:
                raise CatalogError(f"{where}.units.{unit}: give only `scale` and `offset`")
            scale = exact_rational(factors.get("scale", 1), f"{where}.units.{unit}.scale")
            offset = exact_rational(factors.get("offset", 0), f"{where}.units.{unit}.offset")
            if scale == 0:
                raise CatalogError(f"{where}.units.{unit}.scale: must not be 0")
            if unit == canonical and (scale != 1 or offset != 0):
                raise CatalogError(f"{where}: the canonical unit {unit!r} converts 1:1")
            units[str(unit)] = Conversion(
                quantity=name,
                canonical=canonical,
                scale=float(scale),
                offset=float(offset),
                minimum=minimum,
                maximum=maximum,
                exact_scale=scale,
                exact_offset=offset,
            )
        for alias, target in aliases.items():
            if target not in units:
                raise CatalogError(f"{where}.aliases.{alias}: {target!r} is not a unit here")
            if alias in units:
                raise CatalogError(f"{where}.aliases.{alias}: already a unit")
            units[str(alias)] = units[target]
        return units

    @staticmethod
    def _limit(value: Any, where: str) -> float | None:
        if value is None:
            return None
        limit = float(exact_rational(value, where))
        if not math.isfinite(limit):
            raise CatalogError(f"{where}: must be finite")
        return limit

    @classmethod
    def load(cls, path: str | Path | None = None) -> UnitCatalog:
        """Reads a YAML or JSON catalog file; the built-in one by default."""
        file = Path(path) if path else BUILTIN_CATALOG
        try:
            text = file.read_text(encoding="utf-8")
            document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise CatalogError(f"cannot read unit catalog {file}: {exc}") from None
        if not isinstance(document, Mapping):
            raise CatalogError(f"{file}: the catalog is a mapping with quantities and metrics")
        return cls(document, str(file))

    def normalize(self, reading: dict[str, Any]) -> StepResult:
        """Converts every catalog metric of a validated reading to its canonical unit."""
        result = StepResult()
        fields: dict[str, float] = {}
        units: dict[str, str] = {}
        sent_units: dict[str, str] = reading.get("units") or {}
        conversions = self.conversions
        for name, value in reading["fields"].items():
            unit = sent_units.get(name)
            conversion = conversions.get((name, unit))
            if conversion is None:
                reject = self._not_convertible(name, unit, value)
                if reject is not None:
                    result.rejects.append(reject)
                    continue
                fields[name] = value
                if unit is not None:
                    units[name] = unit
                continue
            canonical = value * conversion.scale + conversion.offset
            if not math.isfinite(canonical):
                result.rejects.append(
                    Reject(
                        Reason.VALUE_NOT_A_NUMBER,
                        f"{value!r} {unit or conversion.canonical} is not a finite number "
                        f"in {conversion.canonical}",
                        metric=name,
                    )
                )
                continue
            low, high = conversion.minimum, conversion.maximum
            if (low is not None and canonical < low) or (high is not None and canonical > high):
                result.rejects.append(
                    Reject(
                        Reason.PHYSICALLY_IMPOSSIBLE,
                        f"{name} {value!r} {unit or conversion.canonical} is "
                        f"{canonical!r} {conversion.canonical}, outside the possible "
                        f"{_range(low, high)} {conversion.canonical}",
                        metric=name,
                    )
                )
                continue
            fields[name] = canonical
            units[name] = conversion.canonical
        out = {**reading, "fields": fields, "units": units}
        if worth_forwarding(out):
            result.records.append(out)
        return result

    def _not_convertible(self, name: str, unit: str | None, value: object) -> Reject | None:
        """Why a (metric, unit) has no conversion; None when the metric passes through."""
        if not isinstance(value, float) or not math.isfinite(value):
            return Reject(
                Reason.VALUE_NOT_A_NUMBER, f"value {short_repr(value)} is not a finite number", name
            )
        quantity = self.metric_quantity.get(name)
        if quantity is None:
            return None
        canonical = self.canonical[quantity]
        other = self.unit_quantity.get(unit) if unit is not None else None
        if other is not None:
            return Reject(
                Reason.WRONG_DIMENSION,
                f"{name} is a {quantity} but {unit!r} is a unit of {other}; send "
                f"{canonical} or one of {self.accepted(quantity)}",
                metric=name,
            )
        return Reject(
            Reason.UNKNOWN_UNIT,
            f"unit {short_repr(unit)} of {name} is not in the unit catalog; send {canonical} "
            f"or one of {self.accepted(quantity)}",
            metric=name,
        )

    def accepted(self, quantity: str) -> str:
        return ", ".join(sorted(self.units[quantity]))


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low!r}..{high!r}"
    return f">= {low!r}" if low is not None else f"<= {high!r}"
