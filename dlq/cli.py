"""`telemetry dlq summary|show|replay`: options here; the work loads only when a command runs
(dlq/commands.py), so these add nothing to the start-up of every other `telemetry` command."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable


def _lazy(function: str) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        entry: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module("dlq.commands"), function)
        return entry(args)

    return call


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN",
                   help="from this time: a duration back from now (30m, 2h, 7d), an ISO 8601 "
                   "time (UTC unless it says) or epoch ms; default: the topic's start")
    p.add_argument("--until", metavar="WHEN", help="up to this time (same forms as --since)")
    p.add_argument("--reason", action="append", default=[], metavar="R",
                   help="only this reason (its own or a listed metric's); repeat or "
                   "comma-separate for several")
    p.add_argument("--stage", action="append", default=[], metavar="S",
                   help="only this stage (ingest, metadata, validate, normalize, enrich, "
                   "sink-influxdb, ...); repeat or comma-separate")
    p.add_argument("--device", action="append", default=[], metavar="D",
                   help="only this device id; shell patterns match the whole id ('pump-*'); "
                   "repeat for several")


def rate(text: str) -> float:
    """`--rate 50` or `--rate 50/s`."""
    value = float(text.strip().removesuffix("/s"))
    if value < 0:
        raise argparse.ArgumentTypeError("the rate is 0 (no limit) or more")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `telemetry dlq` with summary, show and replay."""
    dlq = sub.add_parser(
        "dlq", help="inspect the dead-letter topic and replay records once their cause is fixed",
        description="Reads telemetry.dlq (TELEMETRY_DLQ_TOPIC) with the TELEMETRY_KAFKA_* "
        "settings; replay also uses TELEMETRY_MQTT_* for ingest's rejects.")
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    s = actions.add_parser(
        "summary", help="counts by reason, stage, device and hour",
        description="Counts dead letters by reason, stage, device and UTC hour, from the "
        "topic's start or --since, up to where the topic ends now.")
    _filters(s)
    s.add_argument("--top", type=int, default=20, help="devices listed (default 20)")
    s.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    s.set_defaults(func=_lazy("summary"))

    w = actions.add_parser(
        "show", help="dead letters as JSON lines, with the original decoded",
        description="One JSON object a line: where the letter sits (dlq: topic/partition/"
        "offset), its fields, and the original as the stage received it (MQTT JSON and line "
        "protocol as text, Avro records decoded; base64 when neither).")
    _filters(w)
    w.add_argument("--limit", type=int, metavar="N", help="at most N letters")
    w.set_defaults(func=_lazy("show"))

    r = actions.add_parser(
        "replay", help="send dead letters back to where they entered the pipeline",
        description="Ingest's rejects (MQTT payloads) are published again to their MQTT "
        "topic; the processors' and sinks' (Kafka records) are produced again to their Kafka "
        "topic with the device id as key. Each replayed letter is recorded in "
        "TELEMETRY_DLQ_REPLAYED_TOPIC and skipped by later replays unless --again. Prints a "
        "JSON report; exit 1 when some records were not confirmed by the broker.")
    _filters(r)
    r.add_argument("--limit", type=int, metavar="N", help="replay at most N letters")
    r.add_argument("--dry-run", action="store_true",
                   help="print what would be replayed (one JSON line each); send nothing")
    r.add_argument("--rate", type=rate, metavar="N/s",
                   help="records a second (default TELEMETRY_DLQ_REPLAY_RATE, 100; 0: no limit)")
    r.add_argument("--again", action="store_true",
                   help="replay letters even when an earlier replay sent them")
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    r.set_defaults(func=_lazy("replay"))
