"""`telemetry simulate`: simulated devices publishing telemetry over MQTT QoS 1.

The total rate is held by a clock-driven schedule (message n is due at n/rate seconds), so a
slow moment is caught up rather than lost. Counts are served as Prometheus metrics and written
as a JSON summary at the end, so a benchmark can compute loss against them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import re
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client import Counter, Gauge

from loadtest.messages import MessageGenerator, OutboundMessage
from loadtest.send_tally import SendTally
from loadtest.settings import SimulatorSettings
from plumbing.health import HealthState, serve_health
from plumbing.logs import setup_logging

log = logging.getLogger("loadtest.simulator")

MESSAGES_SENT = Counter(
    "telemetry_simulator_messages_sent_total",
    "MQTT telemetry messages handed to the client, by device kind and shape.",
    ["device_kind", "shape"],
)
METADATA_SENT = Counter(
    "telemetry_simulator_metadata_sent_total", "MQTT metadata messages handed to the client."
)
READINGS_SENT = Counter(
    "telemetry_simulator_readings_sent_total",
    "Readings in the messages that ingest should forward to Kafka.",
)
EXPECTED_POINTS = Counter(
    "telemetry_simulator_expected_points_total",
    "Readings that should end up stored in the database.",
)
BAD_SENT = Counter(
    "telemetry_simulator_bad_messages_sent_total",
    "Deliberately bad messages, by the reject reason they should cause.",
    ["reason"],
)
ACKED = Counter(
    "telemetry_simulator_messages_acked_total", "Publishes the broker acknowledged (PUBACK)."
)
CONNECTED = Gauge("telemetry_simulator_connected", "1 while connected to the MQTT broker.")

#: Device-id prefixes are used verbatim in MQTT topics and database filters.
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]*$")
#: paho numbers in-flight messages with 16-bit ids; stay well below.
MAX_PENDING = 30_000


class MqttPublisher:
    """A paho client on its own network thread; counts PUBACKs."""

    def __init__(self, settings: SimulatorSettings, client_id: str) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            self.client.username_pw_set(settings.mqtt_username, password)
        self.client.max_inflight_messages_set(settings.simulate_max_inflight)
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.host, self.port = settings.mqtt_host, settings.mqtt_port
        self.connected = threading.Event()
        self.connect_error: str | None = None
        self.published = 0
        self.acked = 0
        self._lock = threading.Lock()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.connect_error = str(rc)
            log.error("MQTT connect refused", extra={"reason": str(rc)})
            return
        CONNECTED.set(1)
        self.connected.set()
        log.info("connected to MQTT", extra={"host": self.host, "port": self.port})

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        CONNECTED.set(0)
        self.connected.clear()
        log.warning("MQTT disconnected; reconnecting", extra={"reason": str(rc)})

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            self.acked += 1
        ACKED.inc()

    def connect(self, timeout: float) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"cannot reach MQTT at {self.host}:{self.port}: {exc}") from exc
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.client.loop_stop()
            why = self.connect_error or "no CONNACK"
            raise ConnectionError(f"MQTT at {self.host}:{self.port} refused us: {why}")

    def publish(self, msg: OutboundMessage) -> None:
        info = self.client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"paho refused to queue a publish: {mqtt.error_string(info.rc)}")
        with self._lock:
            self.published += 1

    @property
    def pending(self) -> int:
        with self._lock:
            return self.published - self.acked

    def wait_acked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.pending == 0

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        CONNECTED.set(0)


class Simulation:
    """One simulator run: generator + tally + publisher, paced at `rate`."""

    def __init__(
        self,
        settings: SimulatorSettings,
        seed: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.seed = seed
        self.stop = stop or threading.Event()
        self.generator = MessageGenerator(
            devices=settings.simulate_devices,
            prefix=settings.simulate_device_prefix,
            seed=seed,
            rate=settings.simulate_rate,
            bad_ratio=settings.simulate_bad_ratio,
            batch_share=settings.simulate_batch_share,
            missing_ts_share=settings.simulate_missing_ts_share,
        )
        self.tally = SendTally(self.generator.devices)
        client_id = f"telemetry-simulator-{settings.simulate_device_prefix}{uuid.uuid4().hex[:8]}"
        self.publisher = MqttPublisher(settings, client_id)
        self.started_at = 0.0
        self.finished_at = 0.0
        self.all_acked = False

    def _send(self, msg: OutboundMessage) -> None:
        self.publisher.publish(msg)
        self.tally.record(msg)
        if msg.shape == "metadata":
            METADATA_SENT.inc()
        else:
            MESSAGES_SENT.labels(device_kind=msg.device_kind, shape=msg.shape).inc()
        if msg.readings:
            READINGS_SENT.inc(msg.readings)
        if msg.good_points:
            EXPECTED_POINTS.inc(msg.good_points)
        if msg.bad_reason is not None:
            BAD_SENT.labels(reason=msg.bad_reason.value).inc()

    def run(
        self, duration: float | None, count: int | None, state: HealthState | None = None
    ) -> dict[str, Any]:
        """Publishes until `duration` seconds, `count` messages, or `stop`; returns the summary."""
        self.publisher.connect(timeout=15)
        if state is not None:
            state.checks["mqtt"] = self.publisher.connected.is_set
        for msg in self.generator.metadata_messages():
            self._send(msg)
        if state is not None:
            state.ready = True
        rate = self.settings.simulate_rate
        self.started_at = time.time()
        start = time.monotonic()
        next_report = start + 10
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                elapsed = now - start
                if duration is not None and elapsed >= duration:
                    break
                if count is not None and self.generator.sent >= count:
                    break
                due = int(elapsed * rate) + 1
                if count is not None:
                    due = min(due, count)
                while self.generator.sent < due and self.publisher.pending < MAX_PENDING:
                    self._send(self.generator.next_message())
                if now >= next_report:
                    next_report = now + 10
                    log.info("progress", extra=self._progress())
                wait = start + self.generator.sent / rate - time.monotonic()
                self.stop.wait(min(max(wait, 0.0), 0.1))
        finally:
            self.finished_at = time.time()
            self.all_acked = self.publisher.wait_acked(self.settings.simulate_ack_timeout_s)
            self.publisher.close()
        return self.summary()

    def _progress(self) -> dict[str, Any]:
        return {
            "messages_sent": self.tally.messages_sent,
            "acked": self.publisher.acked,
            "bad": self.tally.bad_messages,
        }

    def summary(self) -> dict[str, Any]:
        s = self.settings
        duration = max(self.finished_at - self.started_at, 1e-9)
        return {
            "device_prefix": s.simulate_device_prefix,
            "devices": s.simulate_devices,
            "rate_asked": s.simulate_rate,
            "bad_ratio": s.simulate_bad_ratio,
            "seed": self.seed,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": round(duration, 3),
            #: paced publishes (telemetry and bad metadata) per second
            "achieved_rate": round(self.generator.sent / duration, 2),
            "messages_acked": self.publisher.acked,
            "messages_unacked": self.publisher.pending,
            **self.tally.as_dict(),
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def write_summary(summary: dict[str, Any], path: Path) -> None:
    """Written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"sent {summary['messages_sent']} messages ({summary['readings_sent']} readings) "
        f"from {summary['devices']} devices in {summary['duration_s']:.1f}s "
        f"= {summary['achieved_rate']:.1f} msg/s; the broker acknowledged "
        f"{summary['messages_acked']} publishes (metadata included), "
        f"{summary['messages_unacked']} unacknowledged",
        f"expected good points: {summary['expected_good_points']}",
    ]
    for kind, shapes in summary["messages_by_kind"].items():
        lines.append(f"  {kind:<12} " + ", ".join(f"{k} {v}" for k, v in sorted(shapes.items())))
    bad = {r: n for r, n in summary["bad_messages_by_reason"].items() if n}
    if bad:
        lines.append(f"bad messages: {summary['bad_messages']}")
        lines.extend(f"  {reason:<22} {n}" for reason, n in bad.items())
    return "\n".join(lines)


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    overrides: dict[str, Any] = {}
    for arg, field in (
        ("devices", "simulate_devices"),
        ("rate", "simulate_rate"),
        ("bad_ratio", "simulate_bad_ratio"),
        ("seed", "simulate_seed"),
        ("device_prefix", "simulate_device_prefix"),
        ("health_port", "simulate_health_port"),
    ):
        value = getattr(args, arg, None)
        if value is not None:
            overrides[field] = value
    return SimulatorSettings(**overrides)


def check_settings(s: SimulatorSettings, duration: float | None, count: int | None) -> str | None:
    """What is wrong with these options, in words a user can act on; None when fine."""
    if s.simulate_devices < 1:
        return "--devices must be at least 1"
    if not (math.isfinite(s.simulate_rate) and s.simulate_rate > 0):
        return "--rate must be a positive number of messages per second"
    if not 0.0 <= s.simulate_bad_ratio <= 1.0:
        return "--bad-ratio must be between 0 and 1"
    if not PREFIX_PATTERN.match(s.simulate_device_prefix):
        return "--device-prefix may only hold letters, digits, '_', '.', ':' and '-'"
    if len(s.simulate_device_prefix) > 100:
        return "--device-prefix must be at most 100 characters"
    if duration is not None and duration <= 0:
        return "--duration must be positive"
    if count is not None and count < 0:
        return "--count must not be negative"
    return None


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry simulate`."""
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"simulate: bad setting: {exc}", file=sys.stderr)
        return 2
    problem = check_settings(settings, args.duration, args.count)
    if problem:
        print(f"simulate: {problem}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    seed = settings.simulate_seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    state = HealthState()
    server = serve_health(settings.simulate_health_port, state)
    log.info(
        "simulating",
        extra={
            "devices": settings.simulate_devices,
            "rate": settings.simulate_rate,
            "bad_ratio": settings.simulate_bad_ratio,
            "seed": seed,
            "health_port": server.server_port,
            "settings": settings.redacted(),
        },
    )
    sim = Simulation(settings, seed, stop)
    try:
        summary = sim.run(args.duration, args.count, state)
    except ConnectionError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        state.ready = False
        server.shutdown()
    if args.summary:
        write_summary(summary, args.summary)
    print(format_summary(summary))
    if summary["messages_unacked"]:
        log.warning("broker did not acknowledge every message", extra=sim._progress())
        return 1
    return 0
