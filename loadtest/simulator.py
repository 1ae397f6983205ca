"""`telemetry simulate`: simulated devices publishing telemetry over MQTT QoS 1.

The total rate is held by a clock-driven schedule (loadtest/pacing.py: message n is due at
n/rate seconds), so a slow moment is caught up rather than lost; a sender that cannot keep up
at all sends as fast as it can and says so (log and summary), instead of piling up a debt.
Above what one process can send, the fleet is split into contiguous blocks of devices, one
process and one MQTT connection each, all on one schedule origin: every device (so every
seq counter) lives in exactly one process. Counts are served as Prometheus metrics and
written as a JSON summary at the end, so a benchmark can compute loss against them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing
import os
import queue
import random
import re
import resource
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from loadtest.messages import TS_FORMATS, UNITS_CHOICES, MessageGenerator, OutboundMessage
from loadtest.mqtt_publisher import MAX_WINDOW, MqttPublisher
from loadtest.pacing import Pacer, kept_up, split_evenly
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
SATURATED = Gauge(
    "telemetry_simulator_saturated",
    "1 while the simulator cannot keep up with the asked rate (it sends as fast as it can).",
)

#: Device-id prefixes are used verbatim in MQTT topics and database filters.
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]*$")
#: A device's `ts` is in milliseconds and strictly increases, so a device cannot send faster.
MAX_RATE_PER_DEVICE = 1000.0
#: Messages per second one sending process holds on this kind of machine (measured: README),
#: with pre-rendered readings and with the full generator; `processes = 0` sizes from these.
PROCESS_CAPACITY_PREBUILT = 8_000.0
PROCESS_CAPACITY_GENERATED = 4_000.0
PROGRESS_EVERY_S = 0.5
#: the sending loop's shortest sleep: bursts of rate x 2 ms messages, not one per wake-up
TICK_S = 0.002
LOG_EVERY_S = 10.0
#: `saturated` means: the schedule had to drop messages within this many seconds
SATURATED_WITHIN_S = 2.0


def cpu_seconds_self() -> float:
    """User + system CPU of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Simulation:
    """One sending process's part of the fleet: generator + tally + publisher, paced.

    `share` = (k, n): the k-th of n blocks of devices, at rate/n. A run is `prepare()` (connect,
    publish the share's retained metadata), `send()` from a schedule origin shared by every
    share, then `finish()` (wait for the PUBACKs, disconnect).
    """

    def __init__(
        self,
        settings: SimulatorSettings,
        seed: int,
        stop: threading.Event | Any,
        share: tuple[int, int] = (0, 1),
    ) -> None:
        self.settings = settings
        self.seed = seed
        self.stop = stop
        self.share = share
        self.rate = settings.simulate_rate / share[1]
        self.generator = MessageGenerator(
            devices=settings.simulate_devices,
            prefix=settings.simulate_device_prefix,
            seed=seed,
            rate=self.rate,
            bad_ratio=settings.simulate_bad_ratio,
            batch_share=settings.simulate_batch_share,
            missing_ts_share=settings.simulate_missing_ts_share,
            metrics_per_reading=settings.simulate_metrics_per_reading,
            ts_format=settings.simulate_ts_format,
            share=share,
            topic_prefix=settings.simulate_topic_prefix,
            units=settings.simulate_units,
        )
        self.tally = SendTally(self.generator.devices)
        secret = settings.simulate_mqtt_password
        password = secret.get_secret_value() if secret else None
        client_id = (
            f"telemetry-simulator-{settings.simulate_device_prefix}{uuid.uuid4().hex[:8]}"
            f"-{share[0]}"
        )
        self.publisher = MqttPublisher(
            settings.mqtt_host, settings.mqtt_port, client_id, settings.simulate_mqtt_username,
            password, window=min(settings.simulate_max_inflight, MAX_WINDOW),
        )  # fmt: skip
        self.pacer: Pacer | None = None
        self.started_at = 0.0
        self.finished_at = 0.0
        self.all_acked = False
        #: seconds spent with messages due but the in-flight window full (the broker's pace)
        self.window_full_s = 0.0
        self.finished_mono = 0.0
        self.count_limit: int | None = None

    def _send(self, msg: OutboundMessage) -> None:
        self.publisher.publish(msg.topic, msg.payload, msg.retain)
        self.tally.record(msg)

    def prepare(self) -> None:
        """Connects and publishes this share's retained metadata."""
        self.publisher.connect(timeout=15)
        for msg in self.generator.metadata_messages():
            while self.publisher.room == 0:
                self.publisher.service(0.05)
            self._send(msg)

    def send(
        self,
        duration: float | None,
        count: int | None,
        origin: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Publishes on the schedule from `origin` (a time.monotonic() value) until `duration`
        seconds, `count` messages, or `stop`."""
        start = time.monotonic() if origin is None else origin
        while time.monotonic() < start and not self.stop.is_set():
            self.publisher.service(min(0.05, max(0.0, start - time.monotonic())))
        pacer = self.pacer = Pacer(self.rate, start)
        self.count_limit = count
        gen, pub = self.generator, self.publisher
        self.started_at = time.time()
        next_progress = start + PROGRESS_EVERY_S
        next_log = start + LOG_EVERY_S
        last_log = (start, 0)
        warned_at = -math.inf
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if duration is not None and now - start >= duration:
                    break
                if count is not None and gen.sent >= count:
                    break
                due = pacer.due(now, gen.sent)
                if count is not None:
                    due = min(due, count - gen.sent)
                burst = min(due, pub.room)
                for _ in range(burst):
                    self._send(gen.next_message())
                if pacer.saturated_within(now, 0.0) and now - warned_at >= LOG_EVERY_S:
                    warned_at = now
                    log.warning("cannot keep up with the asked rate; sending as fast as it can",
                                extra=self._progress(now, last_log))
                pub.service(0.0)  # write the burst, take the PUBACKs that are there
                if due > burst:
                    if pub.room == 0:  # wait for the broker: its PUBACKs set the pace
                        t0 = time.monotonic()
                        pub.service(TICK_S)
                        self.window_full_s += time.monotonic() - t0
                else:
                    # on schedule: sleep to the next due message, at least a tick, so that
                    # messages go out (and PUBACKs are read) in bursts, not one by one
                    wait = max(pacer.wait_s(time.monotonic(), gen.sent), TICK_S)
                    self.stop.wait(min(wait, 0.05))
                if now >= next_progress:
                    next_progress = now + PROGRESS_EVERY_S
                    if on_progress is not None:
                        on_progress(self.snapshot())
                if now >= next_log:
                    next_log = now + LOG_EVERY_S
                    log.info("progress", extra=self._progress(now, last_log))
                    last_log = (now, gen.sent)
        finally:
            self.finished_at = time.time()
            self.finished_mono = time.monotonic()

    def finish(self) -> None:
        """Waits for the broker's acknowledgements, then disconnects."""
        self.all_acked = self.publisher.wait_acked(self.settings.simulate_ack_timeout_s)
        self.publisher.close()

    def _progress(self, now: float, last: tuple[float, int]) -> dict[str, Any]:
        seconds = max(now - last[0], 1e-9)
        return {
            "messages_sent": self.tally.messages_sent,
            "acked": self.publisher.acked,
            "bad": self.tally.bad_messages,
            "rate_asked": round(self.rate, 1),
            "rate_recent": round((self.generator.sent - last[1]) / seconds, 1),
            "schedule_skipped": self.pacer.skipped if self.pacer else 0,
        }

    def saturated(self) -> bool:
        return self.pacer is not None and self.pacer.saturated_within(
            time.monotonic(), SATURATED_WITHIN_S
        )

    def snapshot(self) -> dict[str, Any]:
        """Running counts for the metrics (cheap: a few small dicts)."""
        t = self.tally
        return {
            "messages_by_kind": {k: dict(v) for k, v in t.messages_by_kind.items()},
            "metadata_sent": t.metadata_sent,
            "readings_sent": t.readings_sent,
            "expected_good_points": t.expected_good_points,
            "bad_messages_by_reason": dict(t.bad_messages_by_reason),
            "acked": self.publisher.acked,
            "connected": self.publisher.connected,
            "saturated": self.saturated(),
        }

    def summary(self) -> dict[str, Any]:
        """This share's part of the summary (merged by `merge_summaries`)."""
        duration = max(self.finished_at - self.started_at, 1e-9)
        pacer = self.pacer
        skipped = pacer.skipped if pacer else 0
        achieved = self.generator.sent / duration
        sent = self.generator.sent
        asked = int((self.finished_mono - pacer.start) * self.rate) if pacer else 0
        if self.count_limit is not None:
            asked = min(asked, self.count_limit)
        shortfall = max(0, asked - sent)
        return {
            "share": list(self.share),
            "devices": len(self.generator.devices),
            "rate_asked": round(self.rate, 3),
            "paced_sent": self.generator.sent,
            "achieved_rate": round(achieved, 2),
            "started_at_s": self.started_at,
            "finished_at_s": self.finished_at,
            "messages_acked": self.publisher.acked,
            "messages_unacked": self.publisher.pending,
            "schedule_skipped": skipped,
            "saturated_events": pacer.saturated_events if pacer else 0,
            "asked_messages": asked,
            "shortfall_messages": shortfall,
            "kept_up": kept_up(asked, shortfall, skipped),
            "window_full_s": round(self.window_full_s, 2),
            "reconnects": self.publisher.reconnects,
            "cpu_seconds": round(cpu_seconds_self(), 3),
            **self.tally.as_dict(),
        }


class MetricsExporter:
    """Turns the shares' running counts into the Prometheus metrics (one process serves them)."""

    def __init__(self, shares: int) -> None:
        self.latest: dict[int, dict[str, Any]] = {}
        self.shares = shares
        self._lock = threading.Lock()

    def apply(self, index: int, snap: dict[str, Any]) -> None:
        with self._lock:
            old = self.latest.get(index, {})
            self.latest[index] = snap
            for kind, shapes in snap["messages_by_kind"].items():
                for shape, n in shapes.items():
                    before = old.get("messages_by_kind", {}).get(kind, {}).get(shape, 0)
                    if n > before:
                        MESSAGES_SENT.labels(device_kind=kind, shape=shape).inc(n - before)
            for reason, n in snap["bad_messages_by_reason"].items():
                before = old.get("bad_messages_by_reason", {}).get(reason, 0)
                if n > before:
                    BAD_SENT.labels(reason=reason).inc(n - before)
            for key, metric in (
                ("metadata_sent", METADATA_SENT),
                ("readings_sent", READINGS_SENT),
                ("expected_good_points", EXPECTED_POINTS),
                ("acked", ACKED),
            ):
                delta = snap[key] - old.get(key, 0)
                if delta > 0:
                    metric.inc(delta)
            every = [s for s in self.latest.values()]
            CONNECTED.set(
                1 if len(every) == self.shares and all(s["connected"] for s in every) else 0
            )
            SATURATED.set(1 if any(s["saturated"] for s in every) else 0)

    def connected(self) -> bool:
        with self._lock:
            snaps = list(self.latest.values())
        return len(snaps) == self.shares and all(s["connected"] for s in snaps)


def merge_summaries(
    parts: list[dict[str, Any]], settings: SimulatorSettings, seed: int, own_cpu_s: float = 0.0
) -> dict[str, Any]:
    """One summary for the whole fleet from its shares' summaries."""
    parts = sorted(parts, key=lambda p: p["share"][0])
    started = min(p["started_at_s"] for p in parts)
    finished = max(p["finished_at_s"] for p in parts)
    duration = max(finished - started, 1e-9)
    paced = sum(p["paced_sent"] for p in parts)
    by_kind: dict[str, dict[str, int]] = {}
    bad: dict[str, int] = {}
    for p in parts:
        for kind, shapes in p["messages_by_kind"].items():
            into = by_kind.setdefault(kind, {})
            for shape, n in shapes.items():
                into[shape] = into.get(shape, 0) + n
        for reason, n in p["bad_messages_by_reason"].items():
            bad[reason] = bad.get(reason, 0) + n
    skipped = sum(p["schedule_skipped"] for p in parts)
    rate = settings.simulate_rate
    achieved = paced / duration
    asked = sum(p["asked_messages"] for p in parts)
    shortfall = sum(p["shortfall_messages"] for p in parts)
    summed = (
        "messages_sent", "metadata_sent", "readings_sent", "expected_good_points",
        "expected_points_without_seq", "bad_messages", "messages_acked", "messages_unacked",
    )  # fmt: skip
    summary: dict[str, Any] = {
        "device_prefix": settings.simulate_device_prefix,
        "devices": settings.simulate_devices,
        "rate_asked": rate,
        "bad_ratio": settings.simulate_bad_ratio,
        "seed": seed,
        "load": {
            "batch_share": settings.simulate_batch_share,
            "metrics_per_reading": settings.simulate_metrics_per_reading,
            "ts_format": settings.simulate_ts_format,
            "units": settings.simulate_units,
            "prebuilt_payloads": settings.simulate_batch_share == 0
            and settings.simulate_ts_format == "epoch_ms",
        },
        "processes": len(parts),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": round(duration, 3),
        #: paced publishes (telemetry and bad metadata) per second
        "achieved_rate": round(achieved, 2),
        "kept_up": all(p["kept_up"] for p in parts) and kept_up(asked, shortfall, skipped),
        #: messages the schedule called for by the end, and how many of them were not sent
        "asked_messages": asked,
        "shortfall_messages": shortfall,
        "schedule_skipped": skipped,
        "window_full_s": round(max(p["window_full_s"] for p in parts), 2),
        "cpu_seconds": round(own_cpu_s + sum(p["cpu_seconds"] for p in parts), 3),
        "reconnects": sum(p["reconnects"] for p in parts),
        **{k: sum(p[k] for p in parts) for k in summed},
        "bad_messages_by_reason": bad,
        "messages_by_kind": dict(sorted(by_kind.items())),
        "max_seq_by_device": {d: s for p in parts for d, s in p["max_seq_by_device"].items()},
        "device_kinds": {d: k for p in parts for d, k in p["device_kinds"].items()},
        "per_process": [
            {k: p[k] for k in ("share", "devices", "rate_asked", "paced_sent", "achieved_rate",
                               "kept_up", "shortfall_messages", "schedule_skipped",
                               "window_full_s", "cpu_seconds")}
            for p in parts
        ],
    }
    return summary


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def processes_for(settings: SimulatorSettings, cpus: int | None = None) -> int:
    """How many sending processes: the setting, or (0) as many as the rate needs, at most one
    per CPU and one per device."""
    if settings.simulate_processes > 0:
        return min(settings.simulate_processes, settings.simulate_devices)
    prebuilt = settings.simulate_batch_share == 0 and settings.simulate_ts_format == "epoch_ms"
    capacity = PROCESS_CAPACITY_PREBUILT if prebuilt else PROCESS_CAPACITY_GENERATED
    need = math.ceil(settings.simulate_rate / capacity)
    return max(1, min(need, cpus or os.cpu_count() or 1, settings.simulate_devices))


# ---- one process, or several ----


def run_inline(
    settings: SimulatorSettings,
    seed: int,
    stop: threading.Event,
    duration: float | None,
    count: int | None,
    state: HealthState | None,
) -> dict[str, Any]:
    """The whole fleet in this process."""
    exporter = MetricsExporter(1)
    sim = Simulation(settings, seed, stop)
    sim.prepare()
    exporter.apply(0, sim.snapshot())
    if state is not None:
        state.checks["mqtt"] = exporter.connected
        state.ready = True
    try:
        sim.send(duration, count, on_progress=lambda snap: exporter.apply(0, snap))
    finally:
        sim.finish()
        exporter.apply(0, sim.snapshot())
    return merge_summaries([sim.summary()], settings, seed)


def _worker_main(
    overrides: dict[str, Any],
    seed: int,
    share: tuple[int, int],
    duration: float | None,
    count: int | None,
    events: Any,
    stop: Any,
    go: Any,
    origin: Any,
) -> None:
    """A sending process: its share of the fleet on the common schedule; reports on `events`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and tells us
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = SimulatorSettings(**overrides)
    setup_logging(settings.log_format, settings.log_level)
    index = share[0]
    parent = os.getppid()
    try:
        sim = Simulation(settings, seed, stop, share)
        sim.prepare()
        events.put(("ready", index, sim.snapshot()))
        while not go.wait(0.2):
            sim.publisher.service(0.0)
            if stop.is_set() or os.getppid() != parent:
                sim.finish()
                return

        def progress(snap: dict[str, Any]) -> None:
            events.put(("progress", index, snap))
            if os.getppid() != parent:  # the parent died: stop rather than send forever
                stop.set()

        try:
            sim.send(duration, split_evenly(count, share[1], index) if count is not None else None,
                     origin.value, progress)
        finally:
            sim.finish()
        events.put(("done", index, sim.summary(), sim.snapshot()))
    except ConnectionError as exc:
        events.put(("error", index, str(exc)))
    except Exception as exc:  # the parent must hear of it, or it waits for nothing
        log.exception("simulator process failed")
        events.put(("error", index, f"{type(exc).__name__}: {exc}"))


def run_processes(
    settings: SimulatorSettings,
    overrides: dict[str, Any],
    seed: int,
    processes: int,
    stop: threading.Event,
    duration: float | None,
    count: int | None,
    state: HealthState | None,
) -> dict[str, Any]:
    """The fleet split over `processes` sending processes on one schedule origin."""
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    child_stop, go = ctx.Event(), ctx.Event()
    origin = ctx.Value("d", 0.0)
    exporter = MetricsExporter(processes)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(overrides, seed, (k, processes), duration, count, events, child_stop, go,
                  origin),
            name=f"simulate-{k}",
            daemon=True,
        )
        for k in range(processes)
    ]
    for p in procs:
        p.start()
    summaries: dict[int, dict[str, Any]] = {}
    ready: set[int] = set()
    error: str | None = None
    deadline = time.monotonic() + 60
    try:
        while len(summaries) < processes and error is None:
            if stop.is_set():
                child_stop.set()
            if not go.is_set() and len(ready) == processes:
                origin.value = time.monotonic() + 0.05
                go.set()
                if state is not None:
                    state.checks["mqtt"] = exporter.connected
                    state.ready = True
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if not go.is_set() and time.monotonic() > deadline:
                    error = "the sending processes did not connect within 60 s"
                dead = [p.name for k, p in enumerate(procs)
                        if not p.is_alive() and k not in summaries]
                if dead and events.empty():
                    error = error or f"simulator process {', '.join(dead)} exited without a summary"
                continue
            kind, index = event[0], event[1]
            if kind == "ready":
                ready.add(index)
                exporter.apply(index, event[2])
            elif kind == "progress":
                exporter.apply(index, event[2])
            elif kind == "done":
                summaries[index] = event[2]
                exporter.apply(index, event[3])
            elif kind == "error":
                error = f"simulator process {index}: {event[2]}"
    finally:
        child_stop.set()
        go.set()
        for p in procs:
            p.join(settings.simulate_ack_timeout_s + 10)
            if p.is_alive():
                p.terminate()
    if error is not None:
        raise ConnectionError(error) if "MQTT" in error else RuntimeError(error)
    return merge_summaries(list(summaries.values()), settings, seed, cpu_seconds_self())


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
        f"= {summary['achieved_rate']:.1f} msg/s ({summary['processes']} sending "
        f"process{'es' if summary['processes'] > 1 else ''}); the broker acknowledged "
        f"{summary['messages_acked']} publishes (metadata included), "
        f"{summary['messages_unacked']} unacknowledged",
        f"expected good points: {summary['expected_good_points']}",
    ]
    if not summary["kept_up"]:
        lines.append(limit_sentence(summary))
    for kind, shapes in summary["messages_by_kind"].items():
        lines.append(f"  {kind:<12} " + ", ".join(f"{k} {v}" for k, v in sorted(shapes.items())))
    bad = {r: n for r, n in summary["bad_messages_by_reason"].items() if n}
    if bad:
        lines.append(f"bad messages: {summary['bad_messages']}")
        lines.extend(f"  {reason:<22} {n}" for reason, n in bad.items())
    return "\n".join(lines)


def limit_sentence(summary: dict[str, Any]) -> str:
    """Why the asked rate was not reached, in words."""
    why = (
        f"the broker's PUBACKs were the limit for {summary['window_full_s']:.1f} s (in-flight "
        "window full: raise TELEMETRY_SIMULATE_MAX_INFLIGHT)"
        if summary["window_full_s"] > 0.1 * summary["duration_s"]
        else "CPU was the limit (more --processes may help if cores are free)"
    )
    return (
        f"the simulator could not keep up: asked {summary['rate_asked']:g} msg/s, sent "
        f"{summary['achieved_rate']:.1f} msg/s as fast as it could "
        f"({summary['shortfall_messages']} of {summary['asked_messages']} messages short); {why}"
    )


OPTION_FIELDS = (
    ("devices", "simulate_devices"),
    ("rate", "simulate_rate"),
    ("bad_ratio", "simulate_bad_ratio"),
    ("seed", "simulate_seed"),
    ("device_prefix", "simulate_device_prefix"),
    ("health_port", "simulate_health_port"),
    ("processes", "simulate_processes"),
    ("batch_share", "simulate_batch_share"),
    ("metrics_per_reading", "simulate_metrics_per_reading"),
    ("ts_format", "simulate_ts_format"),
    ("units", "simulate_units"),
)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives (they win over TELEMETRY_SIMULATE_*)."""
    out: dict[str, Any] = {}
    for arg, field in OPTION_FIELDS:
        value = getattr(args, arg, None)
        if value is not None:
            out[field] = value
    return out


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    return SimulatorSettings(**overrides_from_args(args))


def check_settings(s: SimulatorSettings, duration: float | None, count: int | None) -> str | None:
    """What is wrong with these options, in words a user can act on; None when fine."""
    if s.simulate_devices < 1:
        return "--devices must be at least 1"
    if not (math.isfinite(s.simulate_rate) and s.simulate_rate > 0):
        return "--rate must be a positive number of messages per second"
    if s.simulate_rate / s.simulate_devices > MAX_RATE_PER_DEVICE:
        return (
            f"--rate / --devices must be at most {MAX_RATE_PER_DEVICE:g} msg/s per device (a "
            "device's ts is in milliseconds and strictly increases): add devices"
        )
    if not 0.0 <= s.simulate_bad_ratio <= 1.0:
        return "--bad-ratio must be between 0 and 1"
    if not 0.0 <= s.simulate_batch_share <= 1.0:
        return "--batch-share must be between 0 and 1"
    if not PREFIX_PATTERN.match(s.simulate_device_prefix):
        return "--device-prefix may only hold letters, digits, '_', '.', ':' and '-'"
    if len(s.simulate_device_prefix) > 100:
        return "--device-prefix must be at most 100 characters"
    if not s.simulate_topic_prefix or any(c in s.simulate_topic_prefix for c in "/+#\0"):
        return "TELEMETRY_SIMULATE_TOPIC_PREFIX must be one topic level: no '/', '+', '#'"
    if s.simulate_processes < 0:
        return "--processes must be 0 (as many as the rate needs) or more"
    if s.simulate_ts_format not in TS_FORMATS:
        return f"--ts-format must be one of {', '.join(TS_FORMATS)}"
    if s.simulate_units not in UNITS_CHOICES:
        return f"--units must be one of {', '.join(UNITS_CHOICES)}"
    if not 1 <= s.simulate_max_inflight <= MAX_WINDOW:
        return f"TELEMETRY_SIMULATE_MAX_INFLIGHT must be 1..{MAX_WINDOW}"
    if duration is not None and duration <= 0:
        return "--duration must be positive"
    if count is not None and count < 0:
        return "--count must not be negative"
    return None


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry simulate`."""
    try:
        overrides = overrides_from_args(args)
        settings = SimulatorSettings(**overrides)
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
    processes = processes_for(settings)
    log.info(
        "simulating",
        extra={
            "devices": settings.simulate_devices,
            "rate": settings.simulate_rate,
            "bad_ratio": settings.simulate_bad_ratio,
            "seed": seed,
            "processes": processes,
            "health_port": server.server_port,
            "settings": settings.redacted(),
        },
    )
    try:
        if processes == 1:
            summary = run_inline(settings, seed, stop, args.duration, args.count, state)
        else:
            summary = run_processes(
                settings, {**overrides, "simulate_seed": seed}, seed, processes, stop,
                args.duration, args.count, state,
            )  # fmt: skip
    except ConnectionError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        state.ready = False
        with contextlib.suppress(Exception):
            server.shutdown()
    if args.summary:
        write_summary(summary, args.summary)
    print(format_summary(summary))
    if not summary["kept_up"]:
        log.warning(limit_sentence(summary), extra={
            "rate_asked": summary["rate_asked"], "achieved_rate": summary["achieved_rate"],
            "schedule_skipped": summary["schedule_skipped"],
        })  # fmt: skip
    if summary["messages_unacked"]:
        log.warning(
            "broker did not acknowledge every message",
            extra={"unacked": summary["messages_unacked"]},
        )
        return 1
    return 0
