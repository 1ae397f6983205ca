"""Reading the components' /metrics for the live view: real exposition text, tolerant of gaps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from loadtest import metric_names as names
from loadtest.live_view import SINK, ComponentStatus, ViewSnapshot, render_line, render_screen
from loadtest.scraped_metrics import RateTracker, by_label, parse_metrics, total


def exposition() -> str:
    """/metrics text as ingest, processors and sink expose it (the same client library)."""
    reg = CollectorRegistry()
    received = Counter(
        "telemetry_ingest_messages_received", "MQTT messages.", ["kind"], registry=reg
    )
    received.labels(kind="telemetry").inc(1200)
    received.labels(kind="metadata").inc(50)
    Counter("telemetry_ingest_bytes_received", "bytes", registry=reg).inc(9_999_999)
    Histogram("telemetry_ingest_delivery_seconds", "latency", registry=reg).observe(0.2)
    written = Counter("telemetry_sink_points_written_total", "points", ["sink"], registry=reg)
    written.labels(sink="influxdb").inc(3000)
    processed = Counter("telemetry_processor_records_in_total", "in", ["agent"], registry=reg)
    processed.labels(agent="validate").inc(2500)
    processed.labels(agent="normalize").inc(2400)
    rejected = Counter("telemetry_rejected_total", "rejects", ["stage", "reason"], registry=reg)
    rejected.labels(stage="ingest", reason="invalid_json").inc(3)
    rejected.labels(stage="validate", reason="invalid_json").inc(1)
    rejected.labels(stage="normalize", reason="unknown_unit").inc(7)
    Gauge("telemetry_sink_paused", "paused", registry=reg).set(0)
    return generate_latest(reg).decode()


def test_figures_come_from_the_matching_families_and_labels() -> None:
    families = parse_metrics(exposition())
    # metadata messages and the bytes counter do not count as telemetry messages in
    assert total(families, names.INGEST_RECEIVED) == 1200
    assert total(families, names.SINK_POINTS_WRITTEN) == 3000
    assert total(families, names.PROCESSOR_IN) == 2500
    assert by_label(families, names.REJECTED, names.REJECTED_REASON_LABEL) == {
        "invalid_json": 4,
        "unknown_unit": 7,
    }


def test_missing_names_are_none_not_errors() -> None:
    families = parse_metrics(exposition())
    assert total(families, names.SIMULATOR_SENT) is None
    assert total({}, names.INGEST_RECEIVED) is None
    assert by_label({}, names.REJECTED, "reason") == {}


def test_junk_text_reads_as_nothing() -> None:
    for junk in ("", "<html>502 Bad Gateway</html>", "metric{label=unterminated 1\n", "\x00\xff"):
        families = parse_metrics(junk)
        assert total(families, names.INGEST_RECEIVED) is None


def test_a_renamed_metric_is_found_by_its_words() -> None:
    text = (
        "# TYPE my_ingest_msgs_received_total counter\n"
        'my_ingest_msgs_received_total{kind="telemetry"} 42.0\n'
        "# TYPE sink_influx_points_written counter\n"
        "sink_influx_points_written_total 17.0\n"
    )
    families = parse_metrics(text)
    assert total(families, names.INGEST_RECEIVED) == 42
    assert total(families, names.SINK_POINTS_WRITTEN) == 17


def test_rates_between_observations_and_after_a_restart() -> None:
    rates = RateTracker()
    assert rates.rate("in", 100, now=10.0) is None  # first observation: no rate yet
    assert rates.rate("in", 300, now=12.0) == 100.0
    assert rates.rate("in", 40, now=14.0) == 20.0  # counter reset: counts from zero
    assert rates.rate("in", None, now=16.0) is None


def test_the_view_shows_na_for_what_is_missing() -> None:
    snap = ViewSnapshot(
        elapsed_s=3725,
        sent_total=5000,
        sent_rate=199.5,
        in_total=None,
        stored_total=12000,
        stored_rate=480.25,
        stored_source=SINK,
        dead_letters={"invalid_json": 3, "unknown_unit": 12},
        lag={"telemetry-processors": 1234, "telemetry-sink-influxdb": None},
        components=[
            ComponentStatus("ingest", "running", 11, 52.5, 3.2),
            ComponentStatus("process", "exited (1)", 12),
        ],
    )
    screen = render_screen(snap, "title")
    assert "01:02:05" in screen
    assert "MQTT in (ingest)" in screen and "n/a" in screen
    assert "points written (sink)" in screen and "480.2" in screen and "12,000" in screen
    assert screen.index("unknown_unit") < screen.index("invalid_json")  # biggest first
    assert "1,234" in screen
    line = render_line(snap)
    assert line.startswith("t=3725s sent/s=199.5 in/s=n/a")
    assert "written=12000" in line and "dlq=15" in line
    assert "telemetry-processors=1234" in line and "telemetry-sink-influxdb=n/a" in line
    assert line.endswith("DOWN=process")
    empty = render_line(ViewSnapshot(elapsed_s=0))
    assert "dlq=n/a" in empty and "lag[n/a]" in empty


def test_the_sink_latency_histogram_over_a_run() -> None:
    from loadtest.benchmark import sink_latency
    from loadtest.scraped_metrics import bucket_delta, bucket_quantile, histogram_buckets

    reg = CollectorRegistry()
    hist = Histogram(
        "telemetry_sink_end_to_end_seconds", "e2e", ["sink"], registry=reg,
        buckets=(0.1, 0.5, 1, 5, 10),
    )  # fmt: skip
    for _ in range(10):
        hist.labels(sink="influxdb").observe(0.05)  # before the run
    before = histogram_buckets(generate_latest(reg).decode(), names.SINK_END_TO_END)
    assert before is not None and before[0.1] == 10
    for v in [0.3] * 50 + [0.8] * 40 + [3.0] * 9 + [60.0]:
        hist.labels(sink="influxdb").observe(v)
    after = histogram_buckets(generate_latest(reg).decode(), names.SINK_END_TO_END)
    assert after is not None
    delta = bucket_delta(after, before)
    assert delta[float("inf")] == 100 and delta[0.1] == 0
    assert bucket_quantile(delta, 0.5) == 0.5
    assert bucket_quantile(delta, 0.9) == 1.0
    assert bucket_quantile(delta, 0.99) == 5.0
    assert bucket_quantile(delta, 1.0) == float("inf")
    assert bucket_quantile({}, 0.5) is None

    report = sink_latency(before, after)
    assert (report["count"], report["p50_le"], report["p90_le"], report["p99_le"]) == (
        100, 500.0, 1000.0, 5000.0,
    )  # fmt: skip
    assert "note" in sink_latency(None, None)
    assert histogram_buckets("junk {", names.SINK_END_TO_END) is None
    assert histogram_buckets(exposition(), names.SINK_END_TO_END) is None


def test_processed_readings_are_the_one_hop_agent_s_when_it_exists() -> None:
    reg = CollectorRegistry()
    processed = Counter("telemetry_processor_records_in_total", "in", ["agent"], registry=reg)
    processed.labels(agent="device_metadata").inc(50)
    processed.labels(agent="readings").inc(4000)
    families = parse_metrics(generate_latest(reg).decode())
    assert total(families, names.PROCESSOR_IN) == 4000  # not the metadata agent's records
    # the four-agent layout (first agent: validate) is still read
    assert total(parse_metrics(exposition()), names.PROCESSOR_IN) == 2500
