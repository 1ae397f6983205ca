"""Every panel of the chart's two Grafana dashboards, queried on live data from a real run.

Grafana itself cannot run here, so each panel's queries are interpolated as Grafana would
(tests/support/grafana.py: variables, `v.timeRangeStart`/`v.timeRangeStop`/`v.windowPeriod`,
`$__rate_interval`/`$__range`) over the dashboard's default time range, then sent to the real
InfluxDB (`/api/v2/query`, Flux) and the real Prometheus (`/api/v1/query_range`, or
`/api/v1/query` for instant targets), after a short run of the real pipeline (ingest,
processors, InfluxDB sink) fed by the simulator with bad messages among the good ones. The
run also has:

- one device whose `seq` skips two readings, so "Readings lost (seq gaps)" has a value (2);
- a second InfluxDB sink, in its own consumer group, pointed at an address where no InfluxDB
  listens, so "Sink write failures and retries" has series (its writes fail and are retried).

Prometheus scrapes the run's processes through the stack's registered-targets directory
(`Prometheus.register_targets`): they listen on free ports, not the default ones.

Targets that cannot have data here (asserted to run without error, and allowed to be empty):

- "Consumer lag (records)" target B and "Consumer lag" target B, `kafka_consumergroup_lag`:
  that series comes from kafka_exporter, which the stack does not run (the panels' target A,
  the sinks' own lag gauge, must have data).
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException

from stack.local_stack import LocalStack
from tests.support.components import Component, free_port
from tests.support.grafana import (
    Selection,
    TimeRange,
    data_panels,
    flux_query,
    load_dashboard,
    options_after_regex,
    prom_query,
    variable,
)
from tests.support.pipeline import Publisher, RunningPipeline, metric_value, points_for, wait_for

DATA = "telemetry-data.json"
HEALTH = "pipeline-health.json"

#: The stack's Prometheus scrapes every 5 s (stack/prometheus.py); a Grafana data source for it
#: would say so ("Scrape interval"), and Grafana derives `$__rate_interval` from it.
SCRAPE_INTERVAL_MS = 5_000

#: Targets that cannot have data on the local stack (see the module docstring).
MAY_BE_EMPTY = {
    ("Consumer lag (records)", "B"): "kafka_consumergroup_lag needs kafka_exporter",
    ("Consumer lag", "B"): "kafka_consumergroup_lag needs kafka_exporter",
}

GAP_SEQS = (1, 2, 5)  # 3 and 4 never arrive: 2 readings lost


@dataclass
class LiveRun:
    stack: LocalStack
    prefix: str
    devices: list[str]
    gap_device: str
    readings_stored: int
    #: readings missing between each device's lowest and highest stored seq
    readings_lost: int
    started: datetime
    influx: InfluxDBClient
    flux_cache: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def time_range(self, dashboard: dict[str, Any]) -> TimeRange:
        return TimeRange.relative(dashboard["time"])

    def flux(self, query: str, what: str) -> list[dict[str, Any]]:
        """Rows of every table (`table` says which), as Grafana's Flux data source reads them."""
        if query not in self.flux_cache:
            try:
                tables = self.influx.query_api().query(query)
            except ApiException as exc:
                raise AssertionError(
                    f"{what}: InfluxDB refused the query: {exc.body}\n{query}"
                ) from exc
            self.flux_cache[query] = [dict(r.values) for t in tables for r in t.records]
        return self.flux_cache[query]

    def promql(self, expr: str, instant: bool, step_s: float, tr: TimeRange, what: str) -> Any:
        base = self.stack.prometheus.address
        if instant:
            url = f"{base}/api/v1/query?" + urllib.parse.urlencode(
                {"query": expr, "time": tr.stop.timestamp()}
            )
        else:
            # Grafana aligns the range to the step.
            start = math.floor(tr.start.timestamp() / step_s) * step_s
            end = math.floor(tr.stop.timestamp() / step_s) * step_s
            url = f"{base}/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": expr, "start": start, "end": end, "step": step_s}
            )
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{what}: Prometheus refused {expr}: {exc.read()!r}") from exc
        assert body["status"] == "success", f"{what}: {body}"
        return body["data"]


def _prometheus_value(stack: LocalStack, expr: str) -> float | None:
    url = f"{stack.prometheus.address}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return sum(float(r["value"][1]) for r in result) if result else None


@pytest.fixture(scope="module")
def run(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveRun]:
    prometheus = local_stack.prometheus
    if not prometheus.watches_registered_targets():
        pytest.skip(
            f"the stack's Prometheus does not read {prometheus.targets_dir} (started before "
            "registered targets existed): `telemetry stack down` and `up` to restart it"
        )
    log_dir = tmp_path_factory.mktemp("dashboards")
    run_id = uuid.uuid4().hex[:8]
    prefix = f"dash{run_id}-"
    started = datetime.now(UTC)
    pipeline = RunningPipeline(local_stack, stack_env, log_dir).start()
    dead_port = free_port()
    (log_dir / "dead").mkdir()
    dead_sink = Component(
        ["sink", "influxdb"],
        {
            **stack_env,
            "TELEMETRY_LOG_FORMAT": "json",
            "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT": str(dead_port),
            "TELEMETRY_INFLUXDB_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
            "TELEMETRY_SINK_INFLUXDB_GROUP_ID": f"dashboards-dead-sink-{run_id}",
            "TELEMETRY_SINK_RETRY_MAX_S": "2",
            "TELEMETRY_SINK_SHUTDOWN_TIMEOUT_S": "1",  # its last batch can never be written
        },
        log_dir / "dead",
        dead_port,
    )
    summary_path = log_dir / "simulate-summary.json"
    sim_port = free_port()
    simulator = Component(
        ["simulate", "--devices", "6", "--rate", "40", "--bad-ratio", "0.2",
         "--duration", "15", "--ts-format", "epoch_ms", "--device-prefix", prefix,
         "--summary", str(summary_path), "--health-port", str(sim_port)],
        {**stack_env, "TELEMETRY_LOG_FORMAT": "json"},
        log_dir,
        sim_port,
    )  # fmt: skip
    targets = f"dashboards-{run_id}"
    influx = InfluxDBClient(
        url=local_stack.influxdb.address,
        token=local_stack.creds.influxdb_token,
        org=local_stack.creds.influxdb_org,
        timeout=60_000,
    )
    publisher = Publisher(local_stack)
    try:
        dead_sink.start()
        components = [pipeline.ingest, pipeline.process, pipeline.sink, dead_sink]
        ports = [c.health_port for c in components if c.health_port is not None]
        prometheus.register_targets(targets, ports, {"run": targets})

        def all_up() -> bool:
            return _prometheus_value(local_stack, f'sum(up{{run="{targets}"}})') == len(ports)

        wait_for(all_up, 30, "Prometheus to scrape the run's processes", pipeline.logs)

        simulator.start(ready_timeout=30)
        gap_device = f"{prefix}gap-0001"
        now_ms = int(time.time() * 1000)
        for i, seq in enumerate(GAP_SEQS):
            reading = {"ts": now_ms - 10_000 + i * 1000, "seq": seq, "metrics": {"humidity": 50.0}}
            publisher.publish(f"devices/{gap_device}/telemetry", json.dumps(reading).encode())
        assert simulator.proc is not None
        assert simulator.proc.wait(timeout=60) == 0, simulator.tail()
        summary = json.loads(summary_path.read_text())
        assert summary["bad_messages"] > 0, summary
        expected = summary["expected_good_points"] + len(GAP_SEQS)

        counts: list[int] = []

        def settled() -> bool:
            """Nearly all expected points are stored and no more arrive (a lost reading is
            not this test's business: test_pipeline_e2e counts exactly)."""
            counts.append(len(points_for(local_stack, prefix.rstrip("-"))))
            return counts[-1] >= 0.95 * expected and counts[-3:] == [counts[-1]] * 3

        wait_for(settled, 60, f"{expected} points of the run in InfluxDB", pipeline.logs)
        stored = points_for(local_stack, prefix.rstrip("-"))
        seqs: dict[str, set[int]] = {}
        for point in stored.values():
            if "seq" in point["fields"]:
                seqs.setdefault(point["device_id"], set()).add(int(point["fields"]["seq"]))
        lost = sum(max(s) - min(s) + 1 - len(s) for s in seqs.values())
        devices = sorted({p["device_id"] for p in stored.values()})

        def scraped_everything() -> bool:
            """Prometheus has the sinks' last counts (written points, failed writes)."""
            written = metric_value(pipeline.sink.metrics(), "telemetry_sink_points_written")
            errors = metric_value(dead_sink.metrics(), "telemetry_sink_write_errors")
            seen = _prometheus_value(
                local_stack,
                f'sum(telemetry_sink_points_written_total{{run="{targets}"}})',
            )
            seen_errors = _prometheus_value(
                local_stack, f'sum(telemetry_sink_write_errors_total{{run="{targets}"}})'
            )
            return errors > 0 and seen == written and (seen_errors or 0) > 0

        wait_for(scraped_everything, 30, "Prometheus to scrape the last counts", pipeline.logs)
        time.sleep(SCRAPE_INTERVAL_MS / 1000 * 2)  # two more samples after the run: rates
        yield LiveRun(local_stack, prefix, devices, gap_device, len(stored), lost, started, influx)
    finally:
        simulator.stop()
        publisher.close()
        prometheus.unregister_targets(targets)
        dead_sink.stop()
        pipeline.stop()
        influx.close()


# --- Telemetry data (InfluxDB, Flux) ---------------------------------------------------------


def _data_variables(run: LiveRun, dash: dict[str, Any]) -> dict[str, Selection]:
    """The run's devices picked in the device variable, every metric ("All") in the field one."""
    bucket = variable(dash, "bucket")["current"]["value"]
    return {
        "bucket": Selection((bucket,)),
        "device_id": Selection(tuple(run.devices)),
        "field": Selection(all_value=variable(dash, "field")["allValue"]),
    }


def _variable_options(run: LiveRun, dash: dict[str, Any], name: str) -> list[str]:
    var = variable(dash, name)
    tr = run.time_range(dash)
    query = flux_query(var["query"], _data_variables(run, dash), tr)
    rows = run.flux(query, f"variable {name}")
    return options_after_regex([str(r["_value"]) for r in rows], var.get("regex", ""))


def test_data_dashboard_variables_list_the_runs_devices_and_metrics(run: LiveRun) -> None:
    dash = load_dashboard(DATA)
    devices = _variable_options(run, dash, "device_id")
    assert set(run.devices) <= set(devices), f"variable device_id: {devices}"
    fields = _variable_options(run, dash, "field")
    assert "humidity" in fields, f"variable field: {fields}"
    assert "seq" not in fields, "variable field: its regex must hide seq"


def _panel(dash: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = [p for p in data_panels(dash) if p["title"] == title]
    return panel


def _rows(run: LiveRun, title: str, **selected: Selection) -> list[dict[str, Any]]:
    dash = load_dashboard(DATA)
    panel = _panel(dash, title)
    (target,) = panel["targets"]
    query = flux_query(
        target["query"], {**_data_variables(run, dash), **selected}, run.time_range(dash)
    )
    return run.flux(query, f"panel {title!r}")


def _one_value(rows: list[dict[str, Any]], title: str, column: str) -> Any:
    assert len(rows) == 1, f"panel {title!r} (stat) wants one value, got {len(rows)} rows: {rows}"
    value = rows[0].get(column)
    assert isinstance(value, int | float), f"panel {title!r}: no number in {column}: {rows[0]}"
    return value


def test_devices_reporting(run: LiveRun) -> None:
    title = "Devices reporting"
    rows = _rows(run, title)
    # Grafana's stat shows the numeric field: count(column: "device_id") puts it there.
    assert _one_value(rows, title, "device_id") == len(run.devices), f"panel {title!r}: {rows}"


def test_readings_in_range(run: LiveRun) -> None:
    title = "Readings in range"
    rows = _rows(run, title)
    assert _one_value(rows, title, "_value") == run.readings_stored, f"panel {title!r}: {rows}"


def test_readings_lost_counts_the_seq_gaps(run: LiveRun) -> None:
    title = "Readings lost (seq gaps)"
    lost = len(range(GAP_SEQS[0], GAP_SEQS[-1] + 1)) - len(GAP_SEQS)
    rows = _rows(run, title)
    value = _one_value(rows, title, "_value")
    assert value == run.readings_lost >= lost, f"panel {title!r}, all devices: {rows}"
    rows = _rows(run, title, device_id=Selection((run.gap_device,)))
    assert _one_value(rows, title, "_value") == lost, f"panel {title!r}, gap device: {rows}"


def test_newest_reading(run: LiveRun) -> None:
    title = "Newest reading"
    rows = _rows(run, title)
    newest_ms = _one_value(rows, title, "_value")
    low = run.started.timestamp() * 1000 - 60_000
    assert low <= newest_ms <= time.time() * 1000 + 60_000, f"panel {title!r}: {rows}"


def test_latest_values_table(run: LiveRun) -> None:
    title = "Latest values"
    rows = _rows(run, title)
    assert rows, f"panel {title!r} (table) has no rows"
    for r in rows:
        assert {"device_id", "metric", "value", "time"} <= set(r), f"panel {title!r}: {r}"
    assert {r["device_id"] for r in rows} == set(run.devices), f"panel {title!r}"
    assert "seq" not in {r["metric"] for r in rows}, f"panel {title!r} shows seq"
    assert len({r["table"] for r in rows}) == 1, f"panel {title!r}: one table, not one per series"


def test_readings_per_device_bar_gauge(run: LiveRun) -> None:
    title = "Readings per device"
    rows = _rows(run, title)
    assert {r["device_id"] for r in rows} == set(run.devices), f"panel {title!r}: {rows}"
    assert all(isinstance(r.get("readings"), int) for r in rows), f"panel {title!r}: {rows}"
    assert sum(r["readings"] for r in rows) == run.readings_stored, f"panel {title!r}"


def _series(rows: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    tables: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        tables.setdefault(r["table"], []).append(r)
    return tables


def _assert_time_series(rows: list[dict[str, Any]], title: str) -> dict[Any, list[Any]]:
    series = _series(rows)
    assert series, f"panel {title!r} (time series) has no series"
    for table, points in series.items():
        assert all(isinstance(p.get("_time"), datetime) for p in points), (title, table)
        assert all(isinstance(p.get("_value"), int | float) for p in points), (title, table)
    return series


def test_readings_per_device_over_time(run: LiveRun) -> None:
    title = "Readings per device over time"
    series = _assert_time_series(_rows(run, title), title)
    by_device = {points[0]["device_id"]: points for points in series.values()}
    assert set(by_device) == set(run.devices), f"panel {title!r}: one series per device"
    total = sum(p["_value"] for points in series.values() for p in points)
    assert total == run.readings_stored, f"panel {title!r}: readings over all windows"


def test_one_panel_per_metric(run: LiveRun) -> None:
    """The repeated "$field" panel: one clone per option of the field variable."""
    dash = load_dashboard(DATA)
    fields = _variable_options(run, dash, "field")
    latest = {(r["device_id"], r["metric"]) for r in _rows(run, "Latest values")}
    for name in fields:
        title = f"$field = {name}"
        rows = _rows(run, "$field", field=Selection((name,)))
        sent_by = {device for device, metric in latest if metric == name}
        if not sent_by:
            continue  # the metric of other devices in the bucket: ran without error
        series = _assert_time_series(rows, title)
        assert {p[0]["device_id"] for p in series.values()} == sent_by, f"panel {title!r}"
        assert {p[0]["_field"] for p in series.values()} == {name}, f"panel {title!r}"


def test_every_data_panel_is_checked() -> None:
    titles = {p["title"] for p in data_panels(load_dashboard(DATA))}
    assert titles == {
        "Devices reporting", "Readings in range", "Readings lost (seq gaps)", "Newest reading",
        "Latest values", "Readings per device", "Readings per device over time", "$field",
    }  # fmt: skip


# --- Pipeline health (Prometheus) ------------------------------------------------------------


HEALTH_PANELS = [
    (p["title"], t["refId"]) for p in data_panels(load_dashboard(HEALTH)) for t in p["targets"]
]


@pytest.mark.parametrize(
    ("title", "ref_id"), HEALTH_PANELS, ids=[f"{t}/{r}" for t, r in HEALTH_PANELS]
)
def test_health_panel_target_has_data(run: LiveRun, title: str, ref_id: str) -> None:
    dash = load_dashboard(HEALTH)
    (panel,) = [p for p in data_panels(dash) if p["title"] == title]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref_id]
    what = f"panel {title!r} target {ref_id}"
    tr = run.time_range(dash)
    q = prom_query(target["expr"], {}, tr, SCRAPE_INTERVAL_MS, bool(target.get("instant")))
    data = run.promql(q.expr, q.instant, q.step_s, tr, what)
    result = data["result"]
    if (title, ref_id) in MAY_BE_EMPTY:
        return  # it ran without error; see MAY_BE_EMPTY for why it may be empty
    assert result, f"{what}: no series for {q.expr}"
    if panel["type"] == "table":
        assert data["resultType"] == "vector", f"{what}: a table wants an instant vector"
        values = [float(r["value"][1]) for r in result]
        assert any(v > 0 for v in values), f"{what}: rows but all zero: {result}"
        return
    assert data["resultType"] == "matrix", what
    finite = [float(v) for s in result for _, v in s["values"] if math.isfinite(float(v))]
    assert finite, f"{what}: series without a single finite point: {result}"
    if panel["type"] == "stat":
        assert len(result) == 1, f"{what}: a stat of one sum wants one series, got {result}"
    if "rate(" in q.expr and "histogram_quantile" not in q.expr:
        assert max(finite) > 0, f"{what}: the run's traffic does not show: {q.expr}"


def test_rejects_show_in_the_rejects_panels(run: LiveRun) -> None:
    """The bad messages are counted where the dashboard looks (not just `or vector(0)`)."""
    dash = load_dashboard(HEALTH)
    tr = run.time_range(dash)
    (panel,) = [p for p in data_panels(dash) if p["title"] == "Rejected by stage and reason"]
    q = prom_query(panel["targets"][0]["expr"], {}, tr, SCRAPE_INTERVAL_MS, False)
    result = run.promql(q.expr, False, q.step_s, tr, "Rejected by stage and reason")["result"]
    labels = {(s["metric"].get("stage"), s["metric"].get("reason")) for s in result}
    assert "ingest" in {stage for stage, _ in labels}, (
        f"panel 'Rejected by stage and reason': {labels}"
    )
    assert len({reason for _, reason in labels if reason}) >= 2, labels


def test_every_health_target_is_checked() -> None:
    assert len(HEALTH_PANELS) == sum(len(p["targets"]) for p in data_panels(load_dashboard(HEALTH)))
    assert len({t for t, _ in HEALTH_PANELS}) == 14
