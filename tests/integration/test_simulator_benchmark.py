"""`telemetry benchmark --component` against the real stack, with a small backlog: each mode
replays its whole backlog through its component and reports the figures (not their values:
those are for the benchmark, on a quiet machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BACKLOG = 2000
SERVERS = ("mosquitto", "kafka", "influxdb")


def run_benchmark(env: dict[str, str], args: list[str], reports: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "benchmark", *args, "--reports-dir",
         str(reports), "--drain-timeout", "150"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (report_dir,) = list(reports.iterdir())
    assert (report_dir / "report.png").stat().st_size > 10_000
    report: dict[str, Any] = json.loads((report_dir / "report.json").read_text())
    return report


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.parametrize("component", ["ingest", "process", "sink"])
def test_a_component_replays_its_backlog_and_reports_rate_and_cpu_per_reading(
    stack_env: dict[str, str], tmp_path: Path, component: str
) -> None:
    report = run_benchmark(
        stack_env, ["--component", component, "--count", str(BACKLOG), "--devices", "20"],
        tmp_path,
    )
    assert report["run"]["mode"] == "component" and report["run"]["component"] == component
    c = report["component"]
    assert c["completed"] is True and c["done"] >= BACKLOG
    assert is_number(c["readings_per_s"]) and c["readings_per_s"] > 0
    assert is_number(c["seconds_to_done"]) and is_number(c["readings_per_s_incl_startup"])
    assert c["window"]["readings"] > 0
    for table in (report["cpu_us_per_reading"], report["cpu_us_per_reading_incl_startup"]):
        rows = table["rows"]
        assert rows[component]["role"] == "component"
        for name in (component, *SERVERS):
            assert is_number(rows[name]["cpu_seconds"]), (name, rows[name])
            assert is_number(rows[name]["us_per_reading"]), (name, rows[name])
        assert is_number(table["pipeline_us_per_reading"])
    assert report["components"][component]["exit_code"] == 0
    assert is_number(report["components"][component]["peak_rss_mib"])
    assert report["timeline"] and "done_per_s" in report["timeline"][-1]
    if component == "sink":
        assert c["stored_in_influxdb"] == BACKLOG
    if component == "process":
        assert c["committed_to_end"] is True
        assert c["enriched_of_this_run"] >= BACKLOG
    if component == "ingest":
        assert c["messages"] == BACKLOG and c["simulator"]["messages_unacked"] == 0
