"""The local InfluxDB is real: a point written with influxdb-client reads back through Flux."""

from __future__ import annotations

import time
import uuid

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from stack.local_stack import LocalStack


def test_point_written_reads_back_with_flux(local_stack: LocalStack) -> None:
    c = local_stack.creds
    device = f"stack-test-{uuid.uuid4().hex[:8]}"
    ts_ms = int(time.time() * 1000) - 1234
    with InfluxDBClient(
        url=local_stack.influxdb.address, token=c.influxdb_token, org=c.influxdb_org
    ) as client:
        assert client.ping()
        point = (
            Point("stack_probe")
            .tag("device_id", device)
            .field("temperature", 21.25)
            .time(ts_ms, WritePrecision.MS)
        )
        client.write_api(write_options=SYNCHRONOUS).write(bucket=c.influxdb_bucket, record=point)
        tables = client.query_api().query(
            f'from(bucket: "{c.influxdb_bucket}") |> range(start: -1h) '
            f'|> filter(fn: (r) => r._measurement == "stack_probe" and r.device_id == "{device}")'
        )
        records = [r for t in tables for r in t.records]
    assert len(records) == 1
    assert records[0].get_value() == 21.25
    assert records[0].get_field() == "temperature"
    assert int(records[0].get_time().timestamp() * 1000) == ts_ms
