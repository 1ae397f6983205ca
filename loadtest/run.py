"""`telemetry run`: the local stack, the whole pipeline and simulated devices, with a live view.

The stack is left running at the end (it is shared and slow to start); only the processes this
command started are stopped, in pipeline order.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from loadtest.consumer_lag import ConsumerLag
from loadtest.dead_letter_tally import DeadLetterTally
from loadtest.influx_probe import InfluxProbe, InfluxTarget
from loadtest.live_view import render_line, render_screen
from loadtest.pipeline_monitor import PipelineMonitor
from loadtest.pipeline_processes import PipelineProcesses, StartError
from loadtest.settings import RunSettings
from plumbing.settings import KafkaSettings
from stack.local_stack import LocalStack
from stack.processes import StackError

CLEAR = "\x1b[H\x1b[2J"


def ensure_stack(say: Callable[[str], None] = print) -> LocalStack:
    """The local stack, started only when it is not already running."""
    stack = LocalStack()
    if not stack.is_up():
        say("starting the local stack (the first time installs the servers: minutes)...")
        stack.up()
    return stack


def component_env(stack: LocalStack) -> dict[str, str]:
    return {**os.environ, **stack.client_env(), "TELEMETRY_LOG_FORMAT": "json"}


def kafka_config(env: dict[str, str]) -> dict[str, Any]:
    return KafkaSettings(
        kafka_bootstrap_servers=env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]
    ).confluent_config()


def influx_target(env: dict[str, str]) -> InfluxTarget:
    return InfluxTarget(
        env["TELEMETRY_INFLUXDB_URL"],
        env["TELEMETRY_INFLUXDB_ORG"],
        env["TELEMETRY_INFLUXDB_BUCKET"],
        env["TELEMETRY_INFLUXDB_TOKEN"],
    )


def install_stop_signals(stop: threading.Event) -> None:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all mean: stop in order, then exit."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())


def say(text: str, err: bool = False) -> None:
    """print() that survives a closed terminal: shutting down must not depend on output."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


def open_dead_letter_tally(env: dict[str, str], prefix: str | None) -> DeadLetterTally | None:
    try:
        return DeadLetterTally(kafka_config(env), prefix).start()
    except KafkaException as exc:
        say(f"dead letters unavailable: {exc}", err=True)
        return None


def simulator_args(args: argparse.Namespace, summary: Path) -> list[str]:
    out = ["--devices", str(args.devices), "--rate", str(args.rate)]
    out += ["--bad-ratio", str(args.bad_ratio), "--device-prefix", args.device_prefix]
    if args.seed is not None:
        out += ["--seed", str(args.seed)]
    return [*out, "--summary", str(summary)]


def query_hints(device_id: str, env: dict[str, str]) -> str:
    """How to look at what was stored: Flux, curl, the influx CLI and `telemetry query`."""
    url, org = env["TELEMETRY_INFLUXDB_URL"], env["TELEMETRY_INFLUXDB_ORG"]
    bucket, token = env["TELEMETRY_INFLUXDB_BUCKET"], env["TELEMETRY_INFLUXDB_TOKEN"]
    flux = (
        f'from(bucket:"{bucket}") |> range(start:-15m) '
        f'|> filter(fn:(r)=>r._measurement=="telemetry" and r.device_id=="{device_id}") '
        "|> last()"
    )
    curl = (
        f"curl -sS -XPOST {shlex.quote(f'{url}/api/v2/query?org={org}')} "
        f"-H {shlex.quote(f'Authorization: Token {token}')} "
        "-H 'Accept: application/csv' -H 'Content-Type: application/vnd.flux' "
        f"--data-binary {shlex.quote(flux)}"
    )
    influx = (
        f"influx query --host {shlex.quote(url)} --org {shlex.quote(org)} "
        f"--token {shlex.quote(token)} {shlex.quote(flux)}"
    )
    return "\n".join(
        [
            "Look at what was stored:",
            f"  telemetry query {shlex.quote(device_id)}",
            f"  Flux (InfluxDB UI at {url}, Data Explorer > Script Editor):",
            f"    {flux}",
            "  curl:",
            f"    {curl}",
            "  influx CLI (if installed):",
            f"    {influx}",
        ]
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry run`."""
    settings = RunSettings()
    stop = threading.Event()
    install_stop_signals(stop)
    interactive = sys.stdout.isatty()
    try:
        stack = ensure_stack()
    except StackError as exc:
        say(f"run: the local stack did not come up: {exc}", err=True)
        return 1
    env = component_env(stack)
    log_dir = stack.settings.logs_dir / "run"
    summary_path = log_dir / "simulate-summary.json"
    summary_path.unlink(missing_ok=True)
    pipeline = PipelineProcesses(settings, env, log_dir)
    since = datetime.now(UTC) - timedelta(seconds=5)
    say(f"logs: {log_dir}")
    dead_letters: DeadLetterTally | None = None
    influx: InfluxProbe | None = None
    code = 0
    try:
        pipeline.start_components(stop, say)
        dead_letters = open_dead_letter_tally(env, args.device_prefix)
        if not stop.is_set():
            pipeline.start_simulator(simulator_args(args, summary_path), stop)
            say(f"simulate ready (pid {pipeline.simulator.pid if pipeline.simulator else '?'})")
        influx = InfluxProbe(influx_target(env), timeout_ms=5_000)
        patterns = [p.strip() for p in settings.run_lag_groups.split(",") if p.strip()]
        monitor = PipelineMonitor(
            pipeline,
            ConsumerLag(kafka_config(env), patterns),
            dead_letters,
            influx,
            args.device_prefix,
            since,
        )
        title = (
            f"telemetry run: {args.devices} devices, {args.rate:g} msg/s, bad ratio "
            f"{args.bad_ratio:g}   (Ctrl-C stops the pipeline; the stack stays up)"
        )
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            snap = monitor.sample()
            say(CLEAR + render_screen(snap, title) if interactive else render_line(snap))
            if any(c.state.startswith("exited") for c in snap.components):
                code = 1
            if deadline is not None and time.monotonic() >= deadline:
                break
            wait = settings.run_refresh_s
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            stop.wait(wait)
    except StartError as exc:
        say(f"run: {exc}", err=True)
        code = 1
    finally:
        say(
            "stopping simulator, ingest, process, sink (SIGTERM; SIGKILL after "
            f"{settings.run_stop_timeout_s:.0f}s)..."
        )
        exits = pipeline.stop_all()
        if dead_letters:
            dead_letters.close()
        if influx:
            influx.close()
    say("stopped: " + ", ".join(f"{n} (exit {c})" for n, c in exits.items()))
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        say(
            f"simulator sent {summary['messages_sent']:,} messages, {summary['readings_sent']:,} "
            f"readings; expected good points {summary['expected_good_points']:,}; "
            f"bad messages {summary['bad_messages']:,}"
        )
        device = next(iter(summary["max_seq_by_device"]), f"{args.device_prefix}env-0001")
        say(query_hints(device, env))
    say(f"component logs: {log_dir}")
    return code
