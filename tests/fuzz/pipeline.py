"""One MQTT message through the whole pipeline in one process, without Kafka or a database.

ingest (`records_for`) -> the records' Avro bytes -> the processors' agents as the worker runs
them (`Forwarder.outputs_for` with the `readings` handler over the default step chain, and
the device tags table fed by `device_metadata`) -> the InfluxDB sink's decode and line
encoder -> InfluxDB's own parser (tests/fuzz/influx_line_protocol.py).

`Pipeline.run` never raises: what goes wrong is counted in the `Outcome`. A crash is any
exception our code lets out, or catches as a bug (the chain's and the forwarder's
"failed on this reading" path, seen through their `log.exception`); an injected point is a
line InfluxDB would read as anything but exactly the reading it was written for.
"""

from __future__ import annotations

import logging
import math
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import faust

from ingest.records import records_for
from ingest.settings import IngestSettings
from plumbing.reasons import Reason
from plumbing.topics import DLQ, ENRICHED, RAW
from processors.agents.device_metadata import metadata_problem
from processors.agents.readings import READS, chain_handler
from processors.chain import Chain
from processors.forwarder import Forwarder, Send
from processors.settings import ProcessorSettings
from schemas.codec import CodecError, default_codec
from sinks.line_protocol import Dialect, ReadingEncoder, UnrepresentableError, request_bodies
from tests.fuzz.influx_line_protocol import ParseError, Point, parse_body

#: The moment every fuzzed message is received (ms): timestamps are judged against it.
RECEIVED_AT_MS = 1_763_701_200_000
MEASUREMENT = "telemetry"
REASONS = frozenset(Reason)
#: Where our code logs the exceptions it catches as bugs.
_LOGGERS = ("processors", "sinks", "ingest")
#: Bytes a dead letter may take whatever its input (names, detail), in the per-byte bound.
DEAD_LETTER_ALLOWANCE = 1024
#: Lines holding a quote checked together through `request_bodies`, as the sink batches them
#: (only a quote can make InfluxDB read one line past its newline).
LINES_PER_BODY_CHECK = 64


@dataclass
class Outcome:
    """What inputs became; `merge` adds another worker's."""

    inputs: int = 0
    input_bytes: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    stored_points: int = 0
    dead_letters: int = 0
    dead_letter_bytes: int = 0
    #: the largest (dead-letter bytes of one input) / (its bytes + DEAD_LETTER_ALLOWANCE)
    worst_dead_letter_ratio: float = 0.0
    crashes: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)

    def merge(self, other: Outcome) -> None:
        self.inputs += other.inputs
        self.input_bytes += other.input_bytes
        self.rejects.update(other.rejects)
        self.stored_points += other.stored_points
        self.dead_letters += other.dead_letters
        self.dead_letter_bytes += other.dead_letter_bytes
        self.worst_dead_letter_ratio = max(self.worst_dead_letter_ratio,
                                           other.worst_dead_letter_ratio)
        self.crashes.extend(other.crashes)
        self.injected.extend(other.injected)


class _Caught(logging.Handler):
    """Collects the exceptions our code logs while it dead-letters the record they broke."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@dataclass(frozen=True)
class _Message:
    """What Faust hands an agent (the attributes Forwarder.outputs_for reads)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    headers: Any = None


class Pipeline:
    """Ingest, processors and the InfluxDB sink's encoder, as configured by default (every
    tag allowed through `enrich`, so hostile tags reach the encoder)."""

    def __init__(self) -> None:
        self.codec = default_codec()
        self.ingest_settings = IngestSettings()
        self.processor_settings = ProcessorSettings(process_tag_allow_list=["*"])
        self._datadir = tempfile.TemporaryDirectory(prefix="fuzz-faust-")
        app = faust.App("fuzz", web_enabled=False, autodiscover=False,
                        datadir=self._datadir.name)  # never started: no Kafka

        def no_delivery(agent: str, exc: BaseException) -> None:
            raise AssertionError("nothing is delivered here")

        self.forwarder = Forwarder(app, self.processor_settings, no_delivery, self.codec)
        self.tags: dict[bytes, dict[str, str]] = {}
        chain = Chain.from_settings(self.processor_settings, self._tags_of)
        self.handle = chain_handler(self.forwarder, chain)
        self.stage = chain.names[0]
        self.encoder = ReadingEncoder(MEASUREMENT, Dialect.INFLUXDB)
        self.caught = _Caught()
        for name in _LOGGERS:
            logging.getLogger(name).addHandler(self.caught)
        self._pending: list[tuple[str, Point]] = []
        #: the points InfluxDB would store for the last input (for the round-trip tests)
        self.points: list[Point] = []

    def close(self) -> None:
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(self.caught)
        self._datadir.cleanup()

    def _tags_of(self, device_id: str) -> dict[str, str] | None:
        return self.tags.get(device_id.encode())

    def run(self, topic: str, payload: bytes, outcome: Outcome) -> None:
        """One MQTT message (or, on topic telemetry.enriched, an EnrichedReading record for
        the sink alone); everything it became is added to `outcome`."""
        outcome.inputs += 1
        outcome.input_bytes += len(payload)
        letters_before = outcome.dead_letter_bytes
        self.points = []
        try:
            if topic == ENRICHED:
                self._enriched(payload, outcome)
            else:
                self._run(topic, payload, outcome)
        except Exception:
            outcome.crashes.append(
                f"{topic!r} {payload[:300]!r}: {traceback.format_exc(limit=6)}")
        for record in self.caught.records:
            outcome.crashes.append(
                f"{topic!r} {payload[:300]!r}: logged {record.getMessage()}: "
                f"{''.join(traceback.format_exception(*record.exc_info))[-1500:]}"
                if record.exc_info else record.getMessage())
        self.caught.records.clear()
        ratio = (outcome.dead_letter_bytes - letters_before) / (
            len(payload) + DEAD_LETTER_ALLOWANCE)
        outcome.worst_dead_letter_ratio = max(outcome.worst_dead_letter_ratio, ratio)

    def flush(self, outcome: Outcome) -> None:
        """Checks the lines still waiting for a request-body check."""
        if self._pending:
            self._check_bodies(outcome)

    def _run(self, topic: str, payload: bytes, outcome: Outcome) -> None:
        _, outgoing = records_for(topic, payload, self.ingest_settings, RECEIVED_AT_MS)
        for record in outgoing:
            if record.kind == "dead_letter":
                assert record.value is not None
                self._dead_letter(record.value, outcome)
            elif record.kind == "metadata":
                self._metadata(record.key, record.value, outcome)
            elif record.kind == "reading":
                assert record.topic == RAW and record.value is not None
                self._reading(record.key, record.value, outcome)
            else:
                raise AssertionError(f"unknown record kind {record.kind!r}")

    def _enriched(self, value: bytes, outcome: Outcome) -> None:
        """A record another producer (or a user's step) wrote to telemetry.enriched: the
        sink's encoder is then the only check between it and InfluxDB."""
        try:
            self.codec.decode(value, reader="EnrichedReading")
        except CodecError:
            outcome.rejects[Reason.UNDECODABLE_RECORD.value] += 1
            return
        self._sink(value, outcome)

    def _dead_letter(self, value: bytes, outcome: Outcome) -> None:
        letter = self.codec.decode(value, reader="DeadLetter")
        if letter["reason"] not in REASONS:
            raise AssertionError(f"dead letter with an undocumented reason {letter['reason']!r}")
        outcome.rejects[letter["reason"]] += 1
        outcome.dead_letters += 1
        outcome.dead_letter_bytes += len(value)

    def _metadata(self, key: bytes | None, value: bytes | None, outcome: Outcome) -> None:
        """The device_metadata agent: a record sets the device's tags, a tombstone forgets."""
        record = None if value is None else self.codec.decode(value, reader="DeviceMetadata")
        problem = metadata_problem(key, record)
        if problem is not None:
            raise AssertionError(f"ingest wrote a metadata record the processors refuse: "
                                 f"{problem.detail}")
        assert key is not None
        if record is None:
            self.tags.pop(key, None)
        else:
            self.tags[key] = dict(record["tags"])

    def _reading(self, key: bytes | None, value: bytes, outcome: Outcome) -> None:
        message = _Message(RAW, key, value)
        for output in self.forwarder.outputs_for(message, self.stage, READS, self.handle):
            assert isinstance(output, Send)
            if output.topic == DLQ:
                self._dead_letter(output.value, outcome)
            elif output.topic == ENRICHED:
                self._sink(output.value, outcome)
            else:
                raise AssertionError(f"the readings agent wrote to {output.topic}")

    def _sink(self, value: bytes, outcome: Outcome) -> None:
        """What the InfluxDB sink does with one record (sinks/batching.py `add`)."""
        try:
            reading = self.codec.decode(value, reader="EnrichedReading")
        except CodecError as exc:
            raise AssertionError(f"the processors wrote an unreadable record: {exc}") from None
        try:
            line = self.encoder.encode(reading)
        except UnrepresentableError:
            outcome.rejects[Reason.DATABASE_REJECTED.value] += 1
            return
        outcome.stored_points += 1
        expected = expected_point(reading)
        problem = line_problem(line, expected)
        if problem is not None:
            outcome.injected.append(problem)
            return
        self.points.append(expected)
        if '"' not in line:
            return  # no quote, no quoted state: InfluxDB splits the body at each newline
        self._pending.append((line, expected))
        if len(self._pending) >= LINES_PER_BODY_CHECK:
            self._check_bodies(outcome)

    def _check_bodies(self, outcome: Outcome) -> None:
        lines = [line for line, _ in self._pending]
        expected = [point for _, point in self._pending]
        self._pending = []
        try:
            parsed = [p for body in request_bodies(lines) for p in parse_body(body)]
        except ParseError as exc:
            outcome.injected.append(f"a request body of {lines!r} does not parse: {exc}")
            return
        if len(parsed) != len(expected) or not all(
                same_point(a, b) for a, b in zip(parsed, expected, strict=True)):
            outcome.injected.append(
                f"request bodies of {lines!r} read as {parsed!r}, not {expected!r}")


def expected_point(reading: dict[str, Any]) -> Point:
    """The point an EnrichedReading must be stored as: device_id and its tags, its fields
    and seq, at ts_us."""
    tags = {k: v for k, v in (reading.get("tags") or {}).items() if v != ""}
    tags["device_id"] = reading["device_id"]
    fields: dict[str, float | int] = dict(reading.get("fields") or {})
    if reading.get("seq") is not None:
        fields["seq"] = reading["seq"]
    return Point(
        MEASUREMENT,
        tuple(sorted(tags.items(), key=lambda kv: _escaped_tag_key(kv[0]))),
        tuple(sorted(fields.items())),
        reading["ts_us"] * 1000,
    )


_TAG_KEY_ESCAPES: dict[str, str | int | None] = {",": "\\,", "=": "\\=", " ": "\\ "}


def _escaped_tag_key(key: str) -> bytes:
    """How InfluxDB orders tags: by their keys' escaped bytes."""
    return key.translate(str.maketrans(_TAG_KEY_ESCAPES)).encode()


def line_problem(line: str, expected: Point) -> str | None:
    """None when InfluxDB reads `line` as exactly `expected` (one point, same measurement,
    tag set, field set with values and types, and time), else what differs."""
    if "\n" in line:
        return f"the line holds a newline: {line!r}"
    try:
        points = parse_body(line.encode())
    except ParseError as exc:
        return f"InfluxDB refuses {line!r}: {exc}"
    if len(points) != 1:
        return f"{line!r} reads as {len(points)} points: {points!r}"
    [point] = points
    if not same_point(point, expected):
        return f"{line!r} reads as {point!r}, not {expected!r}"
    return None


def same_point(a: Point, b: Point) -> bool:
    """Equal, floats compared by their bits (so -0.0 is not 0.0) and by type (1.0 is not 1i)."""
    if (a.measurement, sorted(a.tags), a.time_ns) != (b.measurement, sorted(b.tags), b.time_ns):
        return False
    if len(a.fields) != len(b.fields):
        return False
    for (ka, va), (kb, vb) in zip(sorted(a.fields, key=_by_key), sorted(b.fields, key=_by_key),
                                  strict=True):
        if ka != kb or type(va) is not type(vb):
            return False
        if isinstance(va, float) and isinstance(vb, float):
            if math.copysign(1.0, va) != math.copysign(1.0, vb) or va != vb:
                return False
        elif va != vb:
            return False
    return True


def _by_key(kv: tuple[str, Any]) -> str:
    return kv[0]
