"""Subcommands of `telemetry` for the sinks package: `telemetry sink influxdb|tdengine`."""

from __future__ import annotations

import argparse


def _run_influxdb(args: argparse.Namespace) -> int:
    from sinks.influxdb import run

    return run(args)


def _run_tdengine(args: argparse.Namespace) -> int:
    from sinks.tdengine import run

    return run(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `sink influxdb` and `sink tdengine`; both are configured by TELEMETRY_* settings."""
    sink = sub.add_parser(
        "sink",
        help="store EnrichedReadings from Kafka in a database (batched, at-least-once)",
        description="Consume telemetry.enriched (TELEMETRY_SINK_TOPICS), write batches, commit "
        "offsets after the database accepted them. Options: TELEMETRY_* environment "
        "variables or TELEMETRY_CONFIG_FILE (see sinks/README.md).",
    )
    which = sink.add_subparsers(dest="sink", required=True, metavar="DATABASE")
    influx = which.add_parser(
        "influxdb", help="write to InfluxDB 2.x (bucket telemetry, measurement telemetry)"
    )
    influx.set_defaults(func=_run_influxdb)
    tdengine = which.add_parser(
        "tdengine",
        help="write to TDengine 3.x through taosAdapter (super table telemetry; unverified)",
    )
    tdengine.set_defaults(func=_run_tdengine)
