"""`stack up / down / status` on a private stack: data survives a restart, ports are checked.

A second stack in a temporary directory on free ports, sharing the build cache, so the
developer's (or the session's) running stack is not disturbed.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from stack.local_stack import LocalStack
from stack.processes import StackError, port_is_free
from stack.settings import StackSettings
from tests.support.components import free_port
from tests.support.kafka_helpers import consume_until, create_topic, produce


def _private_env(tmp: Path) -> dict[str, str]:
    ports = {
        "TELEMETRY_STACK_MQTT_PORT": free_port(),
        "TELEMETRY_STACK_KAFKA_PORT": free_port(),
        "TELEMETRY_STACK_KAFKA_CONTROLLER_PORT": free_port(),
        "TELEMETRY_STACK_INFLUXDB_PORT": free_port(),
        "TELEMETRY_STACK_PROMETHEUS_PORT": free_port(),
    }
    return {"TELEMETRY_STACK_DIR": str(tmp / "stack"), **{k: str(v) for k, v in ports.items()}}


@pytest.fixture
def private_env(tmp_path: Path, local_stack: LocalStack) -> Iterator[dict[str, str]]:
    # Depends on local_stack only so that the servers are built before this test runs.
    env = _private_env(tmp_path)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        LocalStack().down()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plumbing.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_data_survives_down_and_up(private_env: dict[str, str]) -> None:
    up = _cli("stack", "up")
    assert up.returncode == 0, up.stderr[-3000:]
    status = json.loads(_cli("stack", "status", "--json").stdout)
    services = status["services"]
    assert all(s["running"] for s in services.values()), services
    assert services["kafka"]["version"] == StackSettings().stack_kafka_version
    assert services["mosquitto"]["version"].startswith("2.")
    creds = status["credentials"]
    for key in (
        "mqtt_ingest_username",
        "mqtt_ingest_password",
        "mqtt_fleet_username",
        "mqtt_fleet_password",
        "mqtt_admin_password",
        "influxdb_org",
        "influxdb_bucket",
        "influxdb_token",
    ):
        assert creds[key], key

    stack = LocalStack()
    bootstrap = stack.kafka.address
    topic = create_topic(bootstrap, partitions=1)
    produce(bootstrap, topic, [(b"dev", b"before-restart")])
    ts_ms = int(time.time() * 1000)
    with InfluxDBClient(
        url=stack.influxdb.address, token=creds["influxdb_token"], org=creds["influxdb_org"]
    ) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=creds["influxdb_bucket"],
            record=Point("restart_probe")
            .tag("device_id", "dev")
            .field("v", 7.0)
            .time(ts_ms, WritePrecision.MS),
        )
    retained_topic = f"devices/{uuid.uuid4().hex[:8]}/metadata"
    _publish_retained(stack, retained_topic, b'{"site": "plant-1"}')

    down = _cli("stack", "down")
    assert down.returncode == 0
    for svc in stack.services:
        assert svc.pid() is None, svc.name
        assert port_is_free(svc.port), svc.name
    assert _cli("stack", "status").returncode == 3

    up2 = _cli("stack", "up")
    assert up2.returncode == 0, up2.stderr[-3000:]
    got = consume_until(bootstrap, [topic], lambda ms: len(ms) >= 1, timeout=60)
    assert [m.value() for m in got] == [b"before-restart"]
    with InfluxDBClient(
        url=stack.influxdb.address, token=creds["influxdb_token"], org=creds["influxdb_org"]
    ) as client:
        tables = client.query_api().query(
            f'from(bucket: "{creds["influxdb_bucket"]}") |> range(start: -1h) '
            '|> filter(fn: (r) => r._measurement == "restart_probe")'
        )
        values = [r.get_value() for t in tables for r in t.records]
    assert values == [7.0]
    assert _receive_retained(stack, retained_topic) == b'{"site": "plant-1"}'


def test_taken_port_names_the_port_and_the_setting(private_env: dict[str, str]) -> None:
    port = int(private_env["TELEMETRY_STACK_MQTT_PORT"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(StackError) as err:
            LocalStack().up()
        assert str(port) in str(err.value)
        assert "TELEMETRY_STACK_MQTT_PORT" in str(err.value)
        result = _cli("stack", "up")
        assert result.returncode == 1
        assert "TELEMETRY_STACK_MQTT_PORT" in result.stderr


def _client(stack: LocalStack, publisher: bool = False) -> mqtt.Client:
    """The fleet's user to publish, ingest's to subscribe (stack/mqtt_access.py)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    creds = stack.creds
    if publisher:
        c.username_pw_set(creds.mqtt_fleet_username, creds.mqtt_fleet_password)
    else:
        c.username_pw_set(creds.mqtt_ingest_username, creds.mqtt_ingest_password)
    c.connect("127.0.0.1", stack.mosquitto.port)
    return c


def _publish_retained(stack: LocalStack, topic: str, payload: bytes) -> None:
    c = _client(stack, publisher=True)
    c.loop_start()
    info = c.publish(topic, payload, qos=1, retain=True)
    info.wait_for_publish(10)
    assert info.is_published()
    # Mosquitto saves retained messages on shutdown (and every autosave_interval).
    c.loop_stop()
    c.disconnect()


def _receive_retained(stack: LocalStack, topic: str) -> bytes:
    got: queue.Queue[bytes] = queue.Queue()
    c = _client(stack)
    c.on_message = lambda cl, u, m: got.put(bytes(m.payload))
    c.loop_start()
    c.subscribe(topic, qos=1)
    try:
        return got.get(timeout=15)
    finally:
        c.loop_stop()
        c.disconnect()
