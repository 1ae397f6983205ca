"""`telemetry benchmark`: the pipeline measured, three ways, each with a report.

- fixed rate (the default): the whole pipeline at one rate and seed for a while, drained;
- `--find-max`: the whole pipeline, the offered rate stepped up until a step does not hold
  (loadtest/find_max.py), reporting the highest rate held with zero loss;
- `--component ingest|process|sink`: one component alone on a pre-filled backlog
  (loadtest/component_bench.py).
Every report carries the CPU table (loadtest/cpu_table.py): µs of CPU per reading of each
component and server on the data path.

Loss is counted in the database, not inferred from metrics: the run's devices share a unique
id prefix, so every point InfluxDB holds for that prefix came from this run.
"""

from __future__ import annotations

import argparse
import itertools
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
from loadtest.component_bench import (
    ComponentBench,
    check_component_args,
    component_section,
    component_timeline,
)
from loadtest.consumer_lag import ConsumerLag, start_group_at_end
from loadtest.cpu_table import CpuProbe, cpu_table
from loadtest.dead_letter_tally import DeadLetterTally
from loadtest.find_max import DEFAULT_RAMP, Criteria, Ramp, find_max
from loadtest.influx_probe import InfluxProbe
from loadtest.live_view import SINK, render_line
from loadtest.pipeline_monitor import PipelineMonitor
from loadtest.pipeline_processes import PipelineProcesses, StartError
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
from stack.local_stack import LocalStack
from stack.processes import StackError

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
SAMPLE_EVERY_S = 2.0
LATENCY_POLL_S = 0.5
#: once every device's last reading is stored, how long to wait for lag 0 and a quiet DLQ
SETTLE_S = 30.0
#: default bad-message ratio of a fixed-rate run (find-max and components send none)
FIXED_RATE_BAD_RATIO = 0.05
#: --find-max: after a step, how long its last readings may take to be stored before they
#: count as lost
STEP_GRACE_S = 10.0


class SeqWatcher:
    """Polls InfluxDB for each run device's newest stored seq.

    A seq seen for the first time gives a latency sample: poll time minus the point's time
    (the device's `ts`, taken when the simulator built the message). It is an upper bound
    whose resolution is the poll interval plus the query time.

    Each poll reads only from the oldest of the devices' newest points on: a device's later
    readings carry later times, so nothing it still sends is missed. Querying the whole run
    instead made InfluxDB's work per poll grow with the run, and the probe, not the
    pipeline, became InfluxDB's main load (about 1,100 µs of its CPU per reading at 500/s).
    """

    def __init__(self, probe: InfluxProbe, prefix: str, since: datetime) -> None:
        self.probe = probe
        self.prefix = prefix
        self.since = since
        self.latest: dict[str, int] = {}
        #: device -> time of its newest seq seen (where the next poll may start)
        self.latest_time: dict[str, datetime] = {}
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
                rows = self.probe.latest_seq_by_device(self.prefix, self.window_start())
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
                        self.latest_time[device] = when
                        self.latencies_ms.append((seen_at - when.timestamp()) * 1000)
            self._stop.wait(LATENCY_POLL_S)

    def window_start(self) -> datetime:
        """Where the next poll starts: the oldest of the devices' newest points seen."""
        with self._lock:
            if not self.latest_time:
                return self.since
            return max(self.since, min(self.latest_time.values()))

    def snapshot(self) -> tuple[dict[str, int], dict[str, datetime]]:
        """(device -> newest seq seen, device -> its time), copies."""
        with self._lock:
            return dict(self.latest), dict(self.latest_time)

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

    def __init__(
        self, monitor: PipelineMonitor, watcher: SeqWatcher | None, verbose: bool
    ) -> None:
        self.monitor = monitor
        #: the watcher of the devices being measured now (one per --find-max step)
        self.watcher = watcher
        #: --find-max: the step (index, rate) the next rows belong to
        self.step: tuple[int, float] | None = None
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
        stored = self.watcher.stored_with_seq() if self.watcher is not None else 0
        stored_rate = None
        if self._last_stored is not None and stored < self._last_stored[1]:
            self._last_stored = None  # a new --find-max step counts its own devices from 0
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
                **({"step": self.step[0], "step_rate": self.step[1]} if self.step else {}),
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
    """What is wrong with the options, in words; None when fine."""
    for name in ("duration", "rate", "drain_timeout", "step_duration"):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            return f"--{name.replace('_', '-')} must be a positive number"
    if args.devices < 1:
        return "--devices must be at least 1"
    if args.bad_ratio is not None and not 0.0 <= args.bad_ratio <= 1.0:
        return "--bad-ratio must be between 0 and 1"
    if getattr(args, "compare", None):
        if args.component:
            return "--compare runs whole systems, --component one of ours alone: choose one"
        if args.payload != "uniform":
            return "--compare needs --payload uniform: the load both systems read alike"
        if args.bad_ratio:
            return "--compare sends no bad messages (Telegraf has no reject path to compare)"
    if args.component and args.find_max:
        return (
            "--component measures one component on a backlog, --find-max the whole "
            "pipeline: choose one"
        )
    if args.component:
        return check_component_args(args)
    if args.find_max:
        try:
            ramp = parse_ramp(args.ramp)
        except ValueError:
            return "--ramp is a comma-separated list of rising rates, e.g. 1000,2000,5000"
        if not ramp or any(b <= a for a, b in itertools.pairwise(ramp)):
            return "--ramp is a comma-separated list of rising rates, e.g. 1000,2000,5000"
        if not args.max_p99_ms > 0:
            return "--max-p99-ms must be positive"
    return None


def parse_ramp(text: str | None) -> list[float]:
    if not text:
        return [float(r) for r in DEFAULT_RAMP]
    return [float(part) for part in text.split(",") if part.strip()]


def payload_args(payload: str) -> list[str]:
    """Simulator options of a payload kind: `uniform` is the comparable load (one reading of 4
    metrics per message, epoch-ms ts); `mixed` every accepted form of the contract."""
    if payload == "uniform":
        return ["--batch-share", "0", "--metrics-per-reading", "4", "--ts-format", "epoch_ms"]
    return []


def readings_per_message(payload: str) -> float:
    """Readings per message of a payload kind (mixed: 75% single, 25% batches of 2..10)."""
    return 1.0 if payload == "uniform" else 0.75 + 0.25 * 6


def server_pids(stack: LocalStack) -> Callable[[], dict[str, int | None]]:
    """The pids of the servers on the data path, read when asked (a restart changes them)."""
    return lambda: {
        "mosquitto": stack.mosquitto.pid(),
        "kafka": stack.kafka.pid(),
        "influxdb": stack.influxdb.pid(),
    }


def pipeline_cpu_probe(pipeline: PipelineProcesses, stack: LocalStack) -> CpuProbe:
    servers = server_pids(stack)

    def pids() -> dict[str, int | None]:
        procs = {c.name: c.pid for c in pipeline.components if c.alive()}
        return {**procs, **servers()}

    return CpuProbe(pids)


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry benchmark`."""
    problem = check_args(args)
    if problem:
        print(f"benchmark: {problem}", file=sys.stderr)
        return 2
    stop = threading.Event()
    install_stop_signals(stop)
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    out_dir = (args.reports_dir or REPORTS_DIR) / stamp
    try:
        stack = ensure_stack()
    except StackError as exc:
        print(f"benchmark: the local stack did not come up: {exc}", file=sys.stderr)
        return 1
    env = component_env(stack)
    if getattr(args, "compare", None):
        from loadtest.compare import run_compare  # it builds on this module's pieces

        return run_compare(args, env, stack, out_dir, started_at, stop)
    if args.component:
        return run_component(args, env, stack, out_dir, started_at, stop)
    if args.find_max:
        return run_find_max(args, env, stack, out_dir, started_at, stop)
    return run_fixed_rate(args, env, stack, out_dir, started_at, stop)


def run_fixed_rate(
    args: argparse.Namespace,
    env: dict[str, str],
    stack: LocalStack,
    out_dir: Path,
    started_at: datetime,
    stop: threading.Event,
) -> int:
    """The whole pipeline at one rate for `--duration`, drained, counted."""
    if args.bad_ratio is None:
        args.bad_ratio = FIXED_RATE_BAD_RATIO
    settings = RunSettings()
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    prefix = f"bench-{stamp.lower()}-{secrets.token_hex(2)}-"
    patterns = [p.strip() for p in settings.run_lag_groups.split(",") if p.strip()]
    if args.fresh_groups:
        try:
            overrides, patterns = fresh_groups(stamp, env)
        except KafkaException as exc:
            print(f"benchmark: cannot set up fresh consumer groups: {exc}", file=sys.stderr)
            return 1
        env.update(overrides)
    pipeline = PipelineProcesses(settings, env, out_dir / "logs")
    summary_path = out_dir / "simulate-summary.json"
    since = started_at - timedelta(minutes=1)
    probe = InfluxProbe(influx_target(env))
    lag = ConsumerLag(kafka_config(env), patterns)
    cpu_probe = pipeline_cpu_probe(pipeline, stack)
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
            "--summary", str(summary_path), *payload_args(args.payload),
        ]  # fmt: skip
        cpu_before = cpu_probe.sample(time.monotonic())
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
        cpu_after = cpu_probe.sample(time.monotonic())
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
    report["run"].update(mode="fixed_rate", payload=args.payload, simulator=_sim_run(summary))
    report["cpu_us_per_reading"] = cpu_table(
        cpu_before, cpu_after, float(summary["readings_sent"]),
        extra_seconds={"simulate": float(summary.get("cpu_seconds") or 0.0)},
    )  # fmt: skip
    report["latency_ms_sink"] = sink_latency(sink_buckets_before, sink_buckets_after)
    if count_error:
        report["warnings"].append(f"InfluxDB did not answer the final count: {count_error}")
    if not summary.get("kept_up", True):
        report["warnings"].append(
            f"the simulator could not keep up: asked {args.rate:g} msg/s, sent "
            f"{summary['achieved_rate']} msg/s; the pipeline was offered less than asked"
        )
    json_path, png_path = write_report(report, out_dir)
    print(format_headline(report))
    print(f"report: {json_path}\nplot:   {png_path}")
    return 0 if drain_info["drained"] else 1


def _sim_run(summary: dict[str, Any]) -> dict[str, Any]:
    """What the report keeps of a simulator summary about the load itself."""
    return {k: summary.get(k) for k in (
        "processes", "kept_up", "achieved_rate", "shortfall_messages", "load", "cpu_seconds")}


class PipelineSteps:
    """`--find-max` steps through the running pipeline: one simulator run per step, with its own
    device prefix, so each step's loss and latency are counted apart (a StepRunner)."""

    def __init__(
        self,
        args: argparse.Namespace,
        pipeline: PipelineProcesses,
        probe: InfluxProbe,
        lag: ConsumerLag,
        cpu_probe: CpuProbe,
        timeline: Timeline,
        prefix: str,
        out_dir: Path,
        stop: threading.Event,
    ) -> None:
        self.args = args
        self.pipeline = pipeline
        self.probe = probe
        self.lag = lag
        self.cpu_probe = cpu_probe
        self.timeline = timeline
        self.prefix = prefix
        self.out_dir = out_dir
        self.stop = stop

    def _lag_total(self) -> int | None:
        lags = self.lag.snapshot()
        if not lags or any(v is None for v in lags.values()):
            return None
        return sum(v for v in lags.values() if v is not None)

    def run_step(self, index: int, rate: float, duration_s: float) -> dict[str, Any]:
        args = self.args
        prefix = f"{self.prefix}s{index}-"
        since = datetime.now(UTC) - timedelta(minutes=1)
        summary_path = self.out_dir / f"simulate-summary-step{index}.json"
        watcher = SeqWatcher(self.probe, prefix, since).start()
        self.timeline.watcher = watcher
        self.timeline.step = (index, rate)
        lag_samples: list[tuple[float, float]] = []
        print(f"step {index}: {rate:g} msg/s for {duration_s:g} s (devices {prefix}*)")
        try:
            sim_args = [
                "--devices", str(args.devices), "--rate", str(rate),
                "--bad-ratio", str(args.bad_ratio), "--seed", str(args.seed + index),
                "--device-prefix", prefix, "--duration", str(duration_s),
                "--summary", str(summary_path), *payload_args(args.payload),
            ]  # fmt: skip
            t0 = time.monotonic()
            cpu_before = self.cpu_probe.sample(t0)
            self.pipeline.start_simulator(sim_args, self.stop)
            sim = self.pipeline.simulator
            assert sim is not None

            def tick() -> None:
                self.timeline.sample()
                total = self._lag_total()
                if total is not None and sim.alive():
                    lag_samples.append((time.monotonic() - t0, float(total)))

            _wait(lambda: not sim.alive(), duration_s + 120, self.stop, tick)
            if not summary_path.exists():
                raise StartError(f"the simulator wrote no summary in step {index}:\n"
                                 f"{sim.tail()}")
            summary = json.loads(summary_path.read_text())
            caught_up = _wait(lambda: watcher.caught_up(summary["max_seq_by_device"]),
                              STEP_GRACE_S, self.stop, self.timeline.sample)
            cpu_after = self.cpu_probe.sample(time.monotonic())
            _, seq_counts, error = count_stored(self.probe, prefix, since,
                                                datetime.now(UTC) + timedelta(minutes=1))
        finally:
            watcher.stop()
        lost = None
        if seq_counts is not None:
            lost = sum(max(0, m - seq_counts.get(d, 0))
                       for d, m in summary["max_seq_by_device"].items())
        lat = percentiles(watcher.latencies_ms)
        readings = float(summary["readings_sent"])
        return {
            "device_prefix": prefix,
            "sent_rate": summary["achieved_rate"],
            "simulator_kept_up": summary.get("kept_up"),
            "messages_sent": summary["messages_sent"],
            "readings_sent": summary["readings_sent"],
            "readings_per_s": rate * readings_per_message(args.payload),
            "expected_with_seq": sum(summary["max_seq_by_device"].values()),
            "lost": lost,
            "stored_within_grace": caught_up,
            "count_error": error,
            "p50_ms": round(lat["p50"], 1) if lat else None,
            "p99_ms": round(lat["p99"], 1) if lat else None,
            "latency_samples": int(lat.get("count", 0)) if lat else 0,
            "lag_samples": lag_samples,
            "cpu_us_per_reading": cpu_table(
                cpu_before, cpu_after, readings,
                extra_seconds={"simulate": float(summary.get("cpu_seconds") or 0.0)},
            ),
        }

    def settle(self, timeout_s: float) -> bool:
        """Waits for zero lag in every group of the run (the backlog of a failed step)."""
        self.timeline.watcher = None
        self.timeline.step = None
        return _wait(lambda: self._lag_total() == 0, timeout_s, self.stop, self.timeline.sample)


def run_find_max(
    args: argparse.Namespace,
    env: dict[str, str],
    stack: LocalStack,
    out_dir: Path,
    started_at: datetime,
    stop: threading.Event,
) -> int:
    """The whole pipeline, in fresh consumer groups, stepped up until a step fails."""
    if args.bad_ratio is None:
        args.bad_ratio = 0.0
    settings = RunSettings()
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    prefix = f"bench-{stamp.lower()}-{secrets.token_hex(2)}-"
    try:
        overrides, patterns = fresh_groups(stamp, env)
    except KafkaException as exc:
        print(f"benchmark: cannot set up fresh consumer groups: {exc}", file=sys.stderr)
        return 1
    env.update(overrides)
    pipeline = PipelineProcesses(settings, env, out_dir / "logs")
    probe = InfluxProbe(influx_target(env))
    lag = ConsumerLag(kafka_config(env), patterns)
    criteria = Criteria(max_p99_ms=args.max_p99_ms)
    ramp = Ramp(parse_ramp(args.ramp), bisect_steps=args.bisect_steps)
    print(f"benchmark {stamp} --find-max: devices {prefix}s<step>-*, report in {out_dir}")
    exits: dict[str, int | None] = {}
    timeline: Timeline | None = None
    try:
        pipeline.start_components(stop)
        monitor = PipelineMonitor(pipeline, lag, None, None, prefix, started_at)
        timeline = Timeline(monitor, None, verbose=True)
        runner = PipelineSteps(args, pipeline, probe, lag, pipeline_cpu_probe(pipeline, stack),
                               timeline, prefix, out_dir, stop)
        result = find_max(runner, ramp, args.step_duration, criteria,
                          settle_timeout_s=args.drain_timeout, stop=stop)
    except (StartError, KafkaException) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    finally:
        exits = pipeline.stop_all()
        probe.close()
    report = find_max_report(args, prefix, started_at, patterns, result, timeline, exits)
    json_path, png_path = write_report(report, out_dir)
    print(format_find_max(report))
    print(f"report: {json_path}\nplot:   {png_path}")
    return 0 if result["max_rate_held"] is not None else 1


def find_max_report(
    args: argparse.Namespace,
    prefix: str,
    started_at: datetime,
    groups: list[str],
    result: dict[str, Any],
    timeline: Timeline | None,
    exits: dict[str, int | None],
) -> dict[str, Any]:
    """report.json of --find-max; its CPU table is the highest held step's (else the last)."""
    steps = result["steps"]
    best = next((s for s in steps if s["held"] and s["rate_asked"] == result["max_rate_held"]),
                steps[-1] if steps else None)
    warnings = []
    if any(not s.get("simulator_kept_up", True) for s in steps):
        warnings.append("in some steps the simulator could not send the asked rate")
    return {
        "run": {
            "mode": "find_max",
            "started_at": started_at.isoformat(timespec="seconds"),
            "device_prefix": prefix,
            "devices": args.devices,
            "payload": args.payload,
            "bad_ratio": args.bad_ratio,
            "seed": args.seed,
            "duration_s": args.step_duration,
            "consumer_groups": groups,
        },
        "find_max": result,
        "cpu_us_per_reading": best["cpu_us_per_reading"] if best else None,
        "cpu_us_per_reading_step": best["index"] if best else None,
        "components": components_section(timeline, exits),
        "warnings": warnings,
        "timeline": timeline.rows if timeline else [],
    }


def components_section(
    timeline: Timeline | None, exits: dict[str, int | None]
) -> dict[str, Any]:
    """pid, peak RSS, CPU seconds and exit code of each process the run started."""
    return {
        name: {
            "pid": timeline.pids.get(name) if timeline else None,
            "peak_rss_mib": _round(timeline.peak_rss.get(name)) if timeline else None,
            "cpu_seconds": _round(timeline.cpu.get(name)) if timeline else None,
            "exit_code": exits.get(name),
        }
        for name in exits
    }


def run_component(
    args: argparse.Namespace,
    env: dict[str, str],
    stack: LocalStack,
    out_dir: Path,
    started_at: datetime,
    stop: threading.Event,
) -> int:
    """One component alone on a pre-filled backlog of `--count` readings."""
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    print(f"benchmark {stamp} --component {args.component}: {args.count:,} readings; report "
          f"in {out_dir}")
    bench = ComponentBench(args, env, server_pids(stack), out_dir, stamp, stop)
    try:
        replay = bench.run()
    except (StartError, KafkaException, OSError) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    report = component_report(args, bench.prefix, started_at, replay)
    json_path, png_path = write_report(report, out_dir)
    print(format_component(report))
    print(f"report: {json_path}\nplot:   {png_path}")
    return 0 if replay.completed else 1


def component_report(
    args: argparse.Namespace, prefix: str, started_at: datetime, replay: Any
) -> dict[str, Any]:
    section, steady, whole = component_section(replay)
    warnings = list(replay.warnings)
    if not (section.get("window") or {}).get("steady"):
        warnings.append(
            "the backlog was too small for a steady window (too few progress steps): the "
            "figures include the component's start-up; use a larger --count"
        )
    return {
        "run": {
            "mode": "component",
            "component": replay.name,
            "started_at": started_at.isoformat(timespec="seconds"),
            "device_prefix": prefix,
            "devices": args.devices,
            "count": args.count,
            "seed": args.seed,
            "payload": "uniform",
            "settings": replay.env,
        },
        "component": section,
        "cpu_us_per_reading": steady,
        "cpu_us_per_reading_incl_startup": whole,
        "components": {
            replay.name: {"pid": replay.pid, "peak_rss_mib": _round(replay.peak_rss_mib),
                          "exit_code": replay.exit_code},
        },
        "warnings": warnings,
        "timeline": component_timeline(replay),
    }


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
        _cpu_line(report.get("cpu_us_per_reading")),
        *(f"warning: {w}" for w in report["warnings"]),
    ]
    return "\n".join(lines)


def _cpu_line(table: dict[str, Any] | None) -> str:
    if not table:
        return "CPU per reading: n/a"
    rows = ", ".join(
        f"{name} {row['us_per_reading'] if row['us_per_reading'] is not None else 'n/a'}"
        for name, row in table["rows"].items()
    )
    return f"CPU µs per reading: {rows}; pipeline total {table['pipeline_us_per_reading']}"


def format_find_max(report: dict[str, Any]) -> str:
    fm = report["find_max"]
    lines = [
        f"highest rate held with zero loss: {fm['max_rate_held']} msg/s "
        f"(stopped: {fm['stopped_because']})"
    ]
    for step in fm["steps"]:
        verdict = "held" if step["held"] else "failed: " + "; ".join(step["failed_because"])
        lines.append(
            f"  step {step['index']}: {step['rate_asked']:g} msg/s asked, {step['sent_rate']} "
            f"sent, lost {step['lost']}, p99 {step['p99_ms']} ms, lag growth "
            f"{step['lag']['growth_over_step']}: {verdict}"
        )
    lines.append(_cpu_line(report["cpu_us_per_reading"]))
    lines.extend(f"warning: {w}" for w in report["warnings"])
    return "\n".join(lines)


def format_component(report: dict[str, Any]) -> str:
    c = report["component"]
    window = c.get("window") or {}
    lines = [
        f"{c['name']}: {c['done']:,} of {c['readings']:,} readings in "
        f"{c['seconds_to_done']} s from start ({c['readings_per_s_incl_startup']}/s incl. "
        f"start-up); steady {c['readings_per_s']} readings/s ({window.get('how', 'n/a')})",
        _cpu_line(report["cpu_us_per_reading"]),
    ]
    lines.extend(f"warning: {w}" for w in report["warnings"])
    return "\n".join(lines)
