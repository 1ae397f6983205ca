"""`telemetry benchmark --compare telegraf`: the same load through our pipeline, then through
Telegraf, each alone on the box, in one run and one report.

Both systems get the same steps (one step at `--rate` for `--duration`, or with `--find-max`
the same ramp, each system as far as it holds), the same simulator and seed per step, the same
Mosquitto and InfluxDB. The load is the comparable one (one reading of four metrics per
message, epoch-ms `ts`) with bare canonical values, so Telegraf's json_v2 stores the same
measurement, field and tag names as our sink; loss and latency are counted the same way, by
seq in the database (each system's own bucket).

Our pipeline runs first, with Telegraf stopped and its MQTT session ended (nothing is queued
for it meanwhile); then our components are stopped and Telegraf is started on no backlog.
Kafka stays up (a shared server), idle. The `comparison` section is loadtest/comparison.py.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from loadtest.benchmark import (
    PipelineSteps,
    Timeline,
    components_section,
    fresh_groups,
    parse_ramp,
    pipeline_cpu_probe,
)
from loadtest.comparison import OURS, TELEGRAF, comparison_section
from loadtest.consumer_lag import ConsumerLag
from loadtest.cpu_table import CpuProbe, table_name
from loadtest.find_max import Criteria, Ramp, find_max
from loadtest.influx_probe import InfluxProbe
from loadtest.peak_memory import PeakMemory
from loadtest.pipeline_monitor import PipelineMonitor
from loadtest.pipeline_processes import PipelineProcesses, StartError
from loadtest.proc_stats import cpu_seconds, peak_rss_mib
from loadtest.report import write_report
from loadtest.run import influx_target, kafka_config, say
from loadtest.settings import RunSettings
from stack.local_stack import LocalStack
from stack.processes import StackError

#: after a step Telegraf did not store in full, how long its count must stay still to count
#: as settled (what is still queued for its session keeps arriving until then)
QUIET_S = 6.0
POLL_S = 2.0


class MeasuredSteps:
    """A StepRunner adding the peak resident memory of each process on the data path to the
    figures of every step of the runner it wraps."""

    def __init__(self, runner: PipelineSteps, pids: Callable[[], Mapping[str, int | None]]):
        self.runner = runner
        self.pids = pids

    def run_step(self, index: int, rate: float, duration_s: float) -> dict[str, Any]:
        with PeakMemory(self.pids) as peaks:
            figures = self.runner.run_step(index, rate, duration_s)
        return {**figures, "peak_rss_mib": dict(peaks.mib)}

    def settle(self, timeout_s: float) -> bool:
        return self.runner.settle(timeout_s)


class TelegrafSteps(PipelineSteps):
    """The same steps through Telegraf. It has no consumer lag; its backlog after a step is
    what Mosquitto still holds for its session, seen as a stored count that still grows."""

    def __init__(self, *args: Any, since: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.since = since
        self.last: dict[str, Any] | None = None

    def _lag_total(self) -> int | None:
        return None

    def run_step(self, index: int, rate: float, duration_s: float) -> dict[str, Any]:
        self.last = super().run_step(index, rate, duration_s)
        return self.last

    def settle(self, timeout_s: float) -> bool:
        self.timeline.watcher = None
        self.timeline.step = None
        last = self.last
        if last is None or last.get("stored_within_grace"):
            return True
        deadline = time.monotonic() + timeout_s
        seen, still_since = -1, time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.timeline.sample()
            try:
                counts = self.probe.seq_counts(
                    last["device_prefix"], self.since, datetime.now(UTC)
                )
            except (ApiException, HTTPError, OSError):
                counts = None
            if counts is not None:
                stored = sum(counts.values())
                if stored >= last["expected_with_seq"]:
                    return True
                if stored != seen:
                    seen, still_since = stored, time.monotonic()
                elif time.monotonic() - still_since >= QUIET_S:
                    return True
            self.stop.wait(POLL_S)
        return False


@dataclass
class Phase:
    """One system's part of the run."""

    name: str
    result: dict[str, Any] | None = None
    timeline: Timeline | None = None
    exits: dict[str, int | None] = field(default_factory=dict)
    error: str | None = None
    extra_components: dict[str, dict[str, Any]] = field(default_factory=dict)


def _ramp(args: argparse.Namespace) -> Ramp:
    if args.find_max:
        return Ramp(parse_ramp(args.ramp), bisect_steps=args.bisect_steps)
    return Ramp([args.rate], bisect_steps=0)


def _measure(
    args: argparse.Namespace, runner: PipelineSteps, cpu: CpuProbe, stop: threading.Event
) -> dict[str, Any]:
    def pids() -> dict[str, int | None]:
        return {table_name(name): pid for name, pid in cpu.pids().items()}

    return find_max(
        MeasuredSteps(runner, pids), _ramp(args), _duration(args),
        Criteria(max_p99_ms=args.max_p99_ms), settle_timeout_s=args.drain_timeout, stop=stop,
    )  # fmt: skip


def _duration(args: argparse.Namespace) -> float:
    return float(args.step_duration if args.find_max else args.duration)


def run_ours(
    args: argparse.Namespace,
    env: dict[str, str],
    stack: LocalStack,
    out_dir: Path,
    stamp: str,
    prefix: str,
    started_at: datetime,
    stop: threading.Event,
) -> Phase:
    """Our pipeline (ingest, process, sink) in fresh consumer groups, through the steps."""
    phase = Phase(OURS)
    try:
        overrides, groups = fresh_groups(stamp, env)
    except KafkaException as exc:
        phase.error = f"cannot set up fresh consumer groups: {exc}"
        return phase
    env = {**env, **overrides}
    pipeline = PipelineProcesses(RunSettings(), env, out_dir / "logs")
    probe = InfluxProbe(influx_target(env))
    lag = ConsumerLag(kafka_config(env), groups)
    try:
        pipeline.start_components(stop)
        monitor = PipelineMonitor(pipeline, lag, None, None, prefix, started_at)
        phase.timeline = Timeline(monitor, None, verbose=True)
        cpu = pipeline_cpu_probe(pipeline, stack)
        runner = PipelineSteps(args, pipeline, probe, lag, cpu, phase.timeline, prefix,
                               out_dir, stop)  # fmt: skip
        phase.result = _measure(args, runner, cpu, stop)
    except (StartError, KafkaException) as exc:
        phase.error = str(exc)
    finally:
        phase.exits = pipeline.stop_all()
        probe.close()
    return phase


def run_telegraf(
    args: argparse.Namespace,
    env: dict[str, str],
    stack: LocalStack,
    out_dir: Path,
    prefix: str,
    started_at: datetime,
    t0: float | None,
    stop: threading.Event,
) -> Phase:
    """Telegraf (started here, on a fresh session) through the same steps; then stopped."""
    phase = Phase(TELEGRAF)
    telegraf = stack.telegraf
    pipeline = PipelineProcesses(RunSettings(), env, out_dir / "logs")  # its simulator only
    probe = InfluxProbe(replace(influx_target(env), bucket=telegraf.bucket))
    try:
        telegraf.open_fresh_session()  # subscribed before it starts: nothing is missed
        telegraf.start()
        say(f"telegraf {telegraf.version} ready (pid {telegraf.pid()}, log {telegraf.log_file})")
        monitor = PipelineMonitor(pipeline, None, None, None, prefix, started_at,
                                  others=lambda: {TELEGRAF: telegraf.pid()})  # fmt: skip
        phase.timeline = Timeline(monitor, None, verbose=True)
        if t0 is not None:
            phase.timeline.t0 = t0  # one time axis for both systems
        cpu = CpuProbe(lambda: {"telegraf": telegraf.pid(), "mosquitto": stack.mosquitto.pid(),
                                "influxdb": stack.influxdb.pid()})  # fmt: skip
        runner = TelegrafSteps(args, pipeline, probe, ConsumerLag(kafka_config(env), []), cpu,
                               phase.timeline, prefix, out_dir, stop, since=started_at)
        phase.result = _measure(args, runner, cpu, stop)
    except (StartError, StackError, KafkaException) as exc:
        phase.error = str(exc)
    finally:
        pid = telegraf.pid()
        if pid is not None:
            phase.extra_components[TELEGRAF] = {
                "pid": pid, "peak_rss_mib": _round(peak_rss_mib(pid)),
                "cpu_seconds": _round(cpu_seconds(pid)), "exit_code": None,
            }  # fmt: skip
        phase.exits = pipeline.stop_all()
        telegraf.stop()
        probe.close()
    return phase


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run_compare(
    args: argparse.Namespace,
    env: dict[str, str],
    stack: LocalStack,
    out_dir: Path,
    started_at: datetime,
    stop: threading.Event,
) -> int:
    """Entry of `--compare telegraf`: builds Telegraf if needed, runs both, one report."""
    args.bad_ratio = 0.0
    env = {**env, "TELEMETRY_SIMULATE_UNITS": "canonical"}
    telegraf = stack.telegraf
    try:
        stack.install_optional(TELEGRAF)
    except StackError as exc:
        print(f"benchmark: Telegraf could not be built: {exc}", file=sys.stderr)
        return 1
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    run_prefix = f"bench-{stamp.lower()}-{secrets.token_hex(2)}-"
    was_running = telegraf.pid() is not None
    print(f"benchmark {stamp} --compare telegraf{' --find-max' if args.find_max else ''}: "
          f"ours first (devices {run_prefix}ours-s<step>-*), then Telegraf "
          f"({run_prefix}tg-s<step>-*); report in {out_dir}")  # fmt: skip
    phases: list[Phase] = []
    try:
        if was_running:
            say("stopping the running Telegraf: each system runs alone (restarted at the end)")
            telegraf.stop()
        telegraf.forget_session()  # nothing is queued for it while ours runs
        ours = run_ours(args, env, stack, out_dir / OURS, stamp, f"{run_prefix}ours-",
                        started_at, stop)  # fmt: skip
        phases.append(ours)
        if ours.error:
            print(f"benchmark: our pipeline did not run, so neither does Telegraf: {ours.error}",
                  file=sys.stderr)  # fmt: skip
        elif not stop.is_set():
            t0 = ours.timeline.t0 if ours.timeline else None
            phases.append(run_telegraf(args, env, stack, out_dir / TELEGRAF,
                                       f"{run_prefix}tg-", started_at, t0, stop))  # fmt: skip
    except StackError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            telegraf.forget_session()  # Mosquitto would queue telemetry for it until it is back
            if was_running:
                telegraf.start()
        except StackError as exc:
            say(f"benchmark: {exc}", err=True)
    report = compare_report(args, run_prefix, started_at, phases, telegraf.version)
    json_path, png_path = write_report(report, out_dir)
    print(format_compare(report))
    print(f"report: {json_path}\nplot:   {png_path}")
    complete = len(phases) == 2 and all(p.result is not None and not p.error for p in phases)
    return 0 if complete else 1


def compare_report(
    args: argparse.Namespace,
    prefix: str,
    started_at: datetime,
    phases: list[Phase],
    telegraf_version: str,
) -> dict[str, Any]:
    criteria = Criteria(max_p99_ms=args.max_p99_ms)
    ramp = _ramp(args)
    load = {
        "payload": "uniform: one reading of 4 metrics per message, epoch-ms ts, bare canonical "
        "values (TELEMETRY_SIMULATE_UNITS=canonical), no bad messages",
        "devices": args.devices,
        "seed": args.seed,
        "step_duration_s": _duration(args),
        "rates": list(ramp.rates),
        "find_max": bool(args.find_max),
    }
    results = {p.name: p.result for p in phases if p.result is not None}
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    systems: dict[str, Any] = {}
    for p in phases:
        if p.timeline is not None:
            rows += [{**r, "system": p.name} for r in p.timeline.rows]
        if p.error:
            warnings.append(f"{p.name}: {p.error}")
        started = {n: c for n, c in components_section(p.timeline, p.exits).items()
                   if c["pid"] is not None or c["exit_code"] is not None}  # fmt: skip
        systems[p.name] = {
            "find_max": p.result,
            "components": {**started, **p.extra_components},
            "error": p.error,
        }
        steps = (p.result or {}).get("steps") or []
        if any(not s.get("simulator_kept_up", True) for s in steps):
            warnings.append(f"{p.name}: in some steps the simulator could not send the rate")
    missing = {OURS, TELEGRAF} - set(results)
    if missing:
        warnings.append(f"no figures for {', '.join(sorted(missing))}: the run stopped early")
    return {
        "run": {
            "mode": "compare",
            "compare": TELEGRAF,
            "find_max": bool(args.find_max),
            "started_at": started_at.isoformat(timespec="seconds"),
            "device_prefix": prefix,
            "devices": args.devices,
            "payload": args.payload,
            "units": "canonical",
            "bad_ratio": 0.0,
            "seed": args.seed,
            "duration_s": _duration(args),
            "telegraf_version": telegraf_version,
        },
        "comparison": comparison_section(results, criteria, load),
        "systems": systems,
        "cpu_us_per_reading": None,
        "warnings": warnings,
        "timeline": rows,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_compare(report: dict[str, Any]) -> str:
    comp = report["comparison"]
    lines = [
        f"{'system':<9} {'rate':>7} {'sent':>8} {'stored':>8} {'lost':>6} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'CPU µs/msg':>10} {'peak MiB':>9}  held"
    ]
    for name, system in comp["systems"].items():
        for s in system["steps"]:
            peak = sum(s["peak_rss_mib"].values()) if s["peak_rss_mib"] else None
            verdict = "yes" if s["held"] else "no: " + "; ".join(s["failed_because"])
            lines.append(
                f"{name:<9} {s['rate_asked']:>7g} {_fmt(s['messages_sent']):>8} "
                f"{_fmt(s['stored_by_seq']):>8} {_fmt(s['lost']):>6} {_fmt(s['p50_ms']):>8} "
                f"{_fmt(s['p99_ms']):>8} {_fmt(s['cpu_us_per_message_total']):>10} "
                f"{_fmt(peak):>9}  {verdict}"
            )
    held = ", ".join(f"{n} {_fmt(s['max_rate_held'])} msg/s" for n, s in comp["systems"].items())
    limit = comp["criteria"]["max_p99_ms"]
    lines.append(f"highest rate held (0 lost, p99 <= {limit:g} ms): {held}")
    r = comp.get("ratios_ours_over_telegraf")
    if r:
        lines.append(
            f"ours / telegraf: held rate {_fmt(r['max_rate_held'])}, CPU per message "
            f"{_fmt(r['cpu_us_per_message'])} (at {_fmt(r['cpu_us_per_message_at_rate'])} msg/s)"
        )
    lines.extend(f"warning: {w}" for w in report["warnings"])
    return "\n".join(lines)
