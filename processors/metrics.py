"""Prometheus metrics of the processors (rejects are counted by plumbing.dead_letters)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READINGS_IN = Counter(
    "telemetry_processor_records_in_total",
    "Kafka records an agent took from its input topic.",
    ["agent"],
)
READINGS_OUT = Counter(
    "telemetry_processor_records_out_total",
    "Records an agent forwarded (not counting dead letters), confirmed by Kafka.",
    ["agent"],
)
LATENCY = Histogram(
    "telemetry_processor_latency_seconds",
    "From taking a record to Kafka confirming everything it produced (the record is then "
    "safe to commit).",
    ["agent"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "telemetry_processor_in_flight",
    "Records an agent took whose output Kafka has not confirmed yet.",
    ["agent"],
)
DELIVERY_FAILURES = Counter(
    "telemetry_processor_delivery_failures_total",
    "Outputs Kafka refused for good; the worker then exits without committing.",
    ["agent"],
)
