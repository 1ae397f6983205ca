"""`telemetry query` against the real InfluxDB, with a device id that needs escaping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS


def query(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "query", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_latest_value_of_each_field_with_unit_time_and_tags(stack_env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    device = f'q-{tag} a,b=c"d\\e${{x}}'  # space, comma, =, quote, backslash, Flux ${
    neighbour = f"q-{tag} a"  # a prefix of the device id: must not be mixed in
    now_ms = int(time.time() * 1000)
    with InfluxDBClient(
        url=stack_env["TELEMETRY_INFLUXDB_URL"],
        token=stack_env["TELEMETRY_INFLUXDB_TOKEN"],
        org=stack_env["TELEMETRY_INFLUXDB_ORG"],
    ) as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        bucket, org = stack_env["TELEMETRY_INFLUXDB_BUCKET"], stack_env["TELEMETRY_INFLUXDB_ORG"]
        for i in range(3):
            write.write(
                bucket,
                org,
                Point("telemetry")
                .tag("device_id", device)
                .tag("site", "Austin, TX")
                .field("temperature", 20.0 + i)
                .field("seq", i + 1)
                .time(now_ms - 3000 + i * 1000, WritePrecision.MS),
            )
        # an older point of another series (no site tag yet): still the latest humidity
        write.write(
            bucket,
            org,
            Point("telemetry")
            .tag("device_id", device)
            .field("humidity", 41.5)
            .time(now_ms - 60_000, WritePrecision.MS),
        )
        write.write(
            bucket,
            org,
            Point("telemetry").tag("device_id", neighbour).field("temperature", -99.0)
            .time(now_ms, WritePrecision.MS),
        )  # fmt: skip

    done = query(stack_env, device, "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["field"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"humidity", "seq", "temperature"}
    assert rows["temperature"]["value"] == "22" and rows["temperature"]["unit"] == "degC"
    assert rows["humidity"]["value"] == "41.5" and rows["humidity"]["unit"] == "percent"
    assert rows["seq"]["value"] == "3" and rows["seq"]["unit"] == ""
    assert rows["temperature"]["tags"] == "site=Austin, TX"

    table = query(stack_env, device)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["FIELD", "VALUE", "UNIT", "TIME", "TAGS"]
    assert any(line.startswith("temperature") and "degC" in line for line in lines)
    assert "-99" not in table.stdout


def test_unknown_device_and_bad_options_fail_with_a_reason(stack_env: dict[str, str]) -> None:
    missing = query(stack_env, f"q-none-{uuid.uuid4().hex}")
    assert missing.returncode == 1 and "no data for device" in missing.stderr
    bad = query(stack_env, "x", "--since", '-1h) |> drop(columns: ["_value"]')
    assert bad.returncode == 2 and "--since" in bad.stderr
    away = query({**stack_env, "TELEMETRY_INFLUXDB_URL": "http://127.0.0.1:9"}, "x")
    assert away.returncode == 1 and "cannot reach InfluxDB" in away.stderr
    assert stack_env["TELEMETRY_INFLUXDB_TOKEN"] not in away.stderr + away.stdout
