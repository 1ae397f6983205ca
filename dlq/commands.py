"""What `telemetry dlq summary|show|replay` run (options in dlq/cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator

from confluent_kafka import KafkaException
from pydantic import ValidationError

from dlq.filters import LetterFilter
from dlq.letters import LetterReader, StoredLetter
from dlq.moments import moment_ms
from dlq.progress import Progress
from dlq.replay import Replayer, Sender, planned_line
from dlq.replay_log import ReplayLog
from dlq.settings import DlqSettings
from dlq.show import letter_line
from dlq.summary import Summary


class UsageError(ValueError):
    """A command-line value we cannot use; the message says which."""


def _names(values: list[str]) -> frozenset[str]:
    return frozenset(v.strip() for value in values for v in value.split(",") if v.strip())


def letter_filter(args: argparse.Namespace, now_ms: int) -> LetterFilter:
    try:
        since = None if args.since is None else moment_ms(args.since, now_ms)
        until = None if args.until is None else moment_ms(args.until, now_ms)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if since is not None and until is not None and until < since:
        raise UsageError("--until is before --since")
    return LetterFilter(
        reasons=_names(args.reason), stages=_names(args.stage), devices=tuple(args.device),
        since_ms=since, until_ms=until)


def _letters(reader: LetterReader, selected: LetterFilter) -> tuple[int, Iterator[StoredLetter]]:
    where = reader.range(selected.since_ms)
    return where.total, reader.read(where, selected.until_ms)


def _run(args: argparse.Namespace, work: str) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = DlqSettings()
        selected = letter_filter(args, int(time.time() * 1000))
    except ValidationError as exc:
        print(f"telemetry dlq: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"telemetry dlq {work}: {exc}", file=sys.stderr)
        return 2
    reader = LetterReader(settings.confluent_config(), settings.dlq_topic)
    try:
        if work == "summary":
            return _summary(args, reader, selected)
        if work == "show":
            return _show(args, reader, selected)
        return _replay(args, settings, reader, selected)
    except KafkaException as exc:
        print(f"telemetry dlq {work}: Kafka: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # the MQTT broker out of reach or refusing us
        print(f"telemetry dlq {work}: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()


def summary(args: argparse.Namespace) -> int:
    return _run(args, "summary")


def show(args: argparse.Namespace) -> int:
    return _run(args, "show")


def replay(args: argparse.Namespace) -> int:
    return _run(args, "replay")


def _summary(args: argparse.Namespace, reader: LetterReader, selected: LetterFilter) -> int:
    counts = Summary()
    _, letters = _letters(reader, selected)
    for letter in letters:
        if selected.matches(letter):
            counts.add(letter)
    if args.json:
        print(json.dumps(counts.as_dict(args.top), ensure_ascii=False))
    else:
        sys.stdout.write(counts.render(args.top))
    return 0


def _show(args: argparse.Namespace, reader: LetterReader, selected: LetterFilter) -> int:
    shown = 0
    _, letters = _letters(reader, selected)
    for letter in letters:
        if args.limit is not None and shown >= args.limit:
            break
        if selected.matches(letter):
            print(letter_line(letter), flush=False)
            shown += 1
    sys.stdout.flush()
    return 0


def _replay(args: argparse.Namespace, settings: DlqSettings, reader: LetterReader,
            selected: LetterFilter) -> int:
    from dlq.senders import KafkaSender, MqttSender

    log = ReplayLog(settings.confluent_config(), settings.dlq_replayed_topic,
                    settings.dlq_confirm_timeout_s)
    if not args.dry_run:
        log.ensure_topic()

    def kafka() -> Sender:
        return KafkaSender(settings)

    def mqtt() -> Sender:
        return MqttSender(settings)

    total, letters = _letters(reader, selected)
    replayer = Replayer(
        log, {"kafka": kafka, "mqtt": mqtt}, selected,
        rate=settings.dlq_replay_rate if args.rate is None else args.rate,
        chunk=settings.dlq_replay_chunk,
        confirm_timeout_s=settings.dlq_confirm_timeout_s,
        limit=args.limit, again=args.again, dry_run=args.dry_run,
        metadata_retained=settings.dlq_replay_metadata_retained,
        on_planned=lambda letter, dest: print(planned_line(letter, dest)),
        progress=Progress(total, "dry run" if args.dry_run else "replay",
                          enabled=not args.no_progress),
    )
    report = replayer.run(letters)
    print(json.dumps(report.as_dict(), ensure_ascii=False))
    return 1 if report.failed else 0
