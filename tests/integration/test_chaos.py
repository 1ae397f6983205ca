"""`telemetry chaos` against the real stack: ingest, then the processors, SIGKILLed under a low
load, and nothing lost or stored twice. Only component faults here: they kill processes the
command started itself, so the test is safe on the shared stack of `make test`. The server
faults (restart-*, pause-*) act on the stack's servers and are left to the documented long
command, on a stack of one's own (loadtest/README.md, "telemetry chaos").

The kill-process test is what found that the pinned Faust fetcher change
(`process_fetcher_patch`, now off by default) lost readings across a worker's restart.

The last test deletes one stored point and checks that the same count calls it lost: the
audit can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from influxdb_client import InfluxDBClient

from loadtest.chaos import count
from loadtest.influx_probe import InfluxProbe, flux_string, prefix_regex
from loadtest.run import influx_target


def run_chaos(faults: str, stack_env: dict[str, str], reports: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "chaos", "--fault", faults,
         "--rate", "100", "--duration", "20", "--devices", "10", "--drain-timeout", "150",
         "--reports-dir", str(reports)],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=480,
    )  # fmt: skip
    (report_dir,) = list(reports.iterdir())
    report: dict[str, Any] = json.loads((report_dir / "report.json").read_text())
    report["_dir"] = str(report_dir)
    report["_exit"] = done.returncode
    report["_output"] = done.stdout[-3000:] + done.stderr[-3000:]
    return report


@pytest.fixture(scope="module")
def chaos_report(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, Any]:
    return run_chaos("kill-ingest", stack_env, tmp_path_factory.mktemp("chaos"))


def assert_nothing_lost_or_doubled(report: dict[str, Any], faults: list[str]) -> None:
    assert [f["fault"] for f in report["faults"]] == faults
    for fault in report["faults"]:
        assert fault["error"] is None, fault
        assert fault["new_pid"] != fault["killed_pid"]
        assert isinstance(fault["seconds_to_drain"], float | int), fault
    points = report["points"]
    assert points["expected"] > 1000 and points["expected"] == report["load"]["readings_sent"]
    assert points["lost"] == 0, points
    assert points["duplicated"] == 0, points
    assert report["drain"]["drained"] is True
    assert report["verdict"] == {"passed": True, "reasons": []}
    assert report["_exit"] == 0, report["_output"]


def test_killing_ingest_loses_and_duplicates_nothing(chaos_report: dict[str, Any]) -> None:
    assert_nothing_lost_or_doubled(chaos_report, ["kill-ingest"])


def test_killing_the_processors_loses_and_duplicates_nothing(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    assert_nothing_lost_or_doubled(run_chaos("kill-process", stack_env, tmp_path),
                                   ["kill-process"])


def test_a_point_deleted_after_the_run_counts_as_lost(
    chaos_report: dict[str, Any], stack_env: dict[str, str]
) -> None:
    prefix = chaos_report["run"]["device_prefix"]
    target = influx_target(stack_env)
    probe = InfluxProbe(target)
    since = datetime.now(UTC) - timedelta(hours=1)
    try:
        rows = probe.query(
            f"from(bucket: {flux_string(target.bucket)}) |> range(start: -1h)\n"
            f'  |> filter(fn: (r) => r._measurement == "telemetry" and r._field == "seq"\n'
            f"    and r.device_id =~ {prefix_regex(prefix)} and r._value == 5)\n"
            "  |> limit(n: 1)\n"
        )
    finally:
        probe.close()
    device, when = str(rows[0]["device_id"]), rows[0]["_time"]
    with InfluxDBClient(url=target.url, token=target.token, org=target.org) as client:
        client.delete_api().delete(
            when, when, f"device_id={flux_string(device)}", bucket=target.bucket, org=target.org
        )
    summary = json.loads((Path(chaos_report["_dir"]) / "simulate-summary.json").read_text())
    audit, error = count(stack_env, prefix, since, summary["max_seq_by_device"])
    assert error is None and audit is not None
    assert audit.lost == 1 and audit.lost_by_device == {device: [5]}
    assert audit.duplicated == 0
