"""Questions the load-test tools ask InfluxDB: what is stored for a device or a run's devices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from influxdb_client import InfluxDBClient

from loadtest.settings import InfluxQuerySettings

MEASUREMENT = "telemetry"
_PREFIX_SAFE = re.compile(r"^[A-Za-z0-9_.:-]*$")


def flux_string(text: str) -> str:
    """A Flux string literal holding `text` exactly (quotes, backslashes, `${` escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def flux_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if ts.utcoffset() is None else ts.isoformat()


def prefix_regex(prefix: str) -> str:
    """A Flux regex literal matching ids that start with `prefix`."""
    if not _PREFIX_SAFE.match(prefix):
        raise ValueError(f"device prefix {prefix!r} may only hold letters, digits and _ . : -")
    return "/^" + re.escape(prefix).replace("/", "\\/") + "/"


@dataclass(frozen=True)
class InfluxTarget:
    url: str
    org: str
    bucket: str
    token: str


def resolve_target(settings: InfluxQuerySettings | None = None) -> InfluxTarget:
    """TELEMETRY_INFLUXDB_*, or the local stack's credentials for what is not set."""
    s = settings or InfluxQuerySettings()
    token = s.influxdb_token.get_secret_value() if s.influxdb_token else None
    if s.influxdb_url and token:
        return InfluxTarget(
            s.influxdb_url, s.influxdb_org or "telemetry", s.influxdb_bucket or "telemetry", token
        )
    from stack.local_stack import LocalStack

    env = LocalStack().client_env()
    return InfluxTarget(
        s.influxdb_url or env["TELEMETRY_INFLUXDB_URL"],
        s.influxdb_org or env["TELEMETRY_INFLUXDB_ORG"],
        s.influxdb_bucket or env["TELEMETRY_INFLUXDB_BUCKET"],
        token or env["TELEMETRY_INFLUXDB_TOKEN"],
    )


class InfluxProbe:
    def __init__(self, target: InfluxTarget, timeout_ms: int = 30_000) -> None:
        self.target = target
        self.client = InfluxDBClient(
            url=target.url, token=target.token, org=target.org, timeout=timeout_ms
        )
        self.query_api = self.client.query_api()

    def close(self) -> None:
        self.client.close()

    def query(self, flux: str) -> list[dict[str, Any]]:
        """Rows of every table, as dicts of column -> value."""
        tables = self.query_api.query(flux, org=self.target.org)
        return [dict(record.values) for table in tables for record in table.records]

    def _run_filter(self, prefix: str, start: datetime, stop: datetime | None) -> str:
        stop_part = f", stop: {flux_time(stop)}" if stop else ""
        return (
            f"from(bucket: {flux_string(self.target.bucket)})\n"
            f"  |> range(start: {flux_time(start)}{stop_part})\n"
            f'  |> filter(fn: (r) => r._measurement == "{MEASUREMENT}" '
            f"and r.device_id =~ {prefix_regex(prefix)})\n"
        )

    def latest_seq_by_device(self, prefix: str, start: datetime) -> dict[str, tuple[datetime, int]]:
        """device -> (time, seq) of its highest stored seq.

        `last()` answers once per series, and a device has several when its tags changed
        during the run (its first readings stored before its metadata arrived): the highest
        seq of them is the device's, whatever order the tables come in.
        """
        flux = self._run_filter(prefix, start, None) + (
            '  |> filter(fn: (r) => r._field == "seq")\n  |> last()\n'
        )
        latest: dict[str, tuple[datetime, int]] = {}
        for r in self.query(flux):
            if r.get("_value") is None:
                continue
            device, seq = str(r["device_id"]), int(r["_value"])
            if seq > latest.get(device, (r["_time"], -1))[1]:
                latest[device] = (r["_time"], seq)
        return latest

    def seq_counts(self, prefix: str, start: datetime, stop: datetime) -> dict[str, int]:
        """device -> number of distinct seq values stored.

        Distinct, because one reading can sit in two series when its tags changed between two
        deliveries (e.g. written before and after the device's metadata arrived).
        """
        flux = self._run_filter(prefix, start, stop) + (
            '  |> filter(fn: (r) => r._field == "seq")\n'
            '  |> group(columns: ["device_id"])\n'
            '  |> distinct(column: "_value")\n'
            "  |> count()\n"
        )
        return {str(r["device_id"]): int(r["_value"]) for r in self.query(flux)}

    def seq_values(self, prefix: str, start: datetime, stop: datetime) -> dict[str, list[int]]:
        """device -> every stored seq value, one per stored point (a seq stored twice, at two
        times or in two series, appears twice): what `telemetry chaos` audits."""
        flux = self._run_filter(prefix, start, stop) + (
            '  |> filter(fn: (r) => r._field == "seq")\n'
            '  |> keep(columns: ["device_id", "_value"])\n'
        )
        out: dict[str, list[int]] = {}
        for r in self.query(flux):
            if r.get("_value") is not None:
                out.setdefault(str(r["device_id"]), []).append(int(r["_value"]))
        return out

    def point_counts(self, prefix: str, start: datetime, stop: datetime) -> dict[str, int]:
        """device -> number of distinct points (timestamps), whatever fields they hold."""
        flux = self._run_filter(prefix, start, stop) + (
            '  |> keep(columns: ["device_id", "_time"])\n'
            '  |> group(columns: ["device_id"])\n'
            '  |> distinct(column: "_time")\n'
            "  |> map(fn: (r) => ({device_id: r.device_id, _value: 1}))\n"
            "  |> sum()\n"
        )
        return {str(r["device_id"]): int(r["_value"]) for r in self.query(flux)}

    def latest_fields(self, device_id: str, lookback: str = "-30d") -> list[dict[str, Any]]:
        """The newest value of each field of one device, with its tags."""
        flux = (
            f"from(bucket: {flux_string(self.target.bucket)})\n"
            f"  |> range(start: {lookback})\n"
            f'  |> filter(fn: (r) => r._measurement == "{MEASUREMENT}" '
            f"and r.device_id == {flux_string(device_id)})\n"
            "  |> last()\n"
            '  |> group(columns: ["_field"])\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> last()\n"
        )
        return sorted(self.query(flux), key=lambda r: str(r.get("_field")))
