"""Reads figures out of a component's Prometheus /metrics text, tolerating unknown names."""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from loadtest.metric_names import MetricMatch

log = logging.getLogger("loadtest.metrics")

#: family name -> its value samples (counters' `_total`, gauges, untyped; no `_created`).
Families = dict[str, list[Sample]]


def parse_metrics(text: str) -> Families:
    """Families in `text`; junk text gives what could be read before it (maybe nothing)."""
    out: Families = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.type not in ("counter", "gauge", "untyped", "unknown"):
                continue
            wanted = {family.name, family.name + "_total"}
            samples = [s for s in family.samples if s.name in wanted]
            if samples:
                out[family.name] = samples
    except (ValueError, TypeError, IndexError) as exc:
        log.debug("unreadable /metrics text", extra={"error": str(exc)})
    return out


def find_match(
    families: Families, matches: Iterable[MetricMatch]
) -> tuple[str, MetricMatch] | None:
    """The first family (shortest name on ties) matched by the first matching alternative.

    An alternative with label values (`where`) matches only a family that has such samples,
    so the next alternative can name other label values of the same family.
    """
    for match in matches:
        hits = sorted((n for n in families if match.matches(n)), key=lambda n: (len(n), n))
        for name in hits:
            if not match.where or _samples(families, (name, match)):
                return name, match
    return None


def _samples(families: Families, found: tuple[str, MetricMatch]) -> list[Sample]:
    name, match = found
    return [s for s in families[name] if all(s.labels.get(k, v) == v for k, v in match.where)]


def total(families: Families, matches: Iterable[MetricMatch]) -> float | None:
    """Sum over the label sets of the matched family; None when nothing matches."""
    found = find_match(families, matches)
    if found is None:
        return None
    return float(sum(s.value for s in _samples(families, found)))


def by_label(families: Families, matches: Iterable[MetricMatch], label: str) -> dict[str, float]:
    """Sum of the matched family grouped by one label (e.g. reason)."""
    found = find_match(families, matches)
    out: dict[str, float] = {}
    if found is None:
        return out
    for s in _samples(families, found):
        key = s.labels.get(label, "")
        out[key] = out.get(key, 0.0) + float(s.value)
    return out


def histogram_buckets(text: str, matches: Iterable[MetricMatch]) -> dict[float, float] | None:
    """Cumulative bucket counts (upper bound -> count) of the first matching histogram, summed
    over its label sets; None when no histogram matches."""
    try:
        hists = {
            f.name: f.samples for f in text_string_to_metric_families(text) if f.type == "histogram"
        }
    except (ValueError, TypeError, IndexError):
        return None
    for match in matches:
        names = sorted((n for n in hists if match.matches(n)), key=lambda n: (len(n), n))
        if names:
            out: dict[float, float] = {}
            for s in hists[names[0]]:
                if s.name.endswith("_bucket") and "le" in s.labels:
                    le = float(s.labels["le"])
                    out[le] = out.get(le, 0.0) + float(s.value)
            return out
    return None


def bucket_delta(
    after: dict[float, float], before: dict[float, float] | None
) -> dict[float, float]:
    """What was observed between two scrapes of one histogram."""
    before = before or {}
    return {le: max(0.0, n - before.get(le, 0.0)) for le, n in after.items()}


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile; inf beyond the last finite bucket;
    None without observations."""
    if not buckets:
        return None
    ordered = sorted(buckets.items())
    count = ordered[-1][1]
    if count <= 0:
        return None
    for le, cumulative in ordered:
        if cumulative >= q * count:
            return le
    return float("inf")


def fetch_metrics_text(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
            return str(resp.read().decode("utf-8", "replace"))
    except OSError:
        return None


def fetch_metrics(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> Families | None:
    """A component's parsed /metrics, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
            return parse_metrics(resp.read().decode("utf-8", "replace"))
    except OSError:
        return None


class RateTracker:
    """Per-second rate of counters between two successive observations."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, value: float | None, now: float | None = None) -> float | None:
        if value is None:
            return None
        now = time.monotonic() if now is None else now
        previous = self._last.get(key)
        self._last[key] = (now, value)
        if previous is None or now <= previous[0]:
            return None
        # a restarted component resets its counters: count from zero again
        delta = value - previous[1] if value >= previous[1] else value
        return delta / (now - previous[0])
