"""The benchmark's InfluxDB probe against the real InfluxDB: what it counts as stored."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from loadtest.influx_probe import InfluxProbe
from loadtest.run import influx_target


def test_latest_seq_is_the_highest_of_all_the_devices_series(stack_env: dict[str, str]) -> None:
    """A device's first readings stored before its metadata arrived sit in a series without
    tags: the probe must still report the device's highest seq, not that series' last one."""
    prefix = f"probe-{uuid.uuid4().hex[:8]}-"
    now_ms = int(time.time() * 1000)
    # (device, tags of its first two readings, tags of the rest): the series come back
    # ordered by their tags, so one device's newest series comes first and the other's last.
    devices = [(f"{prefix}a", {}, {"site": "hall 1"}),
               (f"{prefix}b", {"site": "z"}, {"site": "a"})]
    target = influx_target(stack_env)
    with InfluxDBClient(url=target.url, token=target.token, org=target.org) as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        for device, first_tags, later_tags in devices:
            points = []
            for seq in range(1, 40):
                point = Point("telemetry").tag("device_id", device).field("seq", seq)
                for key, value in (first_tags if seq <= 2 else later_tags).items():
                    point = point.tag(key, value)
                points.append(point.time(now_ms - 10_000 + seq, WritePrecision.MS))
            write.write(target.bucket, target.org, points)
    probe = InfluxProbe(target)
    try:
        since = datetime.now(UTC) - timedelta(minutes=1)
        for _ in range(5):  # each answer, whatever order InfluxDB gives the series in
            latest = probe.latest_seq_by_device(prefix, since)
            assert {d: seq for d, (_, seq) in latest.items()} == {d: 39 for d, *_ in devices}
            newest = datetime.fromtimestamp((now_ms - 10_000 + 39) / 1000, UTC)
            assert {when for when, _ in latest.values()} == {newest}
    finally:
        probe.close()
