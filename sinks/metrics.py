"""Prometheus metrics of the sinks; the `sink` label is the destination (influxdb, tdengine)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
END_TO_END_SECONDS = Histogram(
    "telemetry_sink_end_to_end_seconds",
    "From ingest receiving the MQTT message (received_at_ms) to the database accepting it.",
    ["sink"],
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
