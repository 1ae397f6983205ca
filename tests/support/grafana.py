"""What Grafana does to a panel's query before its data source runs it, for the chart's dashboards.

Grafana cannot run here (its licence is excluded), so the tests that run the dashboards' queries
against the real InfluxDB and Prometheus interpolate them the way Grafana documents it:

- template variables: `${name}`, `$name`, `${name:regex}` (a multi-value selection becomes
  `(a|b)` with each value regex-escaped; "All" with a custom all value is that value, unescaped);
- the panel interval: time range / max data points, rounded to Grafana's "nice" steps, and at
  least the data source's minimum interval (for Prometheus its scrape interval);
- Flux macros: `v.timeRangeStart`, `v.timeRangeStop` (the range's ends, RFC 3339) and
  `v.windowPeriod` (the panel interval);
- PromQL built-ins: `$__interval`, `$__interval_ms`, `$__range` (`<seconds>s`), `$__range_s`,
  `$__range_ms`, and `$__rate_interval` = max(`$__interval` + scrape interval,
  4 x scrape interval).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "helm" / "telemetry-pipeline" / "dashboards"

#: Grafana's default max data points is the panel's width in pixels; a half-width panel on a
#: common screen is about this wide.
MAX_DATA_POINTS = 1000

#: Grafana's interval rounding (the upper bound of each step in ms, and the step it rounds to).
_NICE_STEPS_MS = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
    (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000),
    (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000),
    (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (27_000_000, 21_600_000), (39_600_000, 43_200_000),
    (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)  # fmt: skip


def load_dashboard(name: str) -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / name).read_text()))


def round_interval(ms: float) -> int:
    for bound, step in _NICE_STEPS_MS:
        if ms < bound:
            return step
    return 31_536_000_000  # a year


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    stop: datetime

    @classmethod
    def relative(cls, spec: Mapping[str, str], now: datetime | None = None) -> TimeRange:
        """A dashboard's `time` ({"from": "now-6h", "to": "now"}), now evaluated."""
        now = now or datetime.now(UTC)
        return cls(_relative(spec["from"], now), _relative(spec["to"], now))

    @property
    def ms(self) -> int:
        return int((self.stop - self.start) / timedelta(milliseconds=1))

    def interval_ms(self, min_interval_ms: int = 1) -> int:
        """Grafana's `$__interval` for this range (before any data source minimum)."""
        return max(round_interval(self.ms / MAX_DATA_POINTS), min_interval_ms)


_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def _relative(text: str, now: datetime) -> datetime:
    if text == "now":
        return now
    m = re.fullmatch(r"now-(\d+)([smhdw])", text)
    if not m:
        raise ValueError(f"time {text!r}: only now and now-<n><s|m|h|d|w> are handled")
    return now - timedelta(milliseconds=int(m.group(1)) * _UNITS_MS[m.group(2)])


def regex_escape(value: str) -> str:
    """Grafana's regex escaping of a variable value (its `:regex` format)."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


@dataclass(frozen=True)
class Selection:
    """A variable's current value: `values`, or "All" (`all_value`, e.g. the custom `.*`)."""

    values: tuple[str, ...] = ()
    all_value: str | None = None

    def format(self, fmt: str | None) -> str:
        if self.all_value is not None:
            return self.all_value  # a custom all value is used as it is
        if fmt == "regex":
            escaped = [regex_escape(v) for v in self.values]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        if fmt in (None, "raw", "text"):
            return ",".join(self.values) if len(self.values) != 1 else self.values[0]
        raise ValueError(f"variable format {fmt!r} is not handled here")


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def interpolate(text: str, variables: Mapping[str, Selection]) -> str:
    """Replaces the dashboard's own variables; unknown ones (built-ins) are left alone."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name not in variables:
            return m.group(0)
        return variables[name].format(m.group(2))

    return _VARIABLE.sub(sub, text)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flux_query(
    query: str, variables: Mapping[str, Selection], time_range: TimeRange, min_interval_ms: int = 1
) -> str:
    """A Flux target's query as Grafana's InfluxDB data source sends it."""
    text = interpolate(query, variables)
    window = time_range.interval_ms(min_interval_ms)
    for macro, value in (
        ("v.timeRangeStart", _rfc3339(time_range.start)),
        ("v.timeRangeStop", _rfc3339(time_range.stop)),
        ("v.windowPeriod", f"{window}ms"),
    ):
        text = re.sub(re.escape(macro) + r"\b", value, text)
    leftover = re.findall(r"\$\{?\w+|\bv\.\w+", text)
    assert not leftover, f"not interpolated: {leftover} in {text}"
    return text


@dataclass(frozen=True)
class PromQuery:
    expr: str
    instant: bool
    step_s: float


def prom_query(
    expr: str,
    variables: Mapping[str, Selection],
    time_range: TimeRange,
    scrape_interval_ms: int,
    instant: bool,
) -> PromQuery:
    """A PromQL target's expression as Grafana's Prometheus data source sends it."""
    text = interpolate(expr, variables)
    interval = time_range.interval_ms(scrape_interval_ms)
    rate_interval = max(interval + scrape_interval_ms, 4 * scrape_interval_ms)
    range_s = time_range.ms // 1000
    builtins = {
        "__rate_interval": f"{rate_interval}ms",
        "__interval_ms": str(interval),
        "__interval": f"{interval}ms",
        "__range_ms": str(time_range.ms),
        "__range_s": str(range_s),
        "__range": f"{range_s}s",
    }
    for name, value in builtins.items():  # longest names first: $__range_s before $__range
        text = text.replace("${" + name + "}", value).replace("$" + name, value)
    leftover = re.findall(r"\$\{?\w+", text)
    assert not leftover, f"not interpolated: {leftover} in {text}"
    return PromQuery(text, instant, interval / 1000)


def data_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel with queries (rows' nested panels included), in the dashboard's order."""
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            yield from (p for p in panel.get("panels", []) if p.get("targets"))
        elif panel.get("targets"):
            yield panel


def variable(dashboard: Mapping[str, Any], name: str) -> dict[str, Any]:
    (found,) = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    return dict(found)


def js_regex(pattern: str) -> re.Pattern[str]:
    """A variable's `regex` (`/.../flags`, JavaScript) as a Python pattern."""
    m = re.fullmatch(r"/(.*)/([gimsuy]*)", pattern)
    if not m:
        return re.compile(pattern)
    return re.compile(m.group(1), re.IGNORECASE if "i" in m.group(2) else 0)


def options_after_regex(values: Sequence[str], pattern: str) -> list[str]:
    """A query variable's options: the query's values the variable's regex keeps."""
    if not pattern:
        return list(values)
    rx = js_regex(pattern)
    return [v for v in values if rx.search(v)]
