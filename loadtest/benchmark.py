"""`telemetry benchmark`: the pipeline at a fixed rate and seed, drained, measured, reported.

Loss is counted in the database, not inferred from metrics: the run's devices share a unique
id prefix, so every point InfluxDB holds for that prefix came from this run.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from loadtest import metric_names as names
from loadtest.consumer_lag import ConsumerLag, start_group_at_end
from loadtest.dead_letter_tally import DeadLetterTally
from loadtest.influx_probe import InfluxProbe
from loadtest.live_view import SINK, render_line
from loadtest.pipeline_monitor import PipelineMonitor
from loadtest.pipeline_processes import Pipeline, StartError
from loadtest.proc_stats import peak_rss_mib
from loadtest.report import percentiles, write_report
from loadtest.run import (
    component_env,
    ensure_stack,
    influx_target,
    install_stop_signals,
    kafka_config,
    say,
)
from loadtest.scraped_metrics import (
    bucket_delta,
    bucket_quantile,
    fetch_metrics,
    fetch_metrics_text,
    histogram_buckets,
    total,
)
from loadtest.settings import RunSettings
from plumbing.topics import ENRICHED
from stack.processes import StackError

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
SAMPLE_EVERY_S = 2.0
LATENCY_POLL_S = 0.5
#: once every device's last reading is stored, how long to wait for lag 0 and a quiet DLQ
SETTLE_S = 30.0


class SeqWatcher:
    """Polls InfluxDB for each run device's newest stored seq.

    A seq seen for the first time gives a latency sample: poll time minus the point's time
    (the device's `ts`, taken when the simulator built the message). It is an upper bound
    whose resolution is the poll interval plus the query time.
    """

    def __init__(self, probe: InfluxProbe, prefix: str, since: datetime) -> None:
        self.probe = probe
        self.prefix = prefix
        self.since = since
        self.latest: dict[str, int] = {}
        self.latencies_ms: list[float] = []
        self.polls = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="seq-watcher", daemon=True)

    def start(self) -> SeqWatcher:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rows = self.probe.latest_seq_by_device(self.prefix, self.since)
            except (ApiException, HTTPError, OSError):
                self.errors += 1
                self._stop.wait(LATENCY_POLL_S)
                continue
            seen_at = time.time()
            with self._lock:
                self.polls += 1
                for device, (when, seq) in rows.items():
                    if seq > self.latest.get(device, 0):
                        self.latest[device] = seq
                        self.latencies_ms.append((seen_at - when.timestamp()) * 1000)
            self._stop.wait(LATENCY_POLL_S)

    def stored_with_seq(self) -> int:
        with self._lock:
            return sum(self.latest.values())

    def caught_up(self, max_seq: dict[str, int]) -> bool:
        with self._lock:
            return all(self.latest.get(d, 0) >= m for d, m in max_seq.items() if m > 0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


class Timeline:
    """A row every SAMPLE_EVERY_S seconds: rates, memory and lag of every component."""

    def __init__(self, monitor: PipelineMonitor, watcher: SeqWatcher, verbose: bool) -> None:
        self.monitor = monitor
        self.watcher = watcher
        self.verbose = verbose
        self.rows: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.peak_rss: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.pids: dict[str, int] = {}
        self._last_stored: tuple[float, int] | None = None

    def sample(self) -> None:
        snap = self.monitor.sample()
        now = time.monotonic()
        stored = self.watcher.stored_with_seq()
        stored_rate = None
        if self._last_stored is not None and now > self._last_stored[0]:
            stored_rate = (stored - self._last_stored[1]) / (now - self._last_stored[0])
        self._last_stored = (now, stored)
        for c in snap.components:
            if c.pid is None or c.state.startswith("exited"):
                continue
            self.pids[c.name] = c.pid
            peak = peak_rss_mib(c.pid)
            if peak is not None:
                self.peak_rss[c.name] = max(peak, self.peak_rss.get(c.name, 0.0))
            if c.cpu_s is not None:
                self.cpu[c.name] = c.cpu_s
        self.rows.append(
            {
                "t_s": round(now - self.t0, 2),
                "sent_per_s": snap.sent_rate,
                "in_per_s": snap.in_rate,
                "processed_per_s": snap.processed_rate,
                "written_per_s": snap.stored_rate if snap.stored_source == SINK else None,
                "stored_per_s": stored_rate,
                "stored_with_seq": stored,
                "rss_mib": {c.name: c.rss_mib for c in snap.components if c.rss_mib},
                "lag": snap.lag,
            }
        )
        if self.verbose:
            say(render_line(snap))


def count_stored(
    probe: InfluxProbe, prefix: str, start: datetime, stop: datetime, attempts: int = 3
) -> tuple[dict[str, int] | None, dict[str, int] | None, str | None]:
    """(points per device, distinct seqs per device, error); a busy InfluxDB gets retries."""
    error = None
    for attempt in range(attempts):
        try:
            return (
                probe.point_counts(prefix, start, stop),
                probe.seq_counts(prefix, start, stop),
                None,
            )
        except (ApiException, HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < attempts:
                time.sleep(5)
    return None, None, error


def _sink_latency_buckets(settings: RunSettings) -> dict[float, float] | None:
    text = fetch_metrics_text(settings.run_sink_port)
    return histogram_buckets(text, names.SINK_END_TO_END) if text else None


def sink_latency(
    before: dict[float, float] | None, after: dict[float, float] | None
) -> dict[str, Any]:
    """The sink's own end-to-end histogram over the run, as bucket upper bounds in ms."""
    out: dict[str, Any] = {
        "method": "telemetry_sink_end_to_end_seconds of the sink (ingest receive time to "
        "database accepted, every point the sink wrote during the run); each figure is the "
        "upper bound of its histogram bucket"
    }
    if after is None:
        out["note"] = "the sink exposes no such histogram"
        return out
    delta = bucket_delta(after, before)
    out["count"] = max(delta.values(), default=0.0)
    for q in (0.5, 0.9, 0.99):
        le = bucket_quantile(delta, q)
        key = f"p{round(q * 100)}_le"
        if le is None:
            out[key] = None
        elif le == float("inf"):
            out[key] = f"> {max(k for k in delta if k != float('inf')) * 1000:g}"
        else:
            out[key] = round(le * 1000, 1)
    return out


def _ingest_received(settings: RunSettings) -> float | None:
    families = fetch_metrics(settings.run_ingest_port)
    return total(families, names.INGEST_RECEIVED) if families else None


def _wait(
    done: Callable[[], bool], timeout: float, stop: threading.Event, tick: Callable[[], None]
) -> bool:
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        tick()
        if done():
            return True
        stop.wait(SAMPLE_EVERY_S)
    return done()


def drain(
    watcher: SeqWatcher,
    max_seq: dict[str, int],
    lag: ConsumerLag,
    dead_letters: DeadLetterTally,
    timeout: float,
    stop: threading.Event,
    tick: Callable[[], None],
) -> dict[str, Any]:
    """Waits until every device's last reading is stored, then for idle lag and a quiet DLQ."""
    t0 = time.monotonic()
    caught_up = _wait(lambda: watcher.caught_up(max_seq), timeout, stop, tick)
    quiet = {"seen": -1}

    def settled() -> bool:
        lags = lag.snapshot()
        idle = all(v == 0 for v in lags.values() if v is not None)
        still = dead_letters.seen == quiet["seen"]
        quiet["seen"] = dead_letters.seen
        return idle and still

    settle = min(SETTLE_S, max(0.0, timeout - (time.monotonic() - t0)))
    idle = _wait(settled, settle, stop, tick) if caught_up else False
    return {
        "drained": caught_up,
        "lag_idle_and_dlq_quiet": idle,
        "seconds": round(time.monotonic() - t0, 1),
        "lag_at_end": lag.snapshot(),
    }


def build_report(
    args: argparse.Namespace,
    prefix: str,
    started_at: datetime,
    summary: dict[str, Any],
    point_counts: dict[str, int] | None,
    seq_counts: dict[str, int] | None,
    dlq: dict[str, int],
    latencies_ms: list[float],
    drain_info: dict[str, Any],
    ingest_delta: float | None,
    timeline: Timeline,
    exits: dict[str, int | None],
) -> dict[str, Any]:
    load_s = float(summary["duration_s"])
    active_s = load_s + float(drain_info["seconds"])
    expected = int(summary["expected_good_points"])
    counted = point_counts is not None and seq_counts is not None
    point_counts, seq_counts = point_counts or {}, seq_counts or {}
    stored: int | None = sum(point_counts.values()) if counted else None
    max_seq = summary["max_seq_by_device"]
    missing = {d: m - seq_counts.get(d, 0) for d, m in max_seq.items() if m > seq_counts.get(d, 0)}
    sent_bad = {r: n for r, n in summary["bad_messages_by_reason"].items() if n}
    reasons = sorted(set(sent_bad) | set(dlq))
    written = [r["written_per_s"] for r in timeline.rows if r.get("written_per_s") is not None]
    return {
        "run": {
            "started_at": started_at.isoformat(timespec="seconds"),
            "device_prefix": prefix,
            "devices": args.devices,
            "rate_asked": args.rate,
            "bad_ratio": args.bad_ratio,
            "seed": args.seed,
            "duration_s": args.duration,
            "fresh_groups": bool(getattr(args, "fresh_groups", False)),
            "consumer_groups": sorted(drain_info.get("lag_at_end") or {}),
        },
        "throughput": {
            "messages_sent": summary["messages_sent"],
            "messages_sent_per_s": summary["achieved_rate"],
            "messages_in": ingest_delta,
            "messages_in_per_s": None if ingest_delta is None else round(ingest_delta / load_s, 2),
            "points_stored": stored,
            "points_stored_per_s": (
                round(stored / active_s, 2) if active_s and stored is not None else None
            ),
            "points_written_per_s_peak": round(max(written), 2) if written else None,
            "seconds_load": load_s,
            "seconds_load_and_drain": round(active_s, 1),
        },
        "latency_ms": {
            "method": "poll InfluxDB every 0.5 s for each device's newest seq; sample = time "
            "first seen minus the point's ts (an upper bound; resolution about 0.5 s)",
            **{k: round(v, 1) for k, v in percentiles(latencies_ms).items()},
        },
        "points": {
            "expected": expected,
            "stored": stored,
            "lost": None if stored is None else expected - stored,
            "loss_ratio": (
                round((expected - stored) / expected, 6)
                if expected and stored is not None
                else None
            ),
            "expected_with_seq": sum(max_seq.values()),
            "stored_distinct_seq": sum(seq_counts.values()) if counted else None,
            "missing_seq": sum(missing.values()) if counted else None,
            "devices_missing_seq": dict(sorted(missing.items())[:50]) if counted else {},
            "unexpected_devices": sorted(set(point_counts) - set(max_seq))[:50],
        },
        "dead_letters": {
            "bad_sent_by_reason": sent_bad,
            "dlq_by_reason": dlq,
            "difference_by_reason": {
                r: dlq.get(r, 0) - sent_bad.get(r, 0)
                for r in reasons
                if dlq.get(r, 0) != sent_bad.get(r, 0)
            },
        },
        "drain": drain_info,
        "warnings": warnings(summary, stored, dlq, sent_bad, ingest_delta, drain_info),
        "components": {
            name: {
                "pid": timeline.pids.get(name),
                "peak_rss_mib": _round(timeline.peak_rss.get(name)),
                "cpu_seconds": _round(timeline.cpu.get(name)),
                "exit_code": exits.get(name),
            }
            for name in exits
        },
        "timeline": timeline.rows,
    }


def warnings(
    summary: dict[str, Any],
    stored: int | None,
    dlq: dict[str, int],
    sent_bad: dict[str, int],
    ingest_delta: float | None,
    drain_info: dict[str, Any],
) -> list[str]:
    """What makes the figures above less than a clean measurement, in words."""
    out = []
    if not drain_info["drained"]:
        out.append(
            "the pipeline did not drain in time: stored points and dead letters are a lower "
            "bound and latency is cut off; raise --drain-timeout or lower --rate"
        )
    if ingest_delta is not None and ingest_delta > summary["messages_sent"]:
        out.append(
            f"ingest received {ingest_delta - summary['messages_sent']:.0f} more telemetry "
            "messages than the simulator sent: other publishers on devices/+/telemetry, or "
            "MQTT redelivery after a reconnect"
        )
    extra = {r: n - sent_bad.get(r, 0) for r, n in dlq.items() if n > sent_bad.get(r, 0)}
    if extra:
        out.append(
            f"more dead letters than bad messages for {sorted(extra)}: the same message was "
            "rejected more than once (another ingest subscribed to the same topics, or "
            "records processed again after a restart or rebalance)"
        )
    if stored is not None and stored > summary["expected_good_points"]:
        out.append(
            f"{stored - summary['expected_good_points']} more points than expected: a reading "
            "without `ts` that is delivered twice gets a second receive time, so a second point"
        )
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def fresh_groups(stamp: str, env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Environment giving the processors and the sink consumer groups of their own that start
    at the current end of their topics: the run measures its own data, not a backlog."""
    app_id = f"bench-{stamp.lower()}-processors"
    sink_group = f"bench-{stamp.lower()}-sink-influxdb"
    topics = env.get("TELEMETRY_SINK_TOPICS") or ENRICHED
    start_group_at_end(kafka_config(env), sink_group, [t.strip() for t in topics.split(",")])
    overrides = {
        "TELEMETRY_PROCESS_APP_ID": app_id,
        "TELEMETRY_PROCESS_AUTO_OFFSET_RESET": "latest",
        "TELEMETRY_SINK_INFLUXDB_GROUP_ID": sink_group,
    }
    return overrides, [app_id, sink_group]


def check_args(args: argparse.Namespace) -> str | None:
    for name in ("duration", "rate", "drain_timeout"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            return f"--{name.replace('_', '-')} must be a positive number"
    if args.devices < 1:
        return "--devices must be at least 1"
    if not 0.0 <= args.bad_ratio <= 1.0:
        return "--bad-ratio must be between 0 and 1"
    return None


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry benchmark`."""
    problem = check_args(args)
    if problem:
        print(f"benchmark: {problem}", file=sys.stderr)
        return 2
    settings = RunSettings()
    stop = threading.Event()
    install_stop_signals(stop)
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    out_dir = (args.reports_dir or REPORTS_DIR) / stamp
    prefix = f"bench-{stamp.lower()}-{secrets.token_hex(2)}-"
    try:
        stack = ensure_stack()
    except StackError as exc:
        print(f"benchmark: the local stack did not come up: {exc}", file=sys.stderr)
        return 1
    env = component_env(stack)
    patterns = [p.strip() for p in settings.run_lag_groups.split(",") if p.strip()]
    if args.fresh_groups:
        try:
            overrides, patterns = fresh_groups(stamp, env)
        except KafkaException as exc:
            print(f"benchmark: cannot set up fresh consumer groups: {exc}", file=sys.stderr)
            return 1
        env.update(overrides)
    pipeline = Pipeline(settings, env, out_dir / "logs")
    summary_path = out_dir / "simulate-summary.json"
    since = started_at - timedelta(minutes=1)
    probe = InfluxProbe(influx_target(env))
    lag = ConsumerLag(kafka_config(env), patterns)
    print(f"benchmark {stamp}: devices {prefix}*, logs and report in {out_dir}")
    dead_letters: DeadLetterTally | None = None
    watcher: SeqWatcher | None = None
    exits: dict[str, int | None] = {}
    try:
        pipeline.start_components(stop)
        dead_letters = DeadLetterTally(kafka_config(env), prefix).start()
        watcher = SeqWatcher(probe, prefix, since).start()
        ingest_before = _ingest_received(settings)
        sink_buckets_before = _sink_latency_buckets(settings)
        sim_args = [
            "--devices", str(args.devices), "--rate", str(args.rate),
            "--bad-ratio", str(args.bad_ratio), "--seed", str(args.seed),
            "--device-prefix", prefix, "--duration", str(args.duration),
            "--summary", str(summary_path),
        ]  # fmt: skip
        pipeline.start_simulator(sim_args, stop)
        print(f"load: {args.rate:g} msg/s from {args.devices} devices for {args.duration:g} s")
        monitor = PipelineMonitor(pipeline, lag, dead_letters, None, prefix, since)
        timeline = Timeline(monitor, watcher, verbose=True)
        sim = pipeline.simulator
        assert sim is not None
        _wait(lambda: not sim.alive(), args.duration + 120, stop, timeline.sample)
        if stop.is_set() or not summary_path.exists():
            print("benchmark: interrupted or the simulator wrote no summary", file=sys.stderr)
            print(sim.tail(), file=sys.stderr)
            return 1
        summary = json.loads(summary_path.read_text())
        print(f"load done; draining (up to {args.drain_timeout:g} s)")
        drain_info = drain(
            watcher, summary["max_seq_by_device"], lag, dead_letters,
            args.drain_timeout, stop, timeline.sample,
        )  # fmt: skip
        timeline.sample()
        ingest_after = _ingest_received(settings)
        sink_buckets_after = _sink_latency_buckets(settings)
        end = datetime.now(UTC) + timedelta(minutes=1)
        counter = InfluxProbe(influx_target(env), timeout_ms=120_000)
        try:
            point_counts, seq_counts, count_error = count_stored(counter, prefix, since, end)
        finally:
            counter.close()
        dlq = dead_letters.snapshot()
    except (StartError, KafkaException) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    finally:
        if watcher:
            watcher.stop()
        exits = pipeline.stop_all()
        if dead_letters:
            dead_letters.close()
        probe.close()
    ingest_delta = (
        None if ingest_before is None or ingest_after is None else ingest_after - ingest_before
    )
    report = build_report(
        args, prefix, started_at, summary, point_counts, seq_counts, dlq,
        watcher.latencies_ms, drain_info, ingest_delta, timeline, exits,
    )  # fmt: skip
    report["latency_ms_sink"] = sink_latency(sink_buckets_before, sink_buckets_after)
    if count_error:
        report["warnings"].append(f"InfluxDB did not answer the final count: {count_error}")
    json_path, png_path = write_report(report, out_dir)
    print(format_headline(report))
    print(f"report: {json_path}\nplot:   {png_path}")
    return 0 if drain_info["drained"] else 1


def format_headline(report: dict[str, Any]) -> str:
    t, p, lat = report["throughput"], report["points"], report["latency_ms"]
    sink = report.get("latency_ms_sink") or {}
    lines = [
        f"sent {t['messages_sent']} msgs ({t['messages_sent_per_s']} msg/s); ingest took "
        f"{t['messages_in']} ({t['messages_in_per_s']} msg/s)",
        f"points: expected {p['expected']}, stored {p['stored']}, lost {p['lost']} "
        f"({p['loss_ratio']}), seq missing {p['missing_seq']}; "
        f"{t['points_stored_per_s']} points/s over load+drain",
        f"latency ms (upper bound): p50 {lat.get('p50', 'n/a')}, p90 {lat.get('p90', 'n/a')}, "
        f"p99 {lat.get('p99', 'n/a')}, max {lat.get('max', 'n/a')}; sink histogram (ingest to "
        f"database, bucket bounds): p50 <= {sink.get('p50_le', 'n/a')}, "
        f"p99 <= {sink.get('p99_le', 'n/a')}",
        f"dead letters vs bad sent, differences: {report['dead_letters']['difference_by_reason']}",
        "components: "
        + ", ".join(
            f"{n} {c['peak_rss_mib']} MiB peak, {c['cpu_seconds']} s CPU, exit {c['exit_code']}"
            for n, c in report["components"].items()
        ),
        *(f"warning: {w}" for w in report["warnings"]),
    ]
    return "\n".join(lines)
