"""`telemetry query DEVICE`: a device's latest stored value of each field, as a table."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from typing import Any

from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from loadtest.influx_probe import InfluxProbe, resolve_target
from loadtest.units import CANONICAL_UNITS

_LOOKBACK = re.compile(r"^-\d+(ns|us|ms|s|m|h|d|w|mo|y)$")
_META_COLUMNS = {"result", "table", "device_id"}


def rows_for(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Table rows (field, value, unit, time, tags) from the query's records."""
    rows = []
    for r in records:
        field = str(r.get("_field"))
        when = r.get("_time")
        tags = {
            k: str(v)
            for k, v in r.items()
            if not k.startswith("_") and k not in _META_COLUMNS and v is not None
        }
        rows.append(
            {
                "field": field,
                "value": _fmt_value(r.get("_value")),
                "unit": CANONICAL_UNITS.get(field, ""),
                "time": when.isoformat(timespec="milliseconds")
                if isinstance(when, datetime)
                else str(when),
                "tags": ", ".join(f"{k}={v}" for k, v in sorted(tags.items())),
            }
        )
    return rows


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(rows: list[dict[str, str]]) -> str:
    columns = ["field", "value", "unit", "time", "tags"]
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for r in rows:
        lines.append("  ".join(r[c].ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Entry point of `telemetry query`."""
    if not _LOOKBACK.match(args.since):
        print(
            f"query: --since must be a negative Flux duration like -1h or -7d, not {args.since!r}",
            file=sys.stderr,
        )
        return 2
    target = resolve_target()
    probe = InfluxProbe(target, timeout_ms=15_000)
    try:
        records = probe.latest_fields(args.device, args.since)
    except ApiException as exc:
        print(
            f"query: InfluxDB at {target.url} refused the query ({exc.status}): {exc.body!r}",
            file=sys.stderr,
        )
        return 1
    except (HTTPError, OSError) as exc:
        print(
            f"query: cannot reach InfluxDB at {target.url} ({exc}); is the stack up? "
            "(`telemetry stack up`, or set TELEMETRY_INFLUXDB_URL/_TOKEN)",
            file=sys.stderr,
        )
        return 1
    finally:
        probe.close()
    rows = rows_for(records)
    if not rows:
        print(
            f"no data for device {args.device!r} in bucket {target.bucket!r} since {args.since}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0
