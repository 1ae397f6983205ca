"""`telemetry chaos`: the whole pipeline under load while faults are injected, then audited.

It starts ingest, process and sink of its own (fresh consumer groups, an MQTT client id,
shared group and topic root of its own, free health ports) and the simulator with a unique
device prefix; injects the faults at even intervals during the load; drains; then reads every
stored seq of the run's devices back from InfluxDB and counts, per device, the readings lost
(seqs 1..max not stored) and duplicated (stored points beyond the distinct seqs). Exit code 1
on any loss, duplicate, dead letter, failed fault or a drain that did not finish.

Only processes this run started are killed; server faults act on the servers of the stack the
TELEMETRY_STACK_* settings name, and check each pid's command line first (loadtest/faults.py).
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from loadtest.benchmark import SeqWatcher, drain, fresh_groups
from loadtest.consumer_lag import ConsumerLag, start_group_at_end
from loadtest.dead_letter_tally import DeadLetterTally
from loadtest.faults import SERVER_FAULTS, ChaosTargets, Fault, FaultError, parse_faults
from loadtest.influx_probe import InfluxProbe
from loadtest.pipeline_processes import PipelineProcesses, StartError, free_port
from loadtest.run import (
    component_env,
    ensure_stack,
    influx_target,
    install_stop_signals,
    kafka_config,
    say,
)
from loadtest.seq_audit import audit_seqs
from loadtest.settings import RunSettings
from plumbing.topics import METADATA, RAW
from stack.processes import StackError

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
TICK_S = 0.5


def payload_args(payload: str) -> tuple[list[str], dict[str, str]]:
    """Simulator options and environment of a payload: `uniform` is one reading of 4 metrics
    per message with an epoch-ms `ts`; `no-ts` the same without `ts`, so ingest stamps its
    receive time and a redelivered reading becomes a second point (a visible duplicate)."""
    args = ["--batch-share", "0", "--metrics-per-reading", "4"]
    if payload == "no-ts":
        return [*args, "--ts-format", "mixed"], {"TELEMETRY_SIMULATE_MISSING_TS_SHARE": "1"}
    return [*args, "--ts-format", "epoch_ms"], {}


@dataclass(frozen=True)
class Plan:
    """The faults in injection order and the gap of plain load before the first, between one
    fault's drain and the next fault, and after the last one's drain. A fault waits for the
    previous one to drain, so each drain time is its own."""

    faults: list[Fault]
    gap_s: float


def plan_faults(faults: list[Fault], times: int, duration_s: float) -> Plan:
    """Every fault `times` times, in the given order, with gaps that make the load last about
    `duration_s` when faults drain at once (longer when they do not)."""
    events = [f for _ in range(times) for f in faults]
    return Plan(events, round(duration_s / (len(events) + 1), 2))


@dataclass
class FaultRecord:
    """One injected fault: when, what it did, and when the pipeline caught up after it."""

    name: str
    at_s: float
    injected_at: datetime
    injected_mono: float
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    restored_s: float | None = None
    """From injection until the target was back (restarted and ready, or resumed)."""
    recovered_s: float | None = None
    """From injection until every device had a reading stored that was sent after it."""
    drain_timed_out: bool = False

    def done(self) -> bool:
        """Drained, failed, or given up on: the next fault may follow."""
        return self.recovered_s is not None or self.error is not None or self.drain_timed_out

    def done_mono(self) -> float:
        return self.injected_mono + (self.recovered_s or self.restored_s or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.name,
            "at_s": self.at_s,
            "injected_at": self.injected_at.isoformat(timespec="milliseconds"),
            **self.details,
            "error": self.error,
            "seconds_until_back": self.restored_s,
            "seconds_to_drain": self.recovered_s,
            "drain_timed_out": self.drain_timed_out,
        }


def recovered(
    watcher: SeqWatcher, since: datetime, max_seq: dict[str, int] | None
) -> bool:
    """Every device seen has a point stored from `since` on, or (once the load is over and its
    last seqs are known) its last reading stored."""
    latest, times = watcher.snapshot()
    if not times:
        return False
    devices = set(max_seq) if max_seq else set(times)
    for d in devices:
        if d in times and times[d] >= since:
            continue
        if max_seq is not None and latest.get(d, 0) >= max_seq.get(d, 0):
            continue
        return False
    return True


def isolation_env(stamp: str, env: dict[str, str]) -> tuple[dict[str, str], list[str], str]:
    """Environment that keeps the run's pipeline to itself on a shared stack: fresh consumer
    groups at the topics' end, its own MQTT session, shared group and topic root, free health
    ports. Returns (overrides, consumer groups, topic root)."""
    overrides, groups = fresh_groups(f"chaos-{stamp}", env)
    # the processors' group too starts at the end, by committed offsets, and a partition
    # without one is read from the start (the product default), not from `latest`: a restart
    # must not skip what came while it was down
    start_group_at_end(kafka_config(env), groups[0], [RAW, METADATA])
    overrides["TELEMETRY_PROCESS_AUTO_OFFSET_RESET"] = "earliest"
    root = f"chaos-{stamp.lower()}"
    overrides.update(
        {
            "TELEMETRY_MQTT_CLIENT_ID": f"{root}-ingest",
            "TELEMETRY_MQTT_SHARED_GROUP": root,
            "TELEMETRY_MQTT_TELEMETRY_FILTER": f"{root}/+/telemetry",
            "TELEMETRY_MQTT_METADATA_FILTER": f"{root}/+/metadata",
            "TELEMETRY_SIMULATE_TOPIC_PREFIX": root,
        }
    )
    return overrides, groups, root


def check_args(args: argparse.Namespace) -> str | None:
    for name in ("duration", "rate", "drain_timeout"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            return f"--{name.replace('_', '-')} must be a positive number"
    if args.times < 1:
        return "--times must be at least 1"
    if args.devices < 1:
        return "--devices must be at least 1"
    return None


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry chaos`."""
    problem = check_args(args)
    faults: list[Fault] = []
    if problem is None:
        try:
            faults = parse_faults(args.fault)
        except ValueError as exc:
            problem = f"--fault: {exc}"
    if problem:
        print(f"chaos: {problem}", file=sys.stderr)
        return 2
    stop = threading.Event()
    install_stop_signals(stop)
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    out_dir = (args.reports_dir or REPORTS_DIR) / f"chaos-{stamp}"
    try:
        stack = ensure_stack()
    except StackError as exc:
        print(f"chaos: the local stack did not come up: {exc}", file=sys.stderr)
        return 1
    env = component_env(stack)
    try:
        overrides, groups, _ = isolation_env(stamp, env)
    except KafkaException as exc:
        print(f"chaos: cannot set up fresh consumer groups: {exc}", file=sys.stderr)
        return 1
    ports = {name: free_port() for name in ("ingest", "process", "sink", "simulate")}
    overrides.update(
        {
            "TELEMETRY_INGEST_HEALTH_PORT": str(ports["ingest"]),
            "TELEMETRY_PROCESS_HEALTH_PORT": str(ports["process"]),
            "TELEMETRY_PROCESS_DATA_DIR": str(out_dir / "process-data"),
            "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT": str(ports["sink"]),
        }
    )
    sim_args, sim_env = payload_args(args.payload)
    env.update(overrides)
    env.update(sim_env)
    settings = RunSettings(
        run_ingest_port=ports["ingest"],
        run_process_port=ports["process"],
        run_sink_port=ports["sink"],
        run_simulate_port=ports["simulate"],
    )
    prefix = f"chaos-{stamp.lower()}-{secrets.token_hex(2)}-"
    plan = plan_faults(faults, args.times, args.duration)
    server_faults = sorted({f.name for f in plan.faults} & SERVER_FAULTS)
    print(f"chaos {stamp}: devices {prefix}*, stack {stack.settings.stack_dir}, logs and "
          f"report in {out_dir}")
    print(f"faults, in order, {plan.gap_s:g} s of load before each and after the previous "
          f"one drained: {', '.join(f.name for f in plan.faults)}")
    if server_faults:
        print(f"server faults {server_faults} act on the stack in {stack.settings.stack_dir}")
    pipeline = PipelineProcesses(settings, env, out_dir / "logs")
    targets = ChaosTargets(pipeline, stack, stop, settings.run_ready_timeout_s, say)
    probe = InfluxProbe(influx_target(env))
    since = started_at - timedelta(minutes=1)
    summary_path = out_dir / "simulate-summary.json"
    records: list[FaultRecord] = []
    watcher: SeqWatcher | None = None
    dead_letters: DeadLetterTally | None = None
    drain_info: dict[str, Any] = {"drained": False, "seconds": None}
    summary: dict[str, Any] | None = None
    failure: str | None = None
    exits: dict[str, int | None] = {}
    try:
        pipeline.start_components(stop, say)
        dead_letters = DeadLetterTally(kafka_config(env), prefix).start()
        watcher = SeqWatcher(probe, prefix, since).start()
        pipeline.start_simulator(
            ["--devices", str(args.devices), "--rate", str(args.rate), "--bad-ratio", "0",
             "--seed", str(args.seed), "--device-prefix", prefix,
             "--summary", str(summary_path), *sim_args],
            stop,
        )  # fmt: skip
        sim = pipeline.simulator
        assert sim is not None
        print(f"load: {args.rate:g} msg/s from {args.devices} devices, at least "
              f"{args.duration:g} s")
        t0 = time.monotonic()
        pending = list(plan.faults)

        def tick(max_seq: dict[str, int] | None = None) -> None:
            now = time.monotonic()
            for rec in records:
                if rec.done() or watcher is None:
                    continue
                if recovered(watcher, rec.injected_at, max_seq):
                    rec.recovered_s = round(now - rec.injected_mono, 2)
                    say(f"  {rec.name} at {rec.at_s:g} s: drained after {rec.recovered_s} s")
                elif now - rec.injected_mono > args.drain_timeout:
                    rec.drain_timed_out = True
                    say(f"  {rec.name} at {rec.at_s:g} s: not drained after "
                        f"{args.drain_timeout:g} s", err=True)

        while not stop.is_set():
            if not sim.alive():
                failure = f"the simulator exited during the load; log {sim.log_path}"
                break
            tick()
            now = time.monotonic()
            free_at = t0 if not records else records[-1].done_mono() if records[-1].done() else None
            if free_at is not None and now >= free_at + plan.gap_s:
                if pending:
                    records.append(inject(pending.pop(0), targets, t0))
                    continue
                if now - t0 >= args.duration:
                    break
            stop.wait(TICK_S)
        sim.stop(settings.run_stop_timeout_s + 60)  # SIGTERM: it waits for PUBACKs, summarises
        if stop.is_set():
            failure = "interrupted"
        elif pending:
            failure = failure or f"{len(pending)} faults were not injected"
        elif not summary_path.exists():
            failure = f"the simulator wrote no summary; log {sim.log_path}:\n{sim.tail()}"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            max_seq = summary["max_seq_by_device"]
            print(f"load done; draining (up to {args.drain_timeout:g} s)")
            lag = ConsumerLag(kafka_config(env), groups)
            drain_info = drain(watcher, max_seq, lag, dead_letters, args.drain_timeout, stop,
                               lambda: tick(max_seq))
            tick(max_seq)
    except (StartError, KafkaException, FaultError) as exc:
        failure = str(exc)
    finally:
        if watcher:
            watcher.stop()
        exits = pipeline.stop_all()
        if dead_letters:
            dead_letters.close()
        probe.close()
    audit = None
    count_error = None
    if summary is not None:
        audit, count_error = count(env, prefix, since, summary["max_seq_by_device"])
    report = build_report(args, prefix, stamp, stack.settings.stack_dir, plan, records,
                          summary, audit, count_error, drain_info,
                          dead_letters.snapshot() if dead_letters else {}, exits, failure)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(format_headline(report))
    print(f"report: {path}")
    return 0 if report["verdict"]["passed"] else 1


def inject(fault: Fault, targets: ChaosTargets, t0: float) -> FaultRecord:
    at = round(time.monotonic() - t0, 2)
    rec = FaultRecord(fault.name, at, datetime.now(UTC), time.monotonic())
    say(f"fault {fault.name} at {at:g} s")
    try:
        rec.details = fault.inject(targets)
    except (FaultError, StartError, StackError, OSError) as exc:
        rec.error = f"{type(exc).__name__}: {exc}"
        say(f"  {fault.name} failed: {rec.error}", err=True)
    rec.restored_s = round(time.monotonic() - t0 - at, 2)
    say(f"  {fault.name}: back after {rec.restored_s} s {rec.details}")
    return rec


def count(
    env: dict[str, str], prefix: str, since: datetime, max_seq: dict[str, int]
) -> tuple[Any, str | None]:
    """The seq audit of the run's devices, from every stored point; a busy InfluxDB gets
    retries."""
    counter = InfluxProbe(influx_target(env), timeout_ms=120_000)
    error = None
    try:
        for attempt in range(3):
            try:
                stored = counter.seq_values(prefix, since, datetime.now(UTC) + timedelta(minutes=1))
                return audit_seqs(max_seq, stored), None
            except (ApiException, HTTPError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if attempt < 2:
                    time.sleep(5)
    finally:
        counter.close()
    return None, error


def build_report(
    args: argparse.Namespace,
    prefix: str,
    stamp: str,
    stack_dir: Path,
    plan: Plan,
    records: list[FaultRecord],
    summary: dict[str, Any] | None,
    audit: Any,
    count_error: str | None,
    drain_info: dict[str, Any],
    dlq: dict[str, int],
    exits: dict[str, int | None],
    failure: str | None,
) -> dict[str, Any]:
    points = audit.as_dict() if audit is not None else None
    reasons = []
    if failure:
        reasons.append(failure)
    if count_error:
        reasons.append(f"InfluxDB did not answer the count: {count_error}")
    if not drain_info.get("drained"):
        reasons.append("the pipeline did not drain in time")
    if points is not None and points["lost"]:
        reasons.append(f"{points['lost']} readings lost")
    if points is not None and points["duplicated"]:
        reasons.append(f"{points['duplicated']} readings stored twice")
    if sum(dlq.values()):
        reasons.append(f"{sum(dlq.values())} dead letters of good readings: {dlq}")
    reasons += [f"fault {r.name} at {r.at_s:g} s failed: {r.error}" for r in records if r.error]
    reasons += [f"fault {r.name} at {r.at_s:g} s: not drained within the drain timeout"
                for r in records if r.drain_timed_out]
    return {
        "run": {
            "mode": "chaos",
            "started_at": stamp,
            "device_prefix": prefix,
            "stack_dir": str(stack_dir),
            "devices": args.devices,
            "rate_asked": args.rate,
            "duration_s": args.duration,
            "seed": args.seed,
            "payload": args.payload,
            "faults_asked": args.fault,
            "times": args.times,
            "faults_in_order": [f.name for f in plan.faults],
            "gap_s": plan.gap_s,
        },
        "load": None if summary is None else {
            k: summary.get(k) for k in ("messages_sent", "readings_sent", "duration_s",
                                        "achieved_rate",
                                        "messages_acked", "messages_unacked", "kept_up",
                                        "expected_good_points")
        },
        "faults": [r.as_dict() for r in records],
        "points": points,
        "dead_letters": dlq,
        "drain": drain_info,
        "components": {name: {"exit_code": code} for name, code in exits.items()},
        "verdict": {"passed": not reasons, "reasons": reasons},
    }


def format_headline(report: dict[str, Any]) -> str:
    lines = []
    if report["load"]:
        lo = report["load"]
        lines.append(f"load: {lo['messages_sent']} messages in {lo.get('duration_s')} s "
                     f"({lo['achieved_rate']} msg/s), {lo['messages_unacked']} unacknowledged")
    for f in report["faults"]:
        lines.append(f"  {f['fault']} at {f['at_s']:g} s: back after {f['seconds_until_back']} "
                     f"s, drained after {f['seconds_to_drain']} s"
                     + (f", FAILED: {f['error']}" if f["error"] else ""))
    p = report["points"]
    if p is not None:
        lines.append(f"readings: expected {p['expected']}, stored points {p['stored_points']}, "
                     f"lost {p['lost']}, duplicated {p['duplicated']}, unexpected "
                     f"{p['unexpected']}")
    v = report["verdict"]
    lines.append("PASSED" if v["passed"] else "FAILED: " + "; ".join(v["reasons"]))
    return "\n".join(lines)
