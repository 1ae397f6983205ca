"""The alerts agent in a real `telemetry process` worker against the real local Kafka.

EnrichedReading records go straight to telemetry.enriched; a rule raises, holds and clears,
with a graceful restart (SIGTERM) and a crash (SIGKILL, its group then rewound as if it had
committed nothing since the last stop) in between: no alert is repeated, none is forgotten.

The worker gets a fresh app id whose group starts at the current end of its input topics,
and unique device ids, so other users of the shared Kafka neither disturb nor are disturbed.
Assertions look only at alerts of these devices written by this app id (`processor` header).

How the test knows it has seen everything: a second rule (`marker`, for 0) on the same
device. Alerts of one device go to one partition in the order they were sent, so once the
marker alert of a "barrier" reading is there, every alert of the readings before it is too.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from plumbing.topics import ALERTS, DLQ, ENRICHED, METADATA, RAW
from processors.forwarder import HEADER_PROCESSOR
from schemas.codec import default_codec
from tests.support.components import Component, free_port
from tests.support.kafka_helpers import commit_end_offsets, end_offsets
from tests.support.pipeline import metric_value

CODEC = default_codec()
PARTITIONS = 6
S = 1_000_000  # µs
#: The readings' own time; alerts go by it, not by the clock.
T0 = (int(time.time()) - 3600) * S






def start_group_at_end(bootstrap: str, group: str) -> None:
    """Commits the current end offsets of the app's inputs for a group nobody joined yet."""
    commit_end_offsets(bootstrap, group, [RAW, ENRICHED, METADATA])


def rewind(bootstrap: str, group: str, offset: TopicPartition, timeout: float = 120) -> None:
    """Commits `offset` for `group` once no member is left (a killed member stays until its
    session expires: Faust's default is 60 s)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description = admin.describe_consumer_groups([group])[group].result(10)
        if description.state == ConsumerGroupState.EMPTY:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"group {group} still has members after {timeout:.0f} s")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[offset], asynchronous=False)
    finally:
        consumer.close()


class Worker:
    """`telemetry process` with the alerts agent; every restart reuses the app id."""

    def __init__(self, env: dict[str, str], tmp: Path, rules: Path) -> None:
        self.env = env
        self.tmp = tmp
        self.rules = rules
        self.bootstrap = env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]
        self.app_id = f"it-alerts-{uuid.uuid4().hex[:10]}"
        self.changelog = f"{self.app_id}-alert_state-changelog"
        self.component: Component | None = None
        start_group_at_end(self.bootstrap, self.app_id)

    def start(self, **extra: str) -> Component:
        port = free_port()
        self.component = Component(
            ["process"],
            {
                **self.env,
                "TELEMETRY_PROCESS_APP_ID": self.app_id,
                "TELEMETRY_PROCESS_AGENTS": "alerts",
                "TELEMETRY_PROCESS_ALERT_RULES_FILE": str(self.rules),
                "TELEMETRY_PROCESS_HEALTH_PORT": str(port),
                "TELEMETRY_PROCESS_DATA_DIR": str(self.tmp / "faust-data"),
                "TELEMETRY_LOG_FORMAT": "json",
                **extra,
            },
            self.tmp / f"logs-{uuid.uuid4().hex[:6]}",
            health_port=port,
        )
        return self.component.start(ready_timeout=120)

    def tail(self) -> str:
        return self.component.tail() if self.component else ""

    def produced(self, message: Message) -> bool:
        by = dict(message.headers() or []).get(HEADER_PROCESSOR)
        return by == f"{self.app_id}/alerts".encode()


class Topic:
    """A consumer of some topics from their end offsets when it was made (or the start)."""

    def __init__(self, bootstrap: str, topics: list[str], beginning: bool = False) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap,
                                  "group.id": f"it-reader-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False})
        offsets = end_offsets(bootstrap, topics)
        if beginning:
            offsets = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
                       for tp in offsets]
        self.consumer.assign(offsets)
        self.got: list[Message] = []

    def until(self, done: Callable[[list[Message]], bool], keep: Callable[[Message], bool],
              timeout: float = 120) -> list[Message]:  # a limit, not a measure
        deadline = time.monotonic() + timeout
        while not done(self.got) and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is not None and not msg.error() and keep(msg):
                self.got.append(msg)
        return self.got

    def close(self) -> None:
        self.consumer.close()


class Readings:
    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "enable.idempotence": True})

    def send(self, device: str, at_s: float, tags: dict[str, str] | None = None,
             **fields: float) -> tuple[int, int]:
        return self.raw(device, CODEC.encode("EnrichedReading", {
            "device_id": device, "ts_us": T0 + round(at_s * S),
            "received_at_ms": int(time.time() * 1000), "seq": None,
            "fields": fields, "units": {}, "tags": tags or {},
        }))

    def raw(self, device: str, value: bytes) -> tuple[int, int]:
        """(partition, offset) once Kafka confirmed the record."""
        errors: list[str] = []
        delivered: list[Message] = []

        def done(err: Any, msg: Message) -> None:
            (errors.append(str(err)) if err is not None else delivered.append(msg))

        self.producer.produce(ENRICHED, key=device.encode(), value=value, on_delivery=done)
        assert self.producer.flush(30) == 0 and not errors, errors
        return delivered[0].partition() or 0, delivered[0].offset() or 0


def alerts_of(messages: list[Message], device: str) -> list[dict[str, Any]]:
    return [CODEC.decode(m.value() or b"", reader="Alert") for m in messages
            if m.key() == device.encode()]


def summary(alerts: list[dict[str, Any]], rule: str) -> list[tuple[str, float, int]]:
    """(state, value, milliseconds after T0) of a rule's alerts, in order."""
    return [(a["state"], a["value"], (a["ts_us"] - T0) // 1000) for a in alerts
            if a["rule"] == rule]


@pytest.fixture()
def devices() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    return {name: f"it-alert-{name}-{run}" for name in ("boiler", "freezer", "junk")}


@pytest.fixture()
def worker(stack_env: dict[str, str], tmp_path: Path,
           devices: dict[str, str]) -> Iterator[Worker]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
rules:
  - name: hot
    metric: temperature
    select: {{devices: [{devices['boiler']}]}}
    above: 50
    for: 30s
  - name: marker
    metric: marker
    select: {{devices: [{devices['boiler']}]}}
    above: 0
  - name: freezer-warm
    metric: temperature
    select: {{tags: {{site: "{devices['freezer']}-site", room: cold-store}}}}
    above: -10
    for: 0
""")
    w = Worker(stack_env, tmp_path, rules)
    yield w
    if w.component is not None:
        w.component.stop()


def test_raise_hold_clear_across_a_graceful_restart_and_a_crash(
    stack_env: dict[str, str], worker: Worker, devices: dict[str, str]
) -> None:
    boiler, freezer = devices["boiler"], devices["freezer"]
    bootstrap = worker.bootstrap
    readings = Readings(bootstrap)
    alerts = Topic(bootstrap, [ALERTS])
    ours = {boiler.encode(), freezer.encode()}

    def mine(m: Message) -> bool:
        return m.key() in ours and worker.produced(m)

    def barrier(at_s: int) -> None:
        """Waits until every alert of the boiler's readings so far is on telemetry.alerts."""
        readings.send(boiler, at_s, marker=1.0)
        readings.send(boiler, at_s + 0.001, marker=0.0)

        def seen(ms: list[Message]) -> bool:
            marks = summary(alerts_of(ms, boiler), "marker")
            return ("resolved", 0.0, at_s * 1000 + 1) in marks

        alerts.until(seen, keep=mine)
        assert seen(alerts.got), worker.tail()

    try:
        # --- first worker: the condition starts to hold; not yet for 30 s
        first = worker.start()
        readings.send(boiler, 0, temperature=60.0)
        readings.send(boiler, 10, temperature=61.0)
        barrier(11)
        assert summary(alerts_of(alerts.got, boiler), "hot") == []
        assert first.stop(signal.SIGTERM, timeout=60) == 0, worker.tail()

        # --- second worker: the pending state came back, so 30 s after the first reading
        # the alert fires.
        worker.start()
        partition, at_30 = readings.send(boiler, 30, temperature=62.0)
        readings.send(boiler, 40, temperature=63.0)  # holds: nothing
        readings.send(boiler, 45, humidity=20.0)  # no temperature: nothing
        barrier(46)
        assert summary(alerts_of(alerts.got, boiler), "hot") == [("firing", 62.0, 30_000)]
        # The state of the last barrier is in the table's changelog (states are written
        # after their alerts, in order): a crash now must not repeat anything.
        changelog = Topic(bootstrap, [worker.changelog], beginning=True)

        def state_written(ms: list[Message]) -> bool:
            return any((json.loads(m.value() or b"null") or {}).get("marker", {})
                       .get("changed_us") == T0 + 46_001_000 for m in ms)

        changelog.until(state_written, keep=lambda m: m.key() == boiler.encode())
        assert state_written(changelog.got), worker.tail()
        states = json.loads(changelog.got[-1].value() or b"null")
        assert states["hot"] == {"status": "firing", "since_us": T0,
                                 "changed_us": T0 + 30 * S}
        changelog.close()
        assert worker.component is not None
        worker.component.kill()
        # The worst crash: none of this worker's input was committed (it commits every
        # 2.8 s, and after every 10,000 records, which the chain agent of the same worker
        # reaches early when others feed telemetry.raw). Rewind its group to the 30 s
        # reading, once the dead member has left, so all of phase two comes again.
        rewind(bootstrap, worker.app_id, TopicPartition(ENRICHED, partition, at_30))

        # --- third worker: replays every reading since 30 s; the table says they are
        # done (30 s: hot fired; the barrier: marker resolved at 46.001 s; 40 s and 45 s
        # changed nothing), so nothing is sent again.
        third = worker.start()
        readings.send(boiler, 20, temperature=10.0)  # out of order: ignored
        readings.send(boiler, 50, temperature=64.0)  # still holds
        readings.send(boiler, 60, temperature=40.0)  # clears
        readings.send(boiler, 70, temperature=41.0)  # stays clear: nothing
        readings.send(freezer, 5, tags={"site": f"{freezer}-site", "room": "cold-store"},
                      temperature=-5.0)
        readings.send(freezer, 6, tags={"site": f"{freezer}-site"}, temperature=-1.0)  # not
        readings.send(freezer, 7, tags={"site": f"{freezer}-site", "room": "cold-store"},
                      temperature=-20.0)
        barrier(71)
        alerts.until(lambda ms: len(alerts_of(ms, freezer)) >= 2, keep=mine)

        boiler_alerts = alerts_of(alerts.got, boiler)
        assert summary(boiler_alerts, "hot") == [("firing", 62.0, 30_000),
                                                 ("resolved", 40.0, 60_000)], worker.tail()
        # every barrier's two marker alerts exactly once: the replay repeated none
        assert summary(boiler_alerts, "marker") == [
            (state, value, at) for b in (11_000, 46_000, 71_000)
            for state, value, at in (("firing", 1.0, b), ("resolved", 0.0, b + 1))]
        firing, resolved = (a for a in boiler_alerts if a["rule"] == "hot")
        assert firing == {
            "rule": "hot", "device_id": boiler, "state": "firing", "metric": "temperature",
            "condition": "above", "threshold": 50.0, "for_us": 30 * S, "value": 62.0,
            "ts_us": T0 + 30 * S, "since_us": T0, "tags": {}}
        assert (resolved["since_us"], resolved["ts_us"]) == (T0, T0 + 60 * S)
        for m in alerts.got:  # key = the device id
            assert CODEC.decode(m.value() or b"")["device_id"].encode() == m.key()

        freezer_alerts = alerts_of(alerts.got, freezer)
        assert summary(freezer_alerts, "freezer-warm") == [("firing", -5.0, 5_000),
                                                           ("resolved", -20.0, 7_000)]
        assert freezer_alerts[0]["tags"] == {"site": f"{freezer}-site", "room": "cold-store"}

        # The replay did happen: 30 s and the barrier's two came again and were ignored as
        # not newer than the table's state; then the out-of-order reading at 20 s.
        late = metric_value(third.metrics(), "telemetry_alert_late_readings_total")
        assert late == 3 + 1, (late, worker.tail())
    finally:
        alerts.close()


def test_a_record_that_is_not_a_reading_is_a_dead_letter_of_the_alerts_stage(
    stack_env: dict[str, str], worker: Worker, devices: dict[str, str]
) -> None:
    junk = devices["junk"]
    letters = Topic(worker.bootstrap, [DLQ])
    try:
        worker.start()
        Readings(worker.bootstrap).raw(junk, b"\xc3\x01 not an EnrichedReading")
        got = letters.until(lambda ms: len(ms) >= 1,
                            keep=lambda m: m.key() == junk.encode() and worker.produced(m))
        assert got, worker.tail()
        letter = CODEC.decode(got[0].value() or b"")
        assert (letter["stage"], letter["reason"], letter["device_id"]) == (
            "alerts", "undecodable_record", junk)
        assert letter["source_topic"] == ENRICHED
        assert letter["original"] == b"\xc3\x01 not an EnrichedReading"
    finally:
        letters.close()
