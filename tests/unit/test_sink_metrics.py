"""The sink's batch histogram exposes exactly what prometheus_client's Histogram would for the
same values (dashboards and the benchmark read it as a histogram)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sinks.metrics import BatchHistogram

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def exposition(registry: CollectorRegistry, name: str) -> list[str]:
    return [line.replace(name, "h") for line in generate_latest(registry).decode().splitlines()
            if line.startswith(name) and "_created" not in line]


def test_same_buckets_count_and_sum_as_a_histogram() -> None:
    registry = CollectorRegistry()
    ours = BatchHistogram("ours_seconds", "doc", "sink", BUCKETS, registry=registry)
    theirs = Histogram("theirs_seconds", "doc", ["sink"], buckets=BUCKETS, registry=registry)
    batches = [[0.0, 0.05, 0.051, 7.0], [], [10.0, 10.5, 4000.0, 0.25]]
    for values in batches:
        ours.observe_many("influxdb", values)
        for value in values:
            theirs.labels("influxdb").observe(value)
    ours.observe_many("tdengine", [1.0])
    theirs.labels("tdengine").observe(1.0)
    got = exposition(registry, "ours_seconds")
    assert got == exposition(registry, "theirs_seconds")
    assert 'h_bucket{le="0.05",sink="influxdb"} 2.0' in got
    assert 'h_count{sink="influxdb"} 8.0' in got


def test_nothing_observed_exposes_no_series() -> None:
    registry = CollectorRegistry()
    BatchHistogram("idle_seconds", "doc", "sink", BUCKETS, registry=registry)
    assert exposition(registry, "idle_seconds") == []
