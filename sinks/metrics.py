"""Prometheus metrics of the sinks; the `sink` label is the destination (influxdb, tdengine)."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString


class BatchHistogram:
    """A histogram with one label, observed a batch of values at a time.

    prometheus_client's `Histogram.observe` takes locks and walks the buckets for each value
    (~0.5-2 us); a batch of 5000 points would pay that 5000 times. This counts a batch's
    values into buckets first and merges them once. Exposed like any histogram
    (`_bucket{le=...}`, `_count`, `_sum`).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self._bounds = [*sorted(buckets), math.inf]
        self._lock = threading.Lock()
        self._series: dict[str, tuple[list[int], list[float]]] = {}
        if registry is not None:
            registry.register(self)

    def observe_many(self, label_value: str, values: Iterable[float]) -> None:
        self.observe_counted(label_value, ((value, 1) for value in values))

    def observe_counted(self, label_value: str, counted: Iterable[tuple[float, int]]) -> None:
        """Observes each value `count` times (the points of a batch share few values)."""
        bounds = self._bounds
        counts = [0] * len(bounds)
        total = 0.0
        for value, count in counted:
            counts[bisect_left(bounds, value)] += count
            total += value * count
        with self._lock:
            kept, kept_sum = self._series.setdefault(label_value, ([0] * len(bounds), [0.0]))
            for i, count in enumerate(counts):
                kept[i] += count
            kept_sum[0] += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        with self._lock:
            series = {k: (list(c), s[0]) for k, (c, s) in self._series.items()}
        for label_value, (counts, total) in sorted(series.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(self._bounds, counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), float(cumulative)))
            family.add_metric([label_value], buckets, total)
        yield family


POINTS_WRITTEN = Counter(
    "telemetry_sink_points_written_total", "Points the database accepted.", ["sink"]
)
POINTS_REFUSED = Counter(
    "telemetry_sink_points_refused_total",
    "Points the database refused; each went to telemetry.dlq with its reason.",
    ["sink"],
)
BATCHES = Counter("telemetry_sink_batches_total", "Batches written and committed.", ["sink"])
WRITE_SECONDS = Histogram(
    "telemetry_sink_write_duration_seconds",
    "Duration of one write call to the database (a batch, or a half of it while bisecting).",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITE_ERRORS = Counter(
    "telemetry_sink_write_errors_total",
    "Failed write calls: kind=retryable (down, 5xx, 429, timeout) or refused (the data).",
    ["sink", "kind"],
)
RETRIES = Counter(
    "telemetry_sink_write_retries_total",
    "Batches scheduled for another attempt (database or DLQ not accepting).",
    ["sink"],
)
END_TO_END_SECONDS = BatchHistogram(
    "telemetry_sink_end_to_end_seconds",
    "From ingest receiving the MQTT message (received_at_ms) to the database accepting it.",
    "sink",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
PAUSED = Gauge(
    "telemetry_sink_paused",
    "1 while the sink has paused its partitions and retries a batch.",
    ["sink"],
)
COMMIT_FAILURES = Counter(
    "telemetry_sink_commit_failures_total",
    "Offset commits that failed after a write (the records are written again later).",
    ["sink"],
)
CONSUMER_LAG = Gauge(
    "telemetry_sink_consumer_lag",
    "Records in the partition after this consumer's position (from the last fetch).",
    ["sink", "topic", "partition"],
)
