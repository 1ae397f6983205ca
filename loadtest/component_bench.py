"""`telemetry benchmark --component ingest|process|sink`: one component alone on a backlog.

Each component is a black box, driven by its command and `TELEMETRY_*` settings only:
- **ingest**: an MQTT persistent-session backlog. A session is opened under the client id and
  shared subscription ingest will use, with QoS 1, and left; the simulator publishes N
  messages (Mosquitto queues them for the absent session) under a topic root of the run's
  own, so no other ingest on the broker takes them; then `telemetry ingest` starts and the
  clock runs until all N readings are on `telemetry.raw` (counted by key: this run's device
  prefix).
- **process**: N RawReading records written straight to `telemetry.raw` (and the devices'
  tags to `devices.metadata`), after a fresh app id's offsets were set to the end of both;
  then `telemetry process` starts with that app id and the clock runs until its committed
  offsets on `telemetry.raw` reach the end of the backlog (Faust commits after the outputs
  are confirmed; the records of this run's devices on `telemetry.enriched` are counted too).
- **sink**: N EnrichedReading records in a topic of their own (`TELEMETRY_SINK_TOPICS`); then
  `telemetry sink influxdb` starts in a fresh consumer group and the clock runs until its
  committed offsets reach the end; the points are then counted in InfluxDB.

Progress and the CPU time of the component and of the servers are sampled 4 times a second;
readings/s and CPU µs per reading come from the steady part of the replay
(loadtest/steady_window.py), start-up figures are reported beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loadtest.backlog import (
    BacklogProducer,
    KeyCounter,
    backlog_readings,
    create_topic,
    device_metadata_value,
    end_offsets,
    enriched_reading_value,
    headers,
    raw_reading_value,
)
from loadtest.consumer_lag import start_group_at_end
from loadtest.cpu_table import CpuProbe, CpuSample, cpu_table
from loadtest.influx_probe import InfluxProbe
from loadtest.pipeline_processes import ComponentProcess, ComponentSpec, StartError, free_port
from loadtest.proc_stats import peak_rss_mib, rss_mib
from loadtest.run import influx_target, kafka_config
from loadtest.steady_window import steady_window
from plumbing.topics import ENRICHED, METADATA, RAW

log = logging.getLogger("loadtest.component_bench")

COMPONENTS = ("ingest", "process", "sink")
SAMPLE_EVERY_S = 0.25
#: Mosquitto of the local stack queues at most this many messages for an absent session
#: (stack/mosquitto.py, max_queued_messages)
MQTT_QUEUE_LIMIT = 100_000
#: the comparable load: one reading of this many metrics per message
METRICS_PER_READING = 4
TOPIC_PARTITIONS = 6


@dataclass
class Sample:
    t_s: float
    done: int
    others: int
    cpu: CpuSample
    rss_mib: float | None


@dataclass
class Replay:
    """What one component run saw; turned into the report's `component` section."""

    name: str
    backlog: int
    samples: list[Sample] = field(default_factory=list)
    completed: bool = False
    seconds_to_done: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    peak_rss_mib: float | None = None
    pid: int | None = None


def check_component_args(args: argparse.Namespace) -> str | None:
    if args.component not in COMPONENTS:
        return f"--component must be one of {', '.join(COMPONENTS)}"
    if args.count < 1:
        return "--count must be at least 1"
    if args.component == "ingest" and args.count > MQTT_QUEUE_LIMIT:
        return (
            f"--count for ingest must be at most {MQTT_QUEUE_LIMIT:,}: the local Mosquitto "
            "queues no more for an absent session (max_queued_messages)"
        )
    if args.devices < 1:
        return "--devices must be at least 1"
    return None


class ComponentBench:
    """One `--component` run against the local stack."""

    def __init__(
        self,
        args: argparse.Namespace,
        env: dict[str, str],
        server_pids: Callable[[], dict[str, int | None]],
        out_dir: Path,
        stamp: str,
        stop: threading.Event,
        say: Callable[[str], None] = print,
    ) -> None:
        self.args = args
        self.env = env
        self.server_pids = server_pids
        self.out_dir = out_dir
        #: names everything the run creates (topics, groups, session, devices): two runs in
        #: the same second do not meet
        self.stamp = f"{stamp.lower()}-{secrets.token_hex(2)}"
        self.stop = stop
        self.say = say
        self.prefix = f"bench-{self.stamp}-"
        self.kafka = kafka_config(env)
        self.admin = AdminClient(self.kafka)
        self.created_topics: list[str] = []
        self.groups: list[str] = []
        #: MQTT sessions opened for ingest (ended at the end, whatever ingest did)
        self.sessions: list[str] = []

    # ---- the run ----

    def run(self) -> Replay:
        name = self.args.component
        replay = Replay(name, self.args.count)
        try:
            if name == "ingest":
                self._ingest(replay)
            elif name == "process":
                self._process(replay)
            else:
                self._sink(replay)
        finally:
            self._clean_up(replay)
        return replay

    def _component(
        self, name: str, args: tuple[str, ...], extra: dict[str, str]
    ) -> ComponentProcess:
        port = free_port()
        port_setting = {
            "ingest": "TELEMETRY_INGEST_HEALTH_PORT",
            "process": "TELEMETRY_PROCESS_HEALTH_PORT",
            "sink": "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT",
        }[name]
        env = {**self.env, **extra, port_setting: str(port)}
        return ComponentProcess(ComponentSpec(name, args, port), env, self.out_dir / "logs"
                                / f"{name}.log")

    def _replay(
        self,
        replay: Replay,
        proc: ComponentProcess,
        done: Callable[[], tuple[int, int]],
        target: int,
        timeout: float,
    ) -> None:
        """Starts the component and samples until `done()` reaches `target` (or timeout)."""
        probe = CpuProbe(lambda: {replay.name: proc.pid, **self.server_pids()})
        replay.env = {k: v for k, v in proc.env.items()
                      if k.startswith("TELEMETRY_") and "PASSWORD" not in k and "TOKEN" not in k}
        t0 = time.monotonic()
        first = probe.sample(t0)
        first.seconds[replay.name] = 0.0  # a new process: no CPU used yet
        proc.start()
        replay.pid = proc.pid
        replay.samples.append(Sample(0.0, 0, 0, first, None))
        deadline = t0 + timeout
        while not self.stop.is_set():
            now = time.monotonic()
            ours, others = done()
            pid = proc.pid
            replay.samples.append(Sample(round(now - t0, 3), ours, others, probe.sample(now),
                                         rss_mib(pid) if pid else None))
            if pid:
                peak = peak_rss_mib(pid)
                if peak is not None:
                    replay.peak_rss_mib = max(peak, replay.peak_rss_mib or 0.0)
            if ours >= target:
                replay.completed = True
                replay.seconds_to_done = round(now - t0, 3)
                break
            code = proc.exit_code()
            if code is not None:
                raise StartError(f"{replay.name} exited with code {code} before the backlog was "
                                 f"done; log {proc.log_path}:\n{proc.tail()}")
            if now >= deadline:
                replay.warnings.append(
                    f"{replay.name} did not finish the backlog within {timeout:g} s: "
                    f"{ours} of {target} done; the figures cover what it did"
                )
                break
            self.stop.wait(SAMPLE_EVERY_S)

    # ---- ingest ----

    def _ingest(self, replay: Replay) -> None:
        client_id = f"bench-{self.stamp}-ingest"
        group = f"bench-{self.stamp}"
        # a topic root of the run's own: no other ingest on the broker takes these messages
        root = f"bench-{self.stamp}"
        extra = {
            "TELEMETRY_MQTT_CLIENT_ID": client_id,
            "TELEMETRY_MQTT_SHARED_GROUP": group,
            "TELEMETRY_MQTT_TELEMETRY_FILTER": f"{root}/+/telemetry",
            "TELEMETRY_MQTT_METADATA_FILTER": f"{root}/+/metadata",
            "TELEMETRY_MQTT_SESSION_EXPIRY_S": "900",
            "TELEMETRY_MQTT_END_SESSION_ON_SHUTDOWN": "true",
        }
        shared = f"$share/{group}/{root}/+/telemetry"
        self.say(f"ingest: opening the session {client_id} on {shared}, QoS 1, and leaving it")
        open_persistent_session(self.env, client_id, shared, session_expiry_s=900)
        self.sessions.append(client_id)
        self.say(f"ingest: publishing {replay.backlog:,} messages into the session")
        summary = self._publish_backlog(replay.backlog, root)
        replay.notes["simulator"] = {k: summary.get(k) for k in (
            "messages_sent", "readings_sent", "achieved_rate", "messages_acked",
            "messages_unacked")}
        readings = int(summary["readings_sent"])
        replay.notes["messages"] = int(summary["messages_sent"])
        replay.notes["readings"] = readings
        start = end_offsets(self.admin, RAW)
        counter = KeyCounter(self.kafka, RAW, self.prefix, start).start()
        try:
            proc = self._component("ingest", ("ingest",), extra)
            self.say(f"ingest: started; waiting for {readings:,} readings on {RAW}")
            try:
                self._replay(replay, proc, lambda: (counter.ours, counter.others), readings,
                             self.args.drain_timeout)
            finally:
                replay.exit_code = proc.stop(30.0)
        finally:
            counter.close()
        if counter.ours > readings:
            replay.warnings.append(
                f"{counter.ours - readings} readings arrived twice on {RAW} (at least once: "
                "redelivered MQTT messages)"
            )

    def _publish_backlog(self, count: int, topic_prefix: str) -> dict[str, Any]:
        summary_path = self.out_dir / "simulate-summary.json"
        devices = max(self.args.devices, -(-int(min(count, 20_000)) // 1000))
        cmd = [
            sys.executable, "-m", "plumbing.cli", "simulate", "--count", str(count),
            "--devices", str(devices), "--rate", str(min(20_000.0, devices * 1000.0)),
            "--seed", str(self.args.seed), "--device-prefix", self.prefix,
            "--batch-share", "0", "--metrics-per-reading", str(METRICS_PER_READING),
            "--ts-format", "epoch_ms", "--bad-ratio", "0", "--health-port", "0",
            "--summary", str(summary_path),
        ]  # fmt: skip
        log_path = self.out_dir / "logs" / "simulate.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "TELEMETRY_SIMULATE_TOPIC_PREFIX": topic_prefix}
        with open(log_path, "ab") as log_file:
            done = subprocess.run(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  timeout=max(120.0, count / 500), check=False)
        if done.returncode != 0 or not summary_path.exists():
            raise StartError(f"the simulator could not publish the backlog (exit "
                             f"{done.returncode}); log {log_path}")
        summary: dict[str, Any] = json.loads(summary_path.read_text())
        if summary["messages_unacked"]:
            raise StartError(f"the broker did not take the whole backlog: "
                             f"{summary['messages_unacked']} publishes unacknowledged")
        return summary

    # ---- process ----

    def _process(self, replay: Replay) -> None:
        app_id = f"bench-{self.stamp}-process"
        self.groups.append(app_id)
        extra = {
            "TELEMETRY_PROCESS_APP_ID": app_id,
            "TELEMETRY_PROCESS_AUTO_OFFSET_RESET": "latest",
            "TELEMETRY_PROCESS_DATA_DIR": str(self.out_dir / "process-data"),
        }
        # the fresh app id reads from here on: only the backlog written below
        start_group_at_end(self.kafka, app_id, [RAW, METADATA])
        start = end_offsets(self.admin, RAW)
        counter = KeyCounter(self.kafka, ENRICHED, self.prefix,
                             end_offsets(self.admin, ENRICHED)).start()
        try:
            self.say(f"process: writing {replay.backlog:,} RawReading records to {RAW}")
            self._write_backlog(replay.backlog, RAW, raw_reading_value, with_metadata=True)
            raw_end = end_offsets(self.admin, RAW)
            target = sum(raw_end.values()) - sum(start.values())
            proc = self._component("process", ("process",), extra)
            self.say(f"process: started as {app_id}; waiting for its commits on {RAW} to "
                     f"reach the end ({target:,} records)")
            # progress = what this app committed: on a shared stack other processors may
            # read the same backlog, so records on telemetry.enriched are not all its own
            try:
                self._replay(replay, proc,
                             lambda: (self._progress(app_id, RAW, start, raw_end), 0),
                             target, self.args.drain_timeout)
                replay.notes["committed_to_end"] = replay.completed
            finally:
                replay.exit_code = proc.stop(30.0)
        finally:
            counter.close()
        replay.notes["readings"] = target
        replay.notes["enriched_of_this_run"] = counter.ours
        later = sum(end_offsets(self.admin, RAW).values()) - sum(raw_end.values())
        if target > replay.backlog or later > 0:
            replay.warnings.append(
                f"{target - replay.backlog + later} records of others reached {RAW} during the "
                "run (the shared stack): the processors handled them too, so CPU per reading "
                "is overstated"
            )
        if counter.ours > replay.backlog:
            replay.warnings.append(
                f"{counter.ours} records of this run's devices reached {ENRICHED}, more than "
                f"the {replay.backlog} written: another processor on the stack read the backlog "
                "too, or records were processed again"
            )
        elif replay.completed and counter.ours < replay.backlog:
            replay.warnings.append(
                f"only {counter.ours} of {replay.backlog} readings reached {ENRICHED} although "
                "the processors committed the backlog (rejected ones went to telemetry.dlq?)"
            )

    # ---- sink ----

    def _sink(self, replay: Replay) -> None:
        topic = f"bench-{self.stamp}-enriched"
        group = f"bench-{self.stamp}-sink"
        self.groups.append(group)
        create_topic(self.admin, topic, TOPIC_PARTITIONS)
        self.created_topics.append(topic)
        extra = {"TELEMETRY_SINK_TOPICS": topic, "TELEMETRY_SINK_INFLUXDB_GROUP_ID": group}
        self.say(f"sink: writing {replay.backlog:,} EnrichedReading records to {topic}")
        since = datetime.now(UTC) - timedelta(days=1)
        self._write_backlog(replay.backlog, topic, enriched_reading_value)
        end = end_offsets(self.admin, topic)
        total = sum(end.values())
        proc = self._component("sink", ("sink", "influxdb"), extra)
        self.say(f"sink: started in group {group}; waiting for its commits to reach {total:,}")
        try:
            self._replay(replay, proc,
                         lambda: (self._progress(group, topic, dict.fromkeys(end, 0), end), 0),
                         total, self.args.drain_timeout)
        finally:
            replay.exit_code = proc.stop(30.0)
        probe = InfluxProbe(influx_target(self.env), timeout_ms=120_000)
        try:
            stored = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self.stop.is_set():
                counts = probe.point_counts(self.prefix, since, datetime.now(UTC) + timedelta(
                    minutes=5))
                stored = sum(counts.values())
                if stored >= replay.backlog:
                    break
                time.sleep(1)
            replay.notes["stored_in_influxdb"] = stored
        except Exception as exc:  # the count is a check, not the measurement
            replay.warnings.append(f"InfluxDB did not answer the point count: {exc}")
        finally:
            probe.close()
        if replay.notes.get("stored_in_influxdb") not in (None, replay.backlog):
            replay.warnings.append(
                f"InfluxDB holds {replay.notes['stored_in_influxdb']} points of this run's "
                f"devices, not {replay.backlog}"
            )

    # ---- helpers ----

    def _write_backlog(
        self,
        count: int,
        topic: str,
        encode: Callable[[Any, int], bytes],
        with_metadata: bool = False,
    ) -> None:
        producer = BacklogProducer(self.kafka)
        now_ms = int(time.time() * 1000)
        seen: set[str] = set()
        for reading in backlog_readings(self.args.devices, self.prefix, self.args.seed, count,
                                        METRICS_PER_READING):
            device = reading.device
            key = device.device_id.encode()
            if with_metadata and device.device_id not in seen:
                seen.add(device.device_id)
                producer.produce(METADATA, key, device_metadata_value(device, now_ms))
            producer.produce(topic, key, encode(reading, now_ms), headers(now_ms))
        producer.flush()

    def _progress(
        self, group: str, topic: str, start: dict[int, int], end: dict[int, int]
    ) -> int:
        """Records of the backlog (between `start` and `end` of each partition) that `group`
        has committed; what it committed beyond `end` is others' and not counted."""
        try:
            futures = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=5)
            result = futures[group].result(5)
        except (KafkaException, TimeoutError):
            return 0
        committed = {tp.partition: tp.offset for tp in result.topic_partitions or []
                     if tp.topic == topic and tp.offset >= 0 and not tp.error}
        return sum(max(0, min(committed.get(p, start[p]), end[p]) - start[p]) for p in end)

    def _clean_up(self, replay: Replay) -> None:
        """Deletes the run's own topics and consumer groups (and Faust's topics of its app)."""
        with contextlib.suppress(Exception):
            names = [t for t in self.admin.list_topics(timeout=10).topics
                     if any(t.startswith(g) for g in self.groups)]
            topics = self.created_topics + names
            if topics:
                for f in self.admin.delete_topics(topics, operation_timeout=30).values():
                    with contextlib.suppress(Exception):
                        f.result(30)
        for group in self.groups:
            with contextlib.suppress(Exception):
                self.admin.delete_consumer_groups([group], request_timeout=10)[group].result(10)
        for client_id in self.sessions:
            with contextlib.suppress(Exception):
                end_session(self.env, client_id)
        replay.notes["cleaned_up"] = {"topics": self.created_topics, "groups": self.groups,
                                      "mqtt_sessions": self.sessions}


def open_persistent_session(
    env: dict[str, str], client_id: str, topic_filter: str, session_expiry_s: int,
    timeout: float = 15.0,
) -> None:
    """Connects as `client_id` (MQTT v5, like ingest), subscribes QoS 1 and disconnects,
    leaving a session that the broker keeps and fills until the client comes back."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    if env.get("TELEMETRY_MQTT_USERNAME"):
        client.username_pw_set(env["TELEMETRY_MQTT_USERNAME"], env.get("TELEMETRY_MQTT_PASSWORD"))
    subscribed = threading.Event()
    failure: list[str] = []

    def on_subscribe(c: Any, u: Any, mid: int, codes: Any, props: Any) -> None:
        if any(code.is_failure for code in codes):
            failure.append(", ".join(str(code) for code in codes))
        subscribed.set()

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            failure.append(str(rc))
            subscribed.set()
            return
        c.subscribe(topic_filter, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    client.connect(env.get("TELEMETRY_MQTT_HOST", "127.0.0.1"),
                   int(env.get("TELEMETRY_MQTT_PORT", "1883")), clean_start=True,
                   properties=props)
    client.loop_start()
    try:
        if not subscribed.wait(timeout) or failure:
            raise StartError(f"could not open the MQTT session {client_id}: "
                             f"{failure or 'no SUBACK'}")
    finally:
        client.disconnect()
        client.loop_stop()


def end_session(env: dict[str, str], client_id: str, timeout: float = 10.0) -> None:
    """Ends a session the broker keeps (and anything still queued in it): a clean start with
    session expiry 0, then a disconnect."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    if env.get("TELEMETRY_MQTT_USERNAME"):
        client.username_pw_set(env["TELEMETRY_MQTT_USERNAME"], env.get("TELEMETRY_MQTT_PASSWORD"))
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(env.get("TELEMETRY_MQTT_HOST", "127.0.0.1"),
                   int(env.get("TELEMETRY_MQTT_PORT", "1883")), clean_start=True,
                   properties=props)
    client.loop_start()
    try:
        connected.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def component_section(replay: Replay, per_reading: float = 1.0) -> tuple[dict[str, Any],
                                                                          dict[str, Any] | None,
                                                                          dict[str, Any] | None]:
    """(the report's `component` section, CPU table of the steady window, CPU table from the
    component's start to the end of the backlog)."""
    samples = replay.samples
    total = replay.samples[-1].done if samples else 0
    target = replay.notes.get("readings", replay.backlog)
    window = steady_window([s.done for s in samples], target)
    section: dict[str, Any] = {
        "name": replay.name,
        "backlog": replay.backlog,
        "readings": target,
        "done": total,
        "completed": replay.completed,
        "seconds_to_done": replay.seconds_to_done,
        "readings_per_s_incl_startup": (
            round(total / replay.seconds_to_done, 1) if replay.seconds_to_done else None
        ),
        **replay.notes,
    }
    steady = whole = None
    if window is not None:
        a, b = samples[window.start], samples[window.end]
        readings = (b.done - a.done) * per_reading
        seconds = b.t_s - a.t_s
        section["window"] = {"from_s": a.t_s, "to_s": b.t_s, "readings": int(readings),
                             "how": window.how, "steady": window.steady}
        section["readings_per_s"] = round(readings / seconds, 1) if seconds > 0 else None
        steady = cpu_table(a.cpu, b.cpu, readings)
        whole = cpu_table(samples[0].cpu, b.cpu, b.done * per_reading,
                          method="CPU from the component's start (imports, connecting, joining "
                          "the group) to the end of the backlog, divided by the backlog")
    else:
        section["readings_per_s"] = None
    return section, steady, whole


def component_timeline(replay: Replay) -> list[dict[str, Any]]:
    rows = []
    previous: Sample | None = None
    for s in replay.samples:
        rate = None
        if previous is not None and s.t_s > previous.t_s:
            rate = round((s.done - previous.done) / (s.t_s - previous.t_s), 1)
        rows.append({"t_s": s.t_s, "done": s.done, "done_per_s": rate,
                     "rss_mib": {replay.name: round(s.rss_mib, 1)} if s.rss_mib else {}})
        previous = s
    return rows
