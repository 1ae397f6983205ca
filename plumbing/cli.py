"""The `telemetry` command. Each package adds its own subcommands through `register()`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that contribute subcommands; each has `register(subparsers) -> None`.
COMMAND_MODULES = (
    "plumbing.settings_docs",
    "stack.cli",
    "ingest.cli",
    "processors.cli",
    "sinks.cli",
    "loadtest.cli",
    "dlq.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telemetry",
        description="Kafka-centric IoT telemetry pipeline: MQTT -> Kafka -> Faust -> databases.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
