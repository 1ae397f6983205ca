"""The simulator against the real Mosquitto: what arrives matches what its summary claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.support.components import Component, free_port

LIMIT = 256 * 1024


class Collector:
    """A QoS 1 subscriber to every device topic that keeps only this test's devices."""

    def __init__(self, env: dict[str, str], prefix: str) -> None:
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"collector-{uuid.uuid4().hex[:8]}"
        )
        self.client.username_pw_set(env["TELEMETRY_MQTT_USERNAME"], env["TELEMETRY_MQTT_PASSWORD"])
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect(env["TELEMETRY_MQTT_HOST"], int(env["TELEMETRY_MQTT_PORT"]))
        self.client.subscribe([("devices/+/telemetry", 1), ("devices/+/metadata", 1)])
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK from Mosquitto"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.split("/")[1].startswith(self.prefix):
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, count: int, timeout: float = 60) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.1)
        time.sleep(0.5)  # anything beyond `count` would be a duplicate: give it a chance to show
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def readings_ingest_would_forward(payload: bytes) -> list[dict[str, Any]]:
    if len(payload) > LIMIT:
        return []
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []
    readings = doc if isinstance(doc, list) else [doc]
    if not readings or not all(isinstance(r, dict) for r in readings):
        return []
    if any("metrics" in r and not isinstance(r["metrics"], dict) for r in readings):
        return []
    return readings


def run_simulator(
    env: dict[str, str], args: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "simulate", *args],
        env={**os.environ, **env, "TELEMETRY_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_what_arrives_at_the_broker_matches_the_summary(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = f"it-{uuid.uuid4().hex[:10]}-"
    collector = Collector(stack_env, prefix)
    summary_path = tmp_path / "summary.json"
    try:
        done = run_simulator(
            stack_env,
            [
                "--devices",
                "7",
                "--rate",
                "400",
                "--count",
                "700",
                "--bad-ratio",
                "0.3",
                "--seed",
                "3",
                "--device-prefix",
                prefix,
                "--summary",
                str(summary_path),
                "--health-port",
                str(free_port()),
            ],
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(summary_path.read_text())
        expected = summary["messages_sent"] + summary["metadata_sent"]
        received = collector.wait_for(expected)
    finally:
        collector.close()

    assert summary["messages_sent"] + summary["bad_messages_by_reason"]["invalid_metadata"] == 700
    assert summary["messages_acked"] == expected and summary["messages_unacked"] == 0
    assert len(received) == expected  # nothing lost, nothing duplicated

    telemetry = [(t, p) for t, p in received if t.endswith("/telemetry")]
    metadata = [(t, p) for t, p in received if t.endswith("/metadata")]
    assert len(telemetry) == summary["messages_sent"]
    assert len(metadata) == summary["metadata_sent"]

    bad = summary["bad_messages_by_reason"]
    assert all(n > 0 for n in bad.values()), bad  # 210 bad messages cover all 14 reasons
    too_long_ids = [t for t, _ in telemetry if len(t.split("/")[1].encode()) > 128]
    assert len(too_long_ids) == bad["invalid_device_id"]
    assert sum(len(p) > LIMIT for _, p in telemetry) == bad["payload_too_large"]

    seqs: dict[str, list[int]] = defaultdict(list)
    readings = batches = 0
    for topic, payload in telemetry:
        if len(topic.split("/")[1].encode()) > 128:
            continue
        forwarded = readings_ingest_would_forward(payload)
        readings += len(forwarded)
        batches += payload.startswith(b"[") and len(forwarded) >= 2
        for r in forwarded:
            assert 2 <= len(forwarded) <= 10 or len(forwarded) == 1
            if isinstance(r.get("seq"), int) and not isinstance(r["seq"], bool):
                seqs[topic.split("/")[1]].append(r["seq"])
    assert readings == summary["readings_sent"]
    assert batches == sum(k.get("batch", 0) for k in summary["messages_by_kind"].values())
    assert set(seqs) == set(summary["max_seq_by_device"])
    for device, got in seqs.items():
        # per device, in publish order, 1..max with no gap and no repeat
        assert got == list(range(1, summary["max_seq_by_device"][device] + 1)), device

    tags = {t.split("/")[1]: json.loads(p) for t, p in metadata if t.split("/")[1] in seqs}
    assert set(tags) == set(seqs)
    assert {v["kind"] for v in tags.values()} == {"environment", "power_meter", "vehicle"}


def test_serves_metrics_and_stops_cleanly_on_sigterm(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = f"it-{uuid.uuid4().hex[:10]}-"
    port = free_port()
    summary_path = tmp_path / "summary.json"
    sim = Component(
        [
            "simulate",
            "--devices",
            "3",
            "--rate",
            "50",
            "--device-prefix",
            prefix,
            "--summary",
            str(summary_path),
            "--health-port",
            str(port),
        ],
        {**stack_env, "TELEMETRY_LOG_FORMAT": "json"},
        tmp_path,
        health_port=port,
    ).start(ready_timeout=30)
    try:
        deadline = time.monotonic() + 30
        sent = 0.0
        while time.monotonic() < deadline and sent < 20:
            text = sim.metrics()
            lines = [
                ln
                for ln in text.splitlines()
                if ln.startswith("telemetry_simulator_messages_sent_total")
            ]
            sent = sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)
            time.sleep(0.3)
        assert sent >= 20, sim.tail()
    finally:
        code = sim.stop()
    assert code == 0, sim.tail()
    summary = json.loads(summary_path.read_text())
    assert summary["messages_sent"] >= sent
    assert summary["messages_unacked"] == 0


def test_wrong_password_fails_with_a_clear_message(stack_env: dict[str, str]) -> None:
    env = {**stack_env, "TELEMETRY_SIMULATE_MQTT_PASSWORD": "not-the-password"}
    done = run_simulator(env, ["--count", "5", "--health-port", str(free_port())], timeout=60)
    assert done.returncode == 1
    assert "refused" in done.stderr and "MQTT" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout


def test_hostile_options_are_refused_before_connecting(stack_env: dict[str, str]) -> None:
    for args, words in (
        (["--device-prefix", "a/b+#"], "--device-prefix"),
        (["--bad-ratio", "nan"], "--bad-ratio"),
        (["--rate", "-5"], "--rate"),
        (["--rate", "inf"], "--rate"),
        (["--devices", "0"], "--devices"),
    ):
        done = run_simulator(stack_env, [*args, "--count", "1", "--health-port", str(free_port())])
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr


def test_several_sending_processes_deliver_every_seq_exactly_once(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The comparable load (one reading of 4 metrics, epoch-ms ts) from two processes: each
    device's seq counter lives in one of them, so the broker sees 1..max once per device."""
    prefix = f"it-{uuid.uuid4().hex[:10]}-"
    collector = Collector(stack_env, prefix)
    summary_path = tmp_path / "summary.json"
    try:
        done = run_simulator(
            stack_env,
            [
                "--devices", "8", "--rate", "1500", "--count", "3000", "--seed", "4",
                "--device-prefix", prefix, "--processes", "2", "--batch-share", "0",
                "--metrics-per-reading", "4", "--ts-format", "epoch_ms",
                "--summary", str(summary_path), "--health-port", str(free_port()),
            ],
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(summary_path.read_text())
        received = collector.wait_for(summary["messages_sent"] + summary["metadata_sent"])
    finally:
        collector.close()

    assert summary["processes"] == 2 and summary["messages_sent"] == 3000
    assert summary["kept_up"] and summary["messages_unacked"] == 0
    assert len(summary["max_seq_by_device"]) == 8
    seqs: dict[str, list[int]] = defaultdict(list)
    for topic, payload in received:
        if not topic.endswith("/telemetry"):
            continue
        doc = json.loads(payload)
        assert isinstance(doc["ts"], int) and len(doc["metrics"]) == 4
        seqs[topic.split("/")[1]].append(doc["seq"])
    assert sum(len(v) for v in seqs.values()) == 3000
    for device, got in seqs.items():
        # every seq exactly once (QoS 1 may reorder nothing per device: one connection each)
        assert sorted(got) == list(range(1, summary["max_seq_by_device"][device] + 1)), device
        assert got == sorted(got), device


def test_asked_for_more_than_it_can_send_it_sends_what_it_can_and_says_so(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    done = run_simulator(
        stack_env,
        [
            "--devices", "1000", "--rate", "500000", "--duration", "2", "--processes", "1",
            "--batch-share", "0", "--ts-format", "epoch_ms",
            "--device-prefix", f"it-{uuid.uuid4().hex[:10]}-", "--summary", str(summary_path),
            "--health-port", str(free_port()),
        ],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["kept_up"] is False
    assert 0 < summary["achieved_rate"] < 500_000
    assert summary["messages_sent"] > 1000  # it kept sending, it did not collapse
    assert summary["messages_unacked"] == 0 and summary["messages_acked"] > 1000
    assert "could not keep up" in done.stdout
    warnings = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any("could not keep up" in w["msg"] for w in warnings if w["level"] == "warning")
