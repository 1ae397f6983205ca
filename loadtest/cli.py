"""Subcommands of `telemetry` for the loadtest package: simulate, run, benchmark, chaos, query.

Options are declared here and the modules load only when their command runs, so these
commands add nothing to the start-up time of every other `telemetry` command.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path


def _lazy(module: str, function: str = "main") -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        entry: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), function
        )
        return entry(args)

    return call


def _pipeline_options(p: argparse.ArgumentParser, bad_ratio: float, seed: int | None) -> None:
    p.add_argument("--devices", type=int, default=50, help="simulated devices (default 50)")
    p.add_argument(
        "--rate", type=float, default=200.0, help="messages/s, all devices (default 200)"
    )
    p.add_argument(
        "--bad-ratio",
        type=float,
        default=bad_ratio,
        help=f"share of bad messages (default {bad_ratio:g})",
    )
    p.add_argument(
        "--seed", type=int, default=seed, help=f"simulator seed (default {seed or 'random'})"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `simulate`, `run`, `benchmark`, `chaos` and `query`."""
    p = sub.add_parser(
        "simulate",
        help="simulated devices publishing telemetry over MQTT (good and, optionally, bad)",
        description="Devices publish QoS 1 telemetry to devices/<id>/telemetry at a total rate; "
        "metrics on the health port, a JSON summary with --summary. Options default to the "
        "TELEMETRY_SIMULATE_* settings.",
    )
    p.add_argument("--devices", type=int, help="number of devices (default 50)")
    p.add_argument("--rate", type=float, help="messages per second, all devices (default 200)")
    p.add_argument("--bad-ratio", type=float, help="share of bad messages, 0..1 (default 0)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument("--seed", type=int, help="random seed (default: random, recorded)")
    p.add_argument("--device-prefix", help="device id prefix (default 'sim-')")
    p.add_argument("--summary", type=Path, help="write the JSON summary to this file")
    p.add_argument("--health-port", type=int, help="metrics/health port (default 9105)")
    p.add_argument(
        "--processes", type=int, help="sending processes (default 0: as many as the rate needs)"
    )
    p.add_argument(
        "--batch-share", type=float,
        help="share of good messages sent as a batch of 2..10 readings (default 0.25)",
    )
    p.add_argument(
        "--metrics-per-reading", type=int,
        help="metrics in every reading, 1..4 (default 0: each device kind's own)",
    )
    p.add_argument(
        "--ts-format", choices=("mixed", "epoch_ms"),
        help="ts of good readings: mixed forms, or epoch ms only (default mixed)",
    )
    p.add_argument(
        "--units", choices=("mixed", "canonical"),
        help="metric values: each device's own units, or bare canonical numbers only "
        "(default mixed)",
    )
    p.set_defaults(func=_lazy("loadtest.simulator"))

    r = sub.add_parser(
        "run",
        help="the local stack, the whole pipeline and simulated devices, with a live view",
        description="Starts the stack if needed, then ingest, process, sink influxdb and the "
        "simulator; refreshes a live view every 2 s until Ctrl-C (or --duration). The stack "
        "stays up afterwards.",
    )
    _pipeline_options(r, bad_ratio=0.0, seed=None)
    r.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    r.add_argument("--device-prefix", default="sim-", help="device id prefix (default 'sim-')")
    r.set_defaults(func=_lazy("loadtest.run"))

    b = sub.add_parser(
        "benchmark",
        help="measure the pipeline (fixed rate, --find-max) or one component (--component); "
        "report in JSON + PNG",
        description="Fixed rate (default): like `run` for a fixed duration and seed, with a "
        "unique device prefix, then drained. --find-max: the rate stepped up until a step "
        "loses readings, lets the lag grow or exceeds the p99 limit. --component: one "
        "component alone on a pre-filled backlog of --count readings. Every report has the "
        "CPU per reading of each component and server; written to loadtest/reports/<time>/.",
    )
    b.add_argument("--devices", type=int, default=50, help="simulated devices (default 50)")
    b.add_argument(
        "--rate", type=float, default=200.0, help="fixed rate: msg/s, all devices (default 200)"
    )
    b.add_argument(
        "--bad-ratio",
        type=float,
        help="share of bad messages (default 0.05 at a fixed rate, 0 for --find-max)",
    )
    b.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    b.add_argument(
        "--duration", type=float, default=60.0, help="fixed rate: seconds of load (default 60)"
    )
    b.add_argument(
        "--drain-timeout",
        type=float,
        default=180.0,
        help="max seconds to drain, or for a --component backlog (default 180)",
    )
    b.add_argument("--reports-dir", type=Path, help="where reports go (default loadtest/reports)")
    b.add_argument(
        "--fresh-groups",
        action="store_true",
        help="fixed rate: processors and sink in new consumer groups starting at the topics' "
        "end (measures this run only, not a backlog left in Kafka; --find-max always does)",
    )
    b.add_argument(
        "--payload",
        choices=("uniform", "mixed"),
        default="uniform",
        help="uniform (default): one reading of 4 metrics per message, epoch-ms ts, the "
        "comparable load; mixed: every accepted form of the contract",
    )
    b.add_argument(
        "--component",
        choices=("ingest", "process", "sink"),
        help="replay a pre-filled backlog through this one component only",
    )
    b.add_argument(
        "--count",
        type=int,
        default=50_000,
        help="--component: readings in the backlog (default 50,000; ingest at most 100,000)",
    )
    b.add_argument(
        "--find-max",
        action="store_true",
        help="step the offered rate up; report the highest rate held with zero loss",
    )
    b.add_argument(
        "--step-duration",
        type=float,
        default=30.0,
        help="--find-max: seconds of load per step (default 30)",
    )
    b.add_argument(
        "--ramp",
        help="--find-max: rising rates to try, comma-separated (default "
        "1000,2000,3000,5000,7500,10000,15000,20000,30000,40000,50000); after the first "
        "failure the ramp bisects",
    )
    b.add_argument(
        "--bisect-steps",
        type=int,
        default=2,
        help="--find-max: bisections between the highest held and the lowest failed rate "
        "(default 2)",
    )
    b.add_argument(
        "--max-p99-ms",
        type=float,
        default=2000.0,
        help="--find-max: a step fails when p99 publish -> queryable exceeds this (default 2000)",
    )
    b.add_argument(
        "--compare",
        choices=("telegraf",),
        help="the same steps (or with --find-max the same ramp) through our pipeline, then "
        "through Telegraf (built on first use, ~2 min; cached), each alone; the report "
        "compares loss, latency, CPU and memory per message",
    )
    b.set_defaults(func=_lazy("loadtest.benchmark"))

    c = sub.add_parser(
        "chaos",
        help="the pipeline under load while faults are injected (kills, server restarts, "
        "pauses); counts lost and duplicated readings by seq",
        description="Starts ingest, process and sink of its own and the simulator, injects "
        "the faults during the load (each after the previous one drained), drains, then counts "
        "per device the "
        "readings lost (seqs 1..max not stored) and stored twice. Writes report.json to "
        "loadtest/reports/chaos-<time>/; exits 1 on any loss, duplicate or failed fault. "
        "Server faults act on the stack named by TELEMETRY_STACK_* (use one of your own).",
    )
    c.add_argument(
        "--fault",
        required=True,
        help="comma-separated, in order: kill-ingest, kill-process, kill-sink, "
        "restart-mosquitto, restart-kafka, restart-influxdb, pause-kafka[:S], "
        "pause-influxdb[:S] (S seconds, default 10); or all",
    )
    c.add_argument("--times", type=int, default=1, help="each fault this many times (default 1)")
    c.add_argument("--rate", type=float, default=200.0, help="msg/s, all devices (default 200)")
    c.add_argument(
        "--duration", type=float, default=60.0, help="seconds of load (default 60)"
    )
    c.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    c.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    c.add_argument(
        "--payload",
        choices=("uniform", "no-ts"),
        default="uniform",
        help="uniform (default): one reading of 4 metrics, epoch-ms ts; no-ts: the same "
        "without ts (ingest stamps its receive time, so a redelivery is a second point)",
    )
    c.add_argument(
        "--drain-timeout", type=float, default=180.0,
        help="max seconds to drain after the load (default 180)",
    )
    c.add_argument("--reports-dir", type=Path, help="where reports go (default loadtest/reports)")
    c.set_defaults(func=_lazy("loadtest.chaos"))

    q = sub.add_parser(
        "query",
        help="a device's latest stored value of each field (InfluxDB)",
        description="Reads TELEMETRY_INFLUXDB_URL/_ORG/_BUCKET/_TOKEN, or the local stack's.",
    )
    q.add_argument("device", help="device id, exactly as in the MQTT topic")
    q.add_argument("--since", default="-30d", help="how far back to look (default -30d)")
    q.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    q.set_defaults(func=_lazy("loadtest.latest_values"))
