"""Threshold alert rules: read and checked once at start from a YAML file.

A rule says: for the devices it selects, when `metric` (a field of the EnrichedReading, in
its canonical unit) is above (or below) a threshold continuously for a while, by the
readings' own time, an alert fires; when it stops holding, the alert resolves
(processors/agents/alerts.py runs them). processors/alert_rules.example.yaml shows every key.

A wrong file is an AlertRulesError naming the file, the rule (`rules[<index>]` and its
name) and what to fix. It is a PluginError, so the worker stops at start with that message,
exactly like a step or agent name that cannot be used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from processors.plugins import PluginError

#: The keys a rule may have (anything else is most likely a typo, such as `abvoe`).
RULE_KEYS = ("name", "metric", "select", "above", "below", "for")
SELECT_KEYS = ("devices", "tags")

#: Duration units of `for`, in microseconds (the unit of a reading's ts_us).
_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000,
            "d": 86_400_000_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")


class AlertRulesError(PluginError):
    """The alert rules file is wrong; the message says where and what to fix."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule, as checked. `devices` None selects every device; `tags` must all equal."""

    name: str
    metric: str
    condition: Literal["above", "below"]
    threshold: float
    for_us: int
    devices: frozenset[str] | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def selects(self, device_id: str, tags: Mapping[str, str]) -> bool:
        """Whether the rule applies to a reading of this device with these tags."""
        if self.devices is not None and device_id not in self.devices:
            return False
        # A plain loop: measured at about half the cost of all(<generator>) per reading.
        for name, value in self.tags:  # noqa: SIM110
            if tags.get(name) != value:
                return False
        return True

    def holds(self, value: float) -> bool:
        """Whether the condition is true for this value (strictly above or below)."""
        return value > self.threshold if self.condition == "above" else value < self.threshold


def parse_duration(value: Any) -> int:
    """`for` as microseconds: seconds as a number, or `500ms`, `30s`, `5m`, `1h30m`, `2d`.

    Raises ValueError with what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{value!r} is not a duration of 0 seconds or more")
        return round(seconds * 1_000_000)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _DURATION.fullmatch(text):
            return round(sum(float(number) * _UNIT_US[unit]
                             for number, unit in _DURATION_PART.findall(text)))
    raise ValueError(
        f"{value!r} is not a duration: write seconds as a number (30, 0.5) or a number with "
        "a unit ms, s, m, h, d (500ms, 30s, 5m, 1h30m)"
    )


def load_rules(path: str | Path) -> list[AlertRule]:
    """Reads and checks a rules file; raises AlertRulesError saying what to fix."""
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertRulesError(f"cannot read the alert rules file {file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise AlertRulesError(f"{file} is not valid YAML: {exc}") from None
    return parse_rules(document, str(file))


def parse_rules(document: Any, source: str) -> list[AlertRule]:
    """The rules of a parsed document (`source` names it in errors)."""
    if not isinstance(document, Mapping) or "rules" not in document:
        raise AlertRulesError(
            f"{source}: the file is a mapping with a `rules:` list, e.g.\n"
            "rules:\n  - name: boiler-hot\n    metric: temperature\n    above: 90\n"
            "    for: 30s"
        )
    extra = sorted(str(k) for k in document if k != "rules")
    if extra:
        raise AlertRulesError(f"{source}: unknown top-level key(s) {', '.join(extra)}; "
                              "the file has only `rules:`")
    items = document["rules"]
    if not isinstance(items, list) or not items:
        raise AlertRulesError(
            f"{source}: `rules` must be a non-empty list of rules (with none the alerts agent "
            "has nothing to do: add a rule, or drop `alerts` from TELEMETRY_PROCESS_AGENTS)"
        )
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        rule = _parse_rule(item, f"{source}: rules[{index}]")
        if rule.name in seen:
            raise AlertRulesError(
                f"{source}: rules[{index}] ({rule.name!r}) has the name of rules"
                f"[{seen[rule.name]}]; names must be unique (alerts and their state are "
                "kept by rule name)"
            )
        seen[rule.name] = index
        rules.append(rule)
    return rules


def _parse_rule(item: Any, where: str) -> AlertRule:
    if not isinstance(item, Mapping):
        raise AlertRulesError(f"{where}: a rule is a mapping with the keys "
                              f"{', '.join(RULE_KEYS)}; got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AlertRulesError(f"{where}: `name` is missing or not a non-empty string; give "
                              "every rule a unique name (quote it if YAML reads it as a number)")
    where = f"{where} ({name!r})"
    unknown = sorted(str(k) for k in item if k not in RULE_KEYS)
    if unknown:
        raise AlertRulesError(f"{where}: unknown key(s) {', '.join(unknown)}; a rule has "
                              f"{', '.join(RULE_KEYS)}")
    metric = item.get("metric")
    if not isinstance(metric, str) or not metric:
        raise AlertRulesError(f"{where}: `metric` must name a field of the reading, e.g. "
                              "`metric: temperature` (compared in its canonical unit, degC)")
    given = [c for c in ("above", "below") if c in item]
    if len(given) != 1:
        raise AlertRulesError(
            f"{where}: give exactly one of `above:` or `below:` (got "
            f"{' and '.join(given) or 'neither'}); for a band, write two rules"
        )
    condition: Literal["above", "below"] = "above" if given[0] == "above" else "below"
    threshold = item[condition]
    if (isinstance(threshold, bool) or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)):
        raise AlertRulesError(
            f"{where}: `{condition}` must be a finite number in the metric's canonical unit, "
            f"got {threshold!r} (YAML reads 1e3 as text: write 1000 or 1.0e+3)"
        )
    try:
        for_us = parse_duration(item.get("for", 0))
    except ValueError as exc:
        raise AlertRulesError(f"{where}: `for`: {exc}") from None
    devices, tags = _parse_select(item.get("select"), where, "select" in item)
    return AlertRule(name, metric, condition, float(threshold), for_us, devices, tags)


def _parse_select(
    select: Any, where: str, present: bool
) -> tuple[frozenset[str] | None, tuple[tuple[str, str], ...]]:
    if not present:
        return None, ()
    if not isinstance(select, Mapping) or not select:
        raise AlertRulesError(
            f"{where}: `select` is a mapping with `devices:` (a device id or a list) and/or "
            "`tags:` (tag: value, all must equal); leave `select` out to match every device"
        )
    unknown = sorted(str(k) for k in select if k not in SELECT_KEYS)
    if unknown:
        raise AlertRulesError(f"{where}: unknown key(s) in `select`: {', '.join(unknown)}; "
                              f"it has {', '.join(SELECT_KEYS)}")
    devices: frozenset[str] | None = None
    if "devices" in select:
        given = select["devices"]
        ids = [given] if isinstance(given, str) else given
        if (not isinstance(ids, list) or not ids
                or not all(isinstance(d, str) and d for d in ids)):
            raise AlertRulesError(
                f"{where}: `select.devices` is a device id or a non-empty list of them, as "
                f"text (quote ids YAML would read as numbers); got {given!r}"
            )
        devices = frozenset(ids)
    tags: tuple[tuple[str, str], ...] = ()
    if "tags" in select:
        given = select["tags"]
        if (not isinstance(given, Mapping) or not given
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items())):
            raise AlertRulesError(
                f"{where}: `select.tags` is a non-empty mapping of tag name to text value, "
                f"e.g. `site: plant-1` (quote values YAML would read as numbers or booleans: "
                f'`line: "3"`); got {given!r}'
            )
        tags = tuple(sorted(given.items()))
    return devices, tags
