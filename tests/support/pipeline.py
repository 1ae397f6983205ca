"""The whole pipeline as real processes, plus MQTT publishing and InfluxDB reading helpers."""

from __future__ import annotations

import queue
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from influxdb_client import InfluxDBClient
from prometheus_client.parser import text_string_to_metric_families

from stack.local_stack import LocalStack
from tests.support.components import Component, free_port


@dataclass
class RunningPipeline:
    """`telemetry ingest`, `telemetry process` and `telemetry sink influxdb`, running."""

    stack: LocalStack
    env: dict[str, str]
    log_dir: Path
    ingest: Component = field(init=False)
    process: Component = field(init=False)
    sink: Component = field(init=False)

    processors_group: str = field(default_factory=lambda: f"e2e-processors-{uuid.uuid4().hex[:8]}")

    def start(self) -> RunningPipeline:
        run = uuid.uuid4().hex[:8]
        common = {**self.env, "TELEMETRY_LOG_FORMAT": "json"}
        port = free_port()
        self.ingest = Component(
            ["ingest"],
            {
                **common,
                "TELEMETRY_INGEST_HEALTH_PORT": str(port),
                "TELEMETRY_MQTT_CLIENT_ID": f"e2e-ingest-{run}",
                "TELEMETRY_MQTT_SHARED_GROUP": f"e2e-{run}",
            },
            self.log_dir,
            port,
        )
        port = free_port()
        self.process = Component(
            ["process"],
            {
                **common,
                "TELEMETRY_PROCESS_HEALTH_PORT": str(port),
                "TELEMETRY_PROCESS_DATA_DIR": str(self.log_dir / "processors-data"),
                "TELEMETRY_PROCESS_TAG_ALLOW_LIST": "site,line,model",
                # Its own consumer group, starting at the end: whatever else runs against the
                # stack (a developer's `telemetry run`) neither steals partitions nor backlog.
                "TELEMETRY_PROCESS_APP_ID": self.processors_group,
                "TELEMETRY_PROCESS_AUTO_OFFSET_RESET": "latest",
            },
            self.log_dir,
            port,
        )
        port = free_port()
        self.sink = Component(
            ["sink", "influxdb"],
            {**common, "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT": str(port)},
            self.log_dir,
            port,
        )
        # Downstream first, so nothing waits on a consumer that is not there yet.
        self.sink.start()
        self.process.start(ready_timeout=180)
        self.ingest.start()
        return self

    def stop(self) -> None:
        for c in (self.ingest, self.process, self.sink):
            c.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {c.args} ---\n{c.tail(30)}" for c in (self.ingest, self.process, self.sink)
        )


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples named `name` (counters: with or without `_total`) matching labels."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in (name, f"{name}_total") and all(
                s.labels.get(k) == v for k, v in (labels or {}).items()
            ):
                total += s.value
    return total


class Publisher:
    """A QoS 1 MQTT publisher with the stack's fleet user; waits for every PUBACK."""

    def __init__(self, stack: LocalStack) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.username_pw_set(stack.creds.mqtt_fleet_username,
                                    stack.creds.mqtt_fleet_password)
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", stack.mosquitto.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(30)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


Point = dict[str, Any]  # {"device_id", "time_us", "fields": {...}, "tags": {...}}


def points_for(stack: LocalStack, prefix: str) -> dict[tuple[str, int], Point]:
    """Every stored point of devices whose id starts with `prefix`, keyed (device_id, µs)."""
    c = stack.creds
    assert re.fullmatch(r"[A-Za-z0-9_-]+", prefix), "keep prefixes regex- and Flux-safe"
    # A regex on a tag is pushed down to the storage engine; strings.hasPrefix is not.
    flux = (
        f'from(bucket: "{c.influxdb_bucket}") |> range(start: -1d, stop: 1h)'
        f' |> filter(fn: (r) => r._measurement == "telemetry" and r.device_id =~ /^{prefix}/)'
    )
    points: dict[tuple[str, int], Point] = {}
    with InfluxDBClient(
        url=stack.influxdb.address, token=c.influxdb_token, org=c.influxdb_org, timeout=30_000
    ) as client:
        for table in client.query_api().query(flux):
            for r in table.records:
                t = r.get_time()
                time_us = int(t.timestamp()) * 1_000_000 + t.microsecond
                key = (r.values["device_id"], time_us)
                p = points.setdefault(
                    key,
                    {
                        "device_id": key[0],
                        "time_us": time_us,
                        "fields": {},
                        "tags": {
                            k: v
                            for k, v in r.values.items()
                            if not k.startswith("_") and k not in ("result", "table", "device_id")
                        },
                    },
                )
                p["fields"][r.get_field()] = r.get_value()
    return points


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_fail()}")


def drain_queue(q: queue.Queue[Any]) -> list[Any]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out
