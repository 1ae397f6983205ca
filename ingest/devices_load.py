"""`telemetry devices load FILE`: publish device tags from a CSV or JSON file.

Good rows are published even when others are bad; every bad row is reported with where it
is and what to fix, and the exit code says whether the file was clean.
"""

from __future__ import annotations

import functools
import sys
import time
import uuid
from pathlib import Path
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingest.device_files import DeviceFile, UnusableFile, read_device_file
from ingest.metadata import metadata_record
from ingest.records import encode_device_metadata, headers
from ingest.settings import IngestSettings
from plumbing.topics import METADATA

EXIT_OK = 0
EXIT_BAD_ROWS = 1
EXIT_UNUSABLE = 2


def load_devices(
    path: Path,
    settings: IngestSettings,
    fmt: str | None = None,
    dry_run: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Checks the file, publishes its good rows, reports the bad ones; returns the exit code."""
    try:
        parsed = read_device_file(path, fmt, settings.tag_limits)
    except UnusableFile as exc:
        print(f"{path}: {exc}", file=err)
        return EXIT_UNUSABLE
    for bad in parsed.bad:
        for problem in bad.problems:
            print(f"{path} {bad.where}: {problem}", file=err)
    if dry_run:
        print(f"{path}: {len(parsed.good)} devices ok, {len(parsed.bad)} rows bad "
              "(dry run: nothing published)", file=out)
        return EXIT_BAD_ROWS if parsed.bad else EXIT_OK
    delivered, failures = publish(parsed, settings)
    for where, why in failures:
        print(f"{path} {where}: Kafka did not take it: {why}", file=err)
    print(f"{path}: published {delivered} devices to {METADATA}; {len(parsed.bad)} rows bad, "
          f"{len(parsed.good) - delivered} not delivered", file=out)
    if delivered < len(parsed.good):
        return EXIT_UNUSABLE
    return EXIT_BAD_ROWS if parsed.bad else EXIT_OK


def publish(parsed: DeviceFile, settings: IngestSettings) -> tuple[int, list[tuple[str, str]]]:
    """Produces every good row (source "file"); returns how many Kafka confirmed, and
    (where, error) of those it refused."""
    producer = Producer(settings.producer_config())
    failures: list[tuple[str, str]] = []
    confirmed = 0
    now_ms = time.time_ns() // 1_000_000
    trace = headers(uuid.uuid4().hex, now_ms)

    def delivered(where: str, error: KafkaError | None, _msg: Message) -> None:
        nonlocal confirmed
        if error is None:
            confirmed += 1
        else:
            failures.append((where, error.str()))

    for row in parsed.good:
        value = encode_device_metadata(metadata_record(row.device_id, row.tags, "file", now_ms))
        while True:
            try:
                producer.produce(
                    METADATA, value, row.device_id.encode(), headers=trace,
                    on_delivery=functools.partial(delivered, row.where))
                break
            except BufferError:
                producer.poll(0.5)
            except KafkaException as exc:
                failures.append((row.where, str(exc)))
                break
        producer.poll(0)
    left = producer.flush(settings.ingest_shutdown_timeout_s)
    if left:
        failures.append(("(remaining)", f"{left} records not confirmed within "
                         f"{settings.ingest_shutdown_timeout_s}s: is Kafka at "
                         f"{settings.kafka_bootstrap_servers} reachable?"))
    return confirmed, failures
