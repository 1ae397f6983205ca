"""Subcommands of `telemetry` for the processors package."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `telemetry process`."""
    parser = sub.add_parser(
        "process",
        help="run the Faust processors: validate, normalize units, enrich tags, derive metrics",
        description="Runs a Faust worker with the processor agents (settings: "
        "TELEMETRY_PROCESS_* and TELEMETRY_KAFKA_*; see processors/README.md).",
    )
    parser.set_defaults(func=_process)


def _process(args: argparse.Namespace) -> int:
    # Imported here so `telemetry --help` does not import Faust.
    from processors.app import run_worker
    from processors.settings import ProcessorSettings

    return run_worker(ProcessorSettings())
