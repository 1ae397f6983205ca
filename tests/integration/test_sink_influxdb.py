"""`telemetry sink influxdb` as a real process against the real Kafka and InfluxDB.

Each test has its own consumer group, device ids and a `test_run` tag. Tests that read
telemetry.enriched first commit the topic's current end for their group, so the sink sees only
what the test produces from then on. The crash and outage tests use a private topic instead:
they assert what is (not) committed and (not) stored, which another sink running on
telemetry.enriched at the same time (a teammate's `telemetry run`) would otherwise disturb.

Flux's CSV output drops carriage returns, so values are compared with exact Flux filters
(`r.device_id == "..."` is a byte comparison in the database) as well as read back.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from plumbing.topics import DLQ, ENRICHED
from schemas.codec import default_codec
from sinks.line_protocol import encode_point, escape_tag, request_bodies
from tests.support.components import Component, free_port

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WAIT_S = 90.0


# -- helpers ------------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def flux_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out).replace("${", "\\${") + '"'


def us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


def reading(device_id: str, ts_us: int, fields: dict[str, float], run: str,
            seq: int | None = None, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "ts_us": ts_us,
        "received_at_ms": ts_us // 1000,
        "seq": seq,
        "fields": fields,
        "units": {},
        "tags": {"test_run": run, **(tags or {})},
    }


class Kafka:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def produce(self, topic: str, readings: list[dict[str, Any]]) -> list[tuple[int, int]]:
        """Produces and waits for every record; returns (partition, offset) of each."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 20})
        placed: list[tuple[int, int]] = []
        errors: list[str] = []

        def done(err: Any, msg: Any) -> None:
            if err:
                errors.append(str(err))
            else:
                placed.append((msg.partition(), msg.offset()))

        codec = default_codec()
        for r in readings:
            while True:
                try:
                    producer.produce(topic, codec.encode("EnrichedReading", r),
                                     r["device_id"].encode(), on_delivery=done)
                    break
                except BufferError:
                    producer.poll(0.1)
        assert producer.flush(60) == 0 and not errors, errors
        return placed

    def produce_raw(self, topic: str, key: bytes, value: bytes) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        producer.produce(topic, value, key)
        assert producer.flush(30) == 0

    def ends(self, topic: str) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "sink-test-probe"})
        try:
            meta = c.list_topics(topic, timeout=15).topics[topic]
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                    for p in meta.partitions}
        finally:
            c.close()

    def start_group_at_end(self, group: str, topic: str) -> dict[int, int]:
        ends = self.ends(topic)
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            c.commit(offsets=[TopicPartition(topic, p, o) for p, o in ends.items()],
                     asynchronous=False)
        finally:
            c.close()
        return ends

    def caught_up(self, group: str, topic: str, ends: dict[int, int]) -> bool:
        """The group committed the end of every partition that has records."""
        ends = {p: o for p, o in ends.items() if o > 0}
        return self.committed(group, topic, list(ends)) == ends

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
            return {tp.partition: tp.offset for tp in got}
        finally:
            c.close()

    def create_topic(self, partitions: int = 3) -> str:
        name = f"sink-test.{uuid.uuid4().hex[:12]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            fut.result(30)
        def ready() -> bool:
            try:
                return len(self.ends(name)) == partitions
            except KafkaException:  # leaders are still being elected
                return False

        wait_for("the new topic's partition leaders", ready)
        return name

    def delete_topic(self, name: str) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for fut in admin.delete_topics([name]).values():
            fut.result(30)

    def dead_letters(self, start: dict[int, int], want: Callable[[list[dict[str, Any]]], bool],
                     device_ids: set[str]) -> list[dict[str, Any]]:
        """DLQ records of these devices from `start` on, read until `want(records)`."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"dlq-{uuid.uuid4()}",
                      "enable.auto.commit": False})
        c.assign([TopicPartition(DLQ, p, o) for p, o in start.items()])
        found: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and not want(found):
                for msg in c.consume(500, timeout=0.5):
                    value = msg.value()
                    if msg.error() or value is None:
                        continue
                    rec = default_codec().decode(value)
                    if rec.get("device_id") in device_ids:
                        found.append(rec)
            return found
        finally:
            c.close()


class Influx:
    def __init__(self, env: dict[str, str]) -> None:
        self.bucket = env["TELEMETRY_INFLUXDB_BUCKET"]
        self.client = InfluxDBClient(url=env["TELEMETRY_INFLUXDB_URL"],
                                     token=env["TELEMETRY_INFLUXDB_TOKEN"],
                                     org=env["TELEMETRY_INFLUXDB_ORG"], timeout=60_000)
        self.query_api = self.client.query_api()

    def rows(self, run: str, extra: str = "") -> list[dict[str, Any]]:
        """One row per stored point of this run (fields pivoted into columns)."""
        return self._pivoted(run, extra)[0]

    def series(self, run: str) -> int:
        """Series of this run: the pivot makes one table per measurement and tag set."""
        return self._pivoted(run, "")[1]

    def _pivoted(self, run: str, extra: str) -> tuple[list[dict[str, Any]], int]:
        flux = (
            f'from(bucket: {flux_str(self.bucket)}) |> range(start: 0) '
            f'|> filter(fn: (r) => r._measurement == "telemetry" and r.test_run == '
            f'{flux_str(run)}{extra}) '
            '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
        )
        out = []
        tables = self.query_api.query(flux)
        for table in tables:
            for rec in table.records:
                row = {k: v for k, v in rec.values.items()
                       if k not in ("result", "table", "_start", "_stop", "_measurement")
                       and v is not None}
                row["_time"] = us(rec.get_time())
                out.append(row)
        return out, len(tables)

    def count(self, run: str, extra: str = "") -> int:
        return len(self.rows(run, extra))

    def values(self, run: str, field: str) -> list[Any]:
        """Every stored value of one field in this run (cheaper than whole rows)."""
        flux = (
            f'from(bucket: {flux_str(self.bucket)}) |> range(start: 0) '
            f'|> filter(fn: (r) => r._measurement == "telemetry" and r.test_run == '
            f'{flux_str(run)} and r._field == {flux_str(field)}) |> keep(columns: ["_value"])'
        )
        return [rec.get_value() for table in self.query_api.query(flux) for rec in table.records]

    def write_line(self, line: str) -> None:
        self.client.write_api(write_options=SYNCHRONOUS).write(
            bucket=self.bucket,
            record=line,
            write_precision=WritePrecision.US,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def kafka(stack_env: dict[str, str]) -> Kafka:
    return Kafka(stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"])


@pytest.fixture(scope="module")
def influx(stack_env: dict[str, str]) -> Iterator[Influx]:
    db = Influx(stack_env)
    yield db
    db.client.close()


@pytest.fixture()
def run_id() -> str:
    return uuid.uuid4().hex[:12]


def sink(stack_env: dict[str, str], tmp_path: Path, group: str, topic: str,
         wait_ready: bool = True, **env: str) -> Component:
    port = free_port()
    component = Component(
        ["sink", "influxdb"],
        {
            **stack_env,
            "TELEMETRY_SINK_INFLUXDB_GROUP_ID": group,
            "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT": str(port),
            "TELEMETRY_SINK_TOPICS": topic,
            "TELEMETRY_SINK_BATCH_MAX_AGE_MS": "100",
            "TELEMETRY_LOG_FORMAT": "json",
            **env,
        },
        tmp_path,
        health_port=port if wait_ready else None,
    )
    component.start()
    component.health_port = port
    return component


def committed_past(kafka: Kafka, group: str, topic: str, placed: list[tuple[int, int]]) -> bool:
    done = kafka.committed(group, topic, sorted({p for p, _ in placed}))
    return all(done[p] > o for p, o in placed)


def metric(component: Component, name: str, labels: str = "") -> float:
    """A sample of the component's /metrics; `labels` is a substring its labels must hold."""
    for line in component.metrics().splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def now_us() -> int:
    # A little in the past, whole seconds apart from other tests' data is not needed:
    # the test_run tag keeps every test's points apart.
    return int(time.time() * 1_000_000) - 600_000_000


# -- (a) exact points ---------------------------------------------------------------------------


def test_points_are_stored_exactly(stack_env: dict[str, str], kafka: Kafka, influx: Influx,
                                   run_id: str, tmp_path: Path) -> None:
    group = f"sink-test-{run_id}"
    kafka.start_group_at_end(group, ENRICHED)
    base = now_us()
    expected: dict[tuple[str, int], dict[str, Any]] = {}
    readings = []
    awkward = [0.1 + 0.2, 1e-300, 123456789.123456789, -40.0, 2.0**-1074, 1e308, 21.5]
    for d in range(3):
        device = f"exact-{run_id}-{d}"
        for i in range(10):
            ts = base + d * 1_000_003 + i * 7_919  # odd microseconds
            # Produced straight to telemetry.enriched: the processors (which add dew_point
            # to a reading) never see these, so the stored points hold exactly these fields.
            fields = {"temperature": awkward[(d + i) % len(awkward)], "pressure": i * 1.1}
            seq = 2**53 + 1 + i if d == 0 else i
            tags = {"site": "plant one", "area": f"a,{d}"}
            readings.append(reading(device, ts, fields, run_id, seq=seq, tags=tags))
            expected[(device, ts)] = {**fields, "seq": seq, "site": "plant one",
                                      "area": f"a,{d}", "device_id": device,
                                      "test_run": run_id}
    placed = kafka.produce(ENRICHED, readings)
    component = sink(stack_env, tmp_path, group, ENRICHED)
    try:
        wait_for("offsets committed past every record",
                 lambda: committed_past(kafka, group, ENRICHED, placed))

        def stored() -> dict[tuple[str, int], dict[str, Any]]:
            return {(r["device_id"], r["_time"]): {k: v for k, v in r.items() if k != "_time"}
                    for r in influx.rows(run_id)}

        # A point's fields become visible one by one, so wait for whole points.
        got = wait_for("all 30 points, whole", lambda: stored() == expected and stored())
        assert got == expected
        assert metric(component, "telemetry_sink_end_to_end_seconds_count") >= 30
        rows = influx.rows(run_id)
        assert len(rows) == 30
        assert all(isinstance(r["seq"], int) for r in rows)
        assert influx.series(run_id) == 3
        assert metric(component, "telemetry_sink_points_written_total") >= 30
    finally:
        assert component.stop() == 0, component.tail()


# -- (b) hostile strings ------------------------------------------------------------------------

STORABLE_IDS = [
    "dev with spaces", "dev,comma", "dev=equals", 'dev"quote', "dev'single'",
    "dev\\backslash", "dev\\\\two", "\\lead", "dev\\,bc", "dev\\ bs", "dev\\=be", "dev\\\"bq",
    "ünï日本🙂", "dev\ttab", "dev\rcr", "dev\x01ctl", " lead space", "=lead", ",lead", "#hash",
    "x temperature=99 1,device_id=evil,test_run=other",
    'a\\ b\\="',  # makes InfluxDB's line splitter read past its newline: must not eat others
    'q\\ u\\=" temperature=1 2',
]
#: Device ids (a run id goes in front) that line protocol cannot carry, and why.
UNSTORABLE_TAILS = {"trail\\": "ends with a backslash", "two\\\\": "ends with a backslash",
                    "new\nline": "newline"}
HOSTILE_TAGS = {"site": 'si te,="\\x', "key with space": "v", "k,ey": "v,1", "k=ey": "v=1",
                'k"ey': 'v"1', "k\\ey": "v\\1", "ü-tag": "日本"}
HOSTILE_METRICS = {"temp erature": 1.5, "hum,idity": 2.5, "a=b": 3.5, 'q"uote': 4.5,
                   "back\\slash": 5.5, "ü-metric": 6.5, "even\\\\,run": 7.5, "_under": 8.5}


def test_hostile_strings_round_trip_exactly_and_inject_nothing(
    stack_env: dict[str, str], kafka: Kafka, influx: Influx, run_id: str, tmp_path: Path
) -> None:
    group = f"sink-test-{run_id}"
    kafka.start_group_at_end(group, ENRICHED)
    dlq_start = kafka.ends(DLQ)
    base = now_us()
    readings = [reading(dev, base + i, {"temperature": float(i)}, run_id, seq=i)
                for i, dev in enumerate(STORABLE_IDS)]
    readings.append(reading("tags-dev", base + 1000, dict(HOSTILE_METRICS), run_id,
                            tags=dict(HOSTILE_TAGS)))
    unstorable = {f"{run_id}-{tail}": why for tail, why in UNSTORABLE_TAILS.items()}
    bad_metric_dev = f"bad-metric-{run_id}"
    readings += [reading(dev, base + 2000 + i, {"temperature": 1.0}, run_id)
                 for i, dev in enumerate(unstorable)]
    readings.append(reading(bad_metric_dev, base + 3000, {"ok": 1.0, "odd\\,run": 2.0}, run_id))
    placed = kafka.produce(ENRICHED, readings)
    component = sink(stack_env, tmp_path, group, ENRICHED)
    try:
        stored = len(STORABLE_IDS) + 1
        # Offsets are committed only after the database accepted the points (and the DLQ
        # the dead letters), so once they cover every record this run is complete.
        wait_for("offsets committed past every record", lambda: committed_past(
            kafka, group, ENRICHED, placed))
        rows = influx.rows(run_id)
        assert len(rows) == stored, sorted(r["device_id"] for r in rows)
        assert influx.series(run_id) == stored

        # Every device id is stored byte for byte: an exact filter finds exactly its point.
        for i, dev in enumerate(STORABLE_IDS):
            hits = influx.rows(run_id, f" and r.device_id == {flux_str(dev)}")
            assert len(hits) == 1, dev
            assert hits[0]["temperature"] == float(i) and hits[0]["seq"] == i
            assert hits[0]["_time"] == base + i
            assert set(hits[0]) == {"device_id", "test_run", "temperature", "seq", "_time"}, dev
        # Read back through CSV too (which loses only carriage returns).
        assert {r["device_id"] for r in rows} == {d.replace("\r", "") for d in STORABLE_IDS} | {
            "tags-dev"}
        assert not [r for r in rows if r["device_id"] == "evil" or r.get("test_run") != run_id]

        # Hostile tag keys and values, hostile metric names.
        tag_filter = "".join(f" and r[{flux_str(k)}] == {flux_str(v)}"
                             for k, v in HOSTILE_TAGS.items())
        [tagged] = influx.rows(run_id, tag_filter)
        assert {k: tagged[k] for k in HOSTILE_TAGS} == HOSTILE_TAGS
        assert {k: tagged[k] for k in HOSTILE_METRICS} == HOSTILE_METRICS
        assert tagged["device_id"] == "tags-dev" and tagged["_time"] == base + 1000

        # What cannot be written is dead-lettered with the reason, not stored altered.
        ids = set(unstorable) | {bad_metric_dev}
        letters = kafka.dead_letters(dlq_start, lambda f: {r["device_id"] for r in f} >= ids, ids)
        by_device = {r["device_id"]: r for r in letters}
        assert set(by_device) == ids
        for dev, why in unstorable.items():
            rec = by_device[dev]
            assert rec["reason"] == "database_rejected" and rec["stage"] == "sink-influxdb"
            assert rec["original_format"] == "avro" and why in rec["detail"]
            assert default_codec().decode(rec["original"])["device_id"] == dev
        assert by_device[bad_metric_dev]["metric"] == "odd\\,run"
        assert influx.count(run_id, f" and r.device_id == {flux_str(bad_metric_dev)}") == 0
    finally:
        assert component.stop() == 0, component.tail()


def test_what_the_encoder_refuses_influxdb_really_cannot_store(
    influx: Influx, run_id: str
) -> None:
    """The refusals in line_protocol.py are InfluxDB's limits, not caution: written the only
    way line protocol allows, these values fail or are stored altered. (Measurement
    `sink_probe`, so nothing lands in `telemetry`.)"""
    write_api = influx.client.write_api(write_options=SYNCHRONOUS)
    ts = now_us()

    def write(body: str) -> int:
        try:
            write_api.write(bucket=influx.bucket, record=body,
                            write_precision=WritePrecision.US)  # type: ignore[arg-type]
            return 204
        except ApiException as exc:
            return int(exc.status or 0)

    def probe(mark: str) -> list[dict[str, Any]]:
        flux = (f'from(bucket: {flux_str(influx.bucket)}) |> range(start: 0) '
                f'|> filter(fn: (r) => r._measurement == "sink_probe" and r.mark == '
                f'{flux_str(mark)})')
        return [rec.values for t in influx.query_api.query(flux) for rec in t.records]

    # A tag value ending in a backslash: the separator after it reads as escaped.
    assert write(f"sink_probe,mark={run_id},v=trail\\ x=1 {ts}") == 400
    assert write(f"sink_probe,mark={run_id},v=trail\\,w=2 x=1 {ts}") == 400
    # A field key ending in an even run of backslashes is stored under another name.
    mark = f"{run_id}-even"
    assert write(f"sink_probe,mark={mark} trail\\\\=1.5,z=2.5 {ts}") == 204
    assert {v["_field"] for v in probe(mark)} == {"trail\\=1.5,z"}
    # An odd run of backslashes before a comma in a field key does not parse.
    assert write(f"sink_probe,mark={run_id} a\\\\,b=1.5 {ts}") == 400
    # A tab or NUL before the first field key is skipped as whitespace (found by the fuzz
    # tests' port of the parser): the field is stored under another name.
    for mark, lead in ((f"{run_id}-tab", "\t"), (f"{run_id}-nul", "\x00")):
        assert write(f"sink_probe,mark={mark} {lead}lead=1.5 {ts}") == 204
        assert {v["_field"] for v in probe(mark)} == {"lead"}
    # A measurement's `\=` and `\"` lose their backslash (escape.Unescape); the points are
    # not even found again by their tag (InfluxDB 2.9.1). Measurements `sink_probe=<run>` etc.
    assert write(f'sink_probe\\={run_id},mark={run_id} x=1 {ts}') == 204
    assert write(f'sink_probe\\"{run_id},mark={run_id} x=1 {ts}') == 204
    flux = (f'import "influxdata/influxdb/schema"\n'
            f'schema.measurements(bucket: {flux_str(influx.bucket)})')
    names = {rec.values["_value"] for t in influx.query_api.query(flux) for rec in t.records}
    assert {f"sink_probe={run_id}", f'sink_probe"{run_id}'} <= names
    assert not {f"sink_probe\\={run_id}", f'sink_probe\\"{run_id}'} & names
    # The line-splitter hazard: valid alone, but it swallows the line after it...
    hostile = 'a\\ b\\="'
    hazard = f"sink_probe,mark={run_id}-h,v={escape_tag(hostile, 'v')} x=1 {ts}"
    plain = f"sink_probe,mark={run_id}-h,v=plain x=2 {ts}"
    assert write(hazard + "\n" + plain) == 400
    # ...so request_bodies ends a body after it, and both points are stored.
    bodies = request_bodies([hazard, plain])
    assert len(bodies) == 2
    assert [write(b.decode()) for b in bodies] == [204, 204]
    assert {v["v"] for v in probe(f"{run_id}-h")} == {hostile, "plain"}


# -- (c) crash mid-stream -----------------------------------------------------------------------


def test_sigkill_mid_stream_loses_nothing_and_replays_overwrite(
    stack_env: dict[str, str], kafka: Kafka, influx: Influx, run_id: str, tmp_path: Path
) -> None:
    topic = kafka.create_topic(partitions=3)
    group = f"sink-test-{run_id}"
    n, devices = 60_000, 20
    base = now_us()
    readings = [reading(f"crash-{run_id}-{i % devices}", base + i, {"v": i * 0.5}, run_id, seq=i)
                for i in range(n)]
    try:
        placed = kafka.produce(topic, readings)
        first = sink(stack_env, tmp_path, group, topic, TELEMETRY_SINK_BATCH_MAX_POINTS="250")
        wait_for("some points written",
                 lambda: metric(first, "telemetry_sink_points_written_total") >= 500)
        first.kill()
        assert first.proc is not None and first.proc.returncode == -9

        written_before = len(influx.values(run_id, "seq"))
        committed = kafka.committed(group, topic, [0, 1, 2])
        committed_ours = sum(1 for p, o in placed if o < committed.get(p, 0))
        assert committed_ours <= written_before < n, (committed_ours, written_before)

        second = sink(stack_env, tmp_path / "second", group, topic,
                      TELEMETRY_SINK_BATCH_MAX_POINTS="5000")
        try:
            ends = kafka.ends(topic)
            wait_for("every offset committed", lambda: kafka.caught_up(group, topic, ends))
            # It resumed at the last commit, so it wrote again what was stored but not
            # committed when the first one died...
            assert metric(second, "telemetry_sink_points_written_total") == n - committed_ours
            print(f"replayed {written_before - committed_ours} points already stored")
        finally:
            assert second.stop() == 0, second.tail()
        # ...and those replays overwrote themselves: still exactly one point per reading.
        seqs = influx.values(run_id, "seq")
        assert len(seqs) == n and set(seqs) == set(range(n))
        assert sorted(influx.values(run_id, "v")) == [i * 0.5 for i in range(n)]
    finally:
        kafka.delete_topic(topic)


# -- rebalance ---------------------------------------------------------------------------------


def test_rebalance_with_a_batch_in_hand_loses_nothing(
    stack_env: dict[str, str], kafka: Kafka, influx: Influx, run_id: str, tmp_path: Path
) -> None:
    """A sink holding an unwritten batch loses its partitions to a second sink: it writes and
    commits the batch before letting go; later it stops (SIGTERM) holding another batch and
    writes that one too; the second sink takes over. Every reading is stored once."""
    topic = kafka.create_topic(partitions=6)
    group = f"sink-test-{run_id}"
    n = 20_000
    base = now_us()
    wave = [reading(f"rebal-{run_id}-{i % 60}", base + i, {"v": float(i)}, run_id, seq=i)
            for i in range(n)]
    try:
        kafka.produce(topic, wave[: n // 2])
        # Batches that only a rebalance or a shutdown will write.
        first = sink(stack_env, tmp_path, group, topic,
                     TELEMETRY_SINK_BATCH_MAX_POINTS="1000000",
                     TELEMETRY_SINK_BATCH_MAX_AGE_MS="600000")
        second = None
        try:
            wait_for("the first sink to hold all of the first half", lambda: _lag(first) == 0)
            assert metric(first, "telemetry_sink_points_written_total") == 0
            second = sink(stack_env, tmp_path / "second", group, topic)
            wait_for("the first batch written on revoke",
                     lambda: "batch written and committed before giving up" in first.tail(200))
            assert metric(first, "telemetry_sink_points_written_total") == n // 2
            kafka.produce(topic, wave[n // 2 :])  # over all six partitions, both sinks' share
            wait_for("the second sink writing",
                     lambda: metric(second, "telemetry_sink_points_written_total") > 0
                     if second else False)
        finally:
            assert first.stop() == 0, first.tail()  # writes the batch it holds, commits
        ends = kafka.ends(topic)
        try:
            wait_for("every offset committed", lambda: kafka.caught_up(group, topic, ends))
        finally:
            if second is not None:
                assert second.stop() == 0, second.tail()
        seqs = influx.values(run_id, "seq")
        assert len(seqs) == n and set(seqs) == set(range(n))
    finally:
        kafka.delete_topic(topic)


def _lag(component: Component) -> float | None:
    """Summed consumer lag once all six partitions report it, else None."""
    values = [float(line.rsplit(" ", 1)[1]) for line in component.metrics().splitlines()
              if line.startswith("telemetry_sink_consumer_lag{")]
    return sum(values) if len(values) == 6 else None


# -- (d) refused points -------------------------------------------------------------------------


def test_points_influxdb_refuses_go_to_the_dlq_with_its_reason(
    stack_env: dict[str, str], kafka: Kafka, influx: Influx, run_id: str, tmp_path: Path
) -> None:
    group = f"sink-test-{run_id}"
    kafka.start_group_at_end(group, ENRICHED)
    dlq_start = kafka.ends(DLQ)
    base = now_us()
    conflict_field = f"conflict_{run_id}"  # unique: a type conflict is per field and shard
    seed = f"seed-{run_id}"
    influx.write_line(encode_point("telemetry", {"device_id": seed, "test_run": run_id},
                                   {conflict_field: "a string"}, base))
    good = [reading(f"good-{run_id}", base + 10 + i, {"temperature": 20.0 + i}, run_id)
            for i in range(10)]
    conflict = reading(f"conflict-{run_id}", base + 100,
                       {conflict_field: 1.0, "temperature": 5.0}, run_id)
    reserved_tag = reading(f"reserved-{run_id}", base + 101, {"temperature": 6.0}, run_id,
                           tags={"time": "noon"})
    time_metric = reading(f"timefield-{run_id}", base + 102, {"time": 7.0}, run_id)
    placed = kafka.produce(ENRICHED, [*good[:5], conflict, reserved_tag, time_metric, *good[5:]])
    component = sink(stack_env, tmp_path, group, ENRICHED)
    try:
        # This sink commits after the database took the batch and Kafka its dead letters:
        # from then on its metrics and its dead letters are final.
        wait_for("offsets committed past every record",
                 lambda: committed_past(kafka, group, ENRICHED, placed))
        refused = {conflict["device_id"]: "field type conflict",
                   reserved_tag["device_id"]: "reserved tag key",
                   time_metric["device_id"]: "invalid field name"}
        letters = kafka.dead_letters(
            dlq_start, lambda f: {r["device_id"] for r in f} >= set(refused), set(refused)
        )
        by_device = {r["device_id"]: r for r in letters}
        assert set(by_device) == set(refused)
        for dev, words in refused.items():
            rec = by_device[dev]
            assert rec["reason"] == "database_rejected" and rec["stage"] == "sink-influxdb"
            assert rec["original_format"] == "line-protocol"
            assert rec["source_topic"] == ENRICHED
            assert words in rec["detail"], rec["detail"]
            assert rec["original"].decode().startswith("telemetry,")
            assert dev in rec["original"].decode()
        wait_for("the good points", lambda: influx.count(run_id, f' and r.device_id == '
                                                      f'{flux_str(good[0]["device_id"])}') == 10)
        assert influx.count(run_id) == 11  # ten good points and the seed
        assert metric(component, "telemetry_sink_points_refused_total") >= 3
        assert metric(component, "telemetry_sink_write_errors_total", 'kind="refused"') >= 3
    finally:
        assert component.stop() == 0, component.tail()


# -- (e) database down --------------------------------------------------------------------------


def test_unreachable_influxdb_pauses_retries_commits_nothing_then_catches_up(
    stack_env: dict[str, str], kafka: Kafka, influx: Influx, run_id: str, tmp_path: Path
) -> None:
    topic = kafka.create_topic(partitions=3)
    group = f"sink-test-{run_id}"
    try:
        start = {p: 0 for p in range(3)}
        kafka.produce(topic, [reading(f"outage-{run_id}-{i % 4}", now_us() + i, {"v": float(i)},
                                      run_id, seq=i) for i in range(50)])
        ends = kafka.ends(topic)
        down = sink(stack_env, tmp_path, group, topic, wait_ready=False,
                    TELEMETRY_INFLUXDB_URL=f"http://127.0.0.1:{free_port()}",
                    TELEMETRY_SINK_RETRY_INITIAL_S="0.1", TELEMETRY_SINK_RETRY_MAX_S="0.5",
                    TELEMETRY_SINK_SHUTDOWN_TIMEOUT_S="1")
        try:
            wait_for("three retries",
                     lambda: _metric_or_zero(down, "telemetry_sink_write_retries_total") >= 3)
            assert metric(down, "telemetry_sink_write_errors_total", 'kind="retryable"') >= 3
            assert metric(down, "telemetry_sink_paused") == 1.0
            assert metric(down, "telemetry_sink_points_written_total") == 0.0
            assert _readyz(down) == (503, "database: not ready")
            assert kafka.committed(group, topic, [0, 1, 2]) == {p: -1001 for p in start}
            assert influx.count(run_id) == 0
        finally:
            assert down.stop() == 0, down.tail()
        assert kafka.committed(group, topic, [0, 1, 2]) == {p: -1001 for p in start}

        up = sink(stack_env, tmp_path / "up", group, topic)
        try:
            wait_for("everything committed", lambda: kafka.caught_up(group, topic, ends))
            assert influx.count(run_id) == 50
            assert {r["seq"] for r in influx.rows(run_id)} == set(range(50))
        finally:
            assert up.stop() == 0, up.tail()
    finally:
        kafka.delete_topic(topic)


def _metric_or_zero(component: Component, name: str) -> float:
    try:
        return metric(component, name)
    except OSError:
        return 0.0  # health server not up yet


def _readyz(component: Component) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{component.health_port}/readyz") as r:
            return r.status, r.read().decode().splitlines()[0]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().splitlines()[0]

