"""`telemetry dlq` against the real stack: readings refused for an unknown unit are replayed
once the unit is in the catalog and stored exactly once; what is still wrong stays in the DLQ,
and a second replay replays nothing.

Two pipelines, one after the other: the first with the built-in unit catalog and ingest
capped at 3 metrics a reading, the second with `degR` added to the catalog (a file named by
TELEMETRY_PROCESS_UNIT_CATALOG_FILE) and ingest's default cap. So both replay paths are
exercised: Kafka (normalize's rejects to telemetry.raw) and MQTT (ingest's to their topic).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from processors.units import BUILTIN_CATALOG
from stack.local_stack import LocalStack
from tests.support.pipeline import Publisher, RunningPipeline, points_for, wait_for

RANKINE_DEVICES = 3
READINGS = 4


def dlq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`telemetry dlq ...` as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "dlq", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


def dlq_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    """The last stdout line of a dlq command, as JSON (summary --json, replay's report)."""
    out: dict[str, Any] = json.loads(dlq(env, *args).stdout.splitlines()[-1])
    return out


def letters(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in dlq(env, "show", *args).stdout.splitlines()]


def catalog_with_rankine(path: Path) -> Path:
    """The built-in catalog plus temperature in degrees Rankine (degC = R * 5/9 - 273.15)."""
    document = yaml.safe_load(BUILTIN_CATALOG.read_text())
    document["quantities"]["temperature"]["units"]["degR"] = {
        "scale": "5/9", "offset": "-273.15"}
    path.write_text(yaml.safe_dump(document))
    return path


def test_unknown_unit_readings_are_replayed_once_the_unit_is_known(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = f"dlq{uuid.uuid4().hex[:10]}"
    env = {**stack_env, "TELEMETRY_DLQ_REPLAYED_TOPIC": f"test.dlq-replayed.{prefix}"}
    select = ["--device", f"{prefix}-*"]
    t0 = int(time.time() * 1000)
    base = t0 - 60_000
    rankine = [f"{prefix}-r{i}" for i in range(RANKINE_DEVICES)]
    expected_celsius: dict[tuple[str, int], float] = {}

    first = RunningPipeline(local_stack, {**stack_env,
                                          "TELEMETRY_INGEST_MAX_METRICS_PER_READING": "3"},
                            tmp_path / "before").start()
    publisher = Publisher(local_stack)
    try:
        for device in rankine:
            for k in range(READINGS):
                ts = base + k * 1000 + 7
                expected_celsius[(device, ts * 1000)] = float(k)
                reading = {"ts": ts, "seq": k, "metrics": {
                    "temperature": {"value": 491.67 + 1.8 * k, "unit": "degR"},
                    "humidity": 40.0 + k}}
                publisher.publish(f"devices/{device}/telemetry", json.dumps(reading).encode())
        # still unknown after the fix: stays in the DLQ
        publisher.publish(f"devices/{prefix}-furlong/telemetry", json.dumps({
            "ts": base, "metrics": {"temperature": {"value": 20, "unit": "furlongs"},
                                    "humidity": 50.0}}).encode())
        # refused by this ingest (5 metrics, cap 3), taken by the next one
        wide = {"ts": base + 1, "metrics": {"humidity": 51.0, "rpm": 1200, "a": 1, "b": 2,
                                            "c": 3}}
        publisher.publish(f"devices/{prefix}-wide/telemetry", json.dumps(wide).encode())
        # never valid: comes back to the DLQ through ingest
        publisher.publish(f"devices/{prefix}-json/telemetry", b'{"metrics": {"humidity": 4')

        wanted = {("unknown_unit", d) for d in [*rankine, f"{prefix}-furlong"]} | {
            ("too_many_metrics", f"{prefix}-wide"), ("invalid_json", f"{prefix}-json")}

        def have_all() -> bool:
            got = {(m["reason"], m["device_id"]) for m in letters(env, *select, "--since",
                                                                   str(t0 - 1000))}
            return wanted <= got

        wait_for(have_all, 120, "the dead letters of the first pipeline", first.logs)
        # the valid metrics of partly refused readings went on
        wait_for(lambda: len(points_for(local_stack, prefix)) >= len(expected_celsius) + 1,
                 90, "the humidity of the refused readings", first.logs)
    finally:
        publisher.close()
        first.stop()

    stored = points_for(local_stack, prefix)
    assert all("temperature" not in p["fields"] for p in stored.values())
    counts = dlq_json(env, "summary", *select, "--since", str(t0 - 1000), "--json")
    assert counts["by_reason"]["unknown_unit"] >= RANKINE_DEVICES * READINGS + 1, counts
    assert set(counts["by_device"]) >= {d for _, d in wanted}, counts

    until = str(int(time.time() * 1000))
    window = [*select, "--since", str(t0 - 1000), "--until", until]
    plan = dlq(env, "replay", *window, "--dry-run").stdout.splitlines()
    dry = json.loads(plan[-1])
    assert dry["dry_run"] and dry["replayed"] == dry["selected"] >= len(wanted), dry
    assert {json.loads(line)["to"] for line in plan[:-1]} == {"kafka", "mqtt"}

    second = RunningPipeline(local_stack, {
        **stack_env, "TELEMETRY_PROCESS_UNIT_CATALOG_FILE": str(
            catalog_with_rankine(tmp_path / "catalog.yaml"))}, tmp_path / "after").start()
    try:
        replayed_at = int(time.time() * 1000)
        report = dlq_json(env, "replay", *window, "--rate", "50/s")
        assert report["replayed"] == report["selected"] == dry["selected"], report
        assert report["failed"] == 0 and report["already_replayed"] == 0, report
        assert report["to"]["kafka:telemetry.raw"] >= RANKINE_DEVICES * READINGS + 1, report
        assert report["to"]["mqtt:devices/+/telemetry"] >= 2, report

        def converted() -> bool:
            points = points_for(local_stack, prefix)
            return all("temperature" in points.get(k, {}).get("fields", {})
                       for k in expected_celsius) and (
                f"{prefix}-wide", (base + 1) * 1000) in points

        wait_for(converted, 120, "the replayed readings in InfluxDB", second.logs)
        # the cause is still there: refused again, a new dead letter each
        again = {(m["reason"], m["device_id"]) for m in letters(
            env, *select, "--since", str(replayed_at))}
        assert {("unknown_unit", f"{prefix}-furlong"),
                ("invalid_json", f"{prefix}-json")} <= again, again
        time.sleep(3)  # anything extra or late would show up now
    finally:
        second.stop()

    points = points_for(local_stack, prefix)
    # exactly once: one point per reading, at the reading's own time
    assert set(points) == set(expected_celsius) | {
        (f"{prefix}-furlong", base * 1000), (f"{prefix}-wide", (base + 1) * 1000)}
    for key, celsius in expected_celsius.items():
        fields = points[key]["fields"]
        assert math.isclose(fields["temperature"], celsius, abs_tol=1e-6), (key, fields)
        assert fields["humidity"] == 40.0 + celsius
        assert "dew_point" in fields
    assert "temperature" not in points[(f"{prefix}-furlong", base * 1000)]["fields"]
    assert points[(f"{prefix}-wide", (base + 1) * 1000)]["fields"] == {
        "humidity": 51.0, "rpm": 1200.0, "a": 1.0, "b": 2.0, "c": 3.0}

    repeat = dlq_json(env, "replay", *window)
    assert repeat["replayed"] == repeat["sent"] == 0, repeat
    assert repeat["already_replayed"] == report["replayed"], repeat
    assert dlq_json(env, "replay", *window, "--again", "--dry-run")["replayed"] == \
        report["replayed"]
