"""Subcommands of `telemetry` for the ingest package: `ingest` and `devices load`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from ingest.settings import IngestSettings
from plumbing.health import HealthState, serve_health
from plumbing.logs import setup_logging

log = logging.getLogger("ingest")


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `telemetry ingest` and `telemetry devices load`."""
    ingest = sub.add_parser(
        "ingest",
        help="MQTT shared subscription -> Kafka telemetry.raw (configured by TELEMETRY_* env)",
        description="Subscribes to device telemetry and metadata over MQTT and produces them "
        "to Kafka; acknowledges each message only after Kafka has it.",
    )
    ingest.set_defaults(func=run_ingest)

    devices = sub.add_parser("devices", help="device metadata (tags)")
    devices_sub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    load = devices_sub.add_parser(
        "load",
        help="publish device tags from a CSV or JSON file to devices.metadata",
        description="CSV: a device_id column plus one column per tag (empty cell = no tag). "
        "JSON: {\"<device_id>\": {\"<tag>\": \"<value>\"}} or [{\"device_id\": ..., "
        "\"<tag>\": ...}]. Exit 0: all rows published; 1: some rows bad (the good ones "
        "were published); 2: file unusable or Kafka did not confirm.",
    )
    load.add_argument("file", type=Path, help="CSV or JSON file")
    load.add_argument("--format", choices=("csv", "json"), help="default: from the extension")
    load.add_argument("--dry-run", action="store_true", help="check the file, publish nothing")
    load.set_defaults(func=run_devices_load)


def _settings(command: str) -> IngestSettings | None:
    try:
        return IngestSettings()
    except ValidationError as exc:
        print(f"telemetry {command}: invalid settings:\n{exc}", file=sys.stderr)
        return None


def run_ingest(args: argparse.Namespace) -> int:
    from ingest.service import IngestService

    settings = _settings("ingest")
    if settings is None:
        return 2
    setup_logging(settings.log_format, settings.log_level)
    log.info("starting ingest", extra={"settings": settings.redacted()})
    state = HealthState()
    server = serve_health(settings.ingest_health_port, state)
    try:
        return asyncio.run(IngestService(settings, state).run())
    finally:
        server.shutdown()


def run_devices_load(args: argparse.Namespace) -> int:
    from ingest.devices_load import load_devices

    settings = _settings("devices load")
    if settings is None:
        return 2
    setup_logging(settings.log_format, settings.log_level)
    return load_devices(args.file, settings, fmt=args.format, dry_run=args.dry_run)
