"""`telemetry benchmark --compare telegraf` against the real stack, a short run at a low rate:
the same load through our pipeline, then through Telegraf, every reading stored in both
buckets, and the report's `comparison` section holding both systems' figures.

Telegraf is the cached build (`go install`, in the stack's cache dir); where it cannot be
built (no Go toolchain, module proxy unreachable) the test is skipped, saying what failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from influxdb_client import InfluxDBClient

from loadtest.comparison import DATA_PATH, OURS, TELEGRAF
from stack.local_stack import LocalStack
from stack.processes import StackError
from tests.support.components import free_port

RATE = 40.0
DURATION_S = 5
DEVICES = 8
#: the test is about storing everything and reporting it, not about a latency budget on a box
#: that may be busy: a step holds unless its p99 goes past this
MAX_P99_MS = 15_000


@pytest.fixture(scope="module")
def telegraf_built(local_stack: LocalStack) -> LocalStack:
    """The stack with Telegraf's binary in the cache (built once, reused after)."""
    try:
        local_stack.install_optional(TELEGRAF)
    except StackError as exc:
        pytest.skip(f"Telegraf cannot be built, so there is nothing to compare with: {exc}")
    return local_stack


def own_ports() -> dict[str, str]:
    """Health ports of the run's components, free now: a pipeline already running on the
    defaults (9101..9105) must not make this run fail, nor be measured by it."""
    ingest, process, sink, simulate = (str(free_port()) for _ in range(4))
    return {
        "TELEMETRY_INGEST_HEALTH_PORT": ingest, "TELEMETRY_RUN_INGEST_PORT": ingest,
        "TELEMETRY_PROCESS_HEALTH_PORT": process, "TELEMETRY_RUN_PROCESS_PORT": process,
        "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT": sink, "TELEMETRY_RUN_SINK_PORT": sink,
        "TELEMETRY_RUN_SIMULATE_PORT": simulate,
    }  # fmt: skip


def run_compare(env: dict[str, str], reports: Path) -> tuple[Path, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "plumbing.cli", "benchmark", "--compare", "telegraf",
         "--rate", f"{RATE:g}", "--duration", str(DURATION_S), "--devices", str(DEVICES),
         "--drain-timeout", "30", "--max-p99-ms", str(MAX_P99_MS),
         "--reports-dir", str(reports)],
        env={**os.environ, **env, **own_ports()},
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (report_dir,) = list(reports.iterdir())
    return report_dir, json.loads((report_dir / "report.json").read_text())


def stored_seqs(
    env: dict[str, str], bucket: str, prefix: str, since: datetime
) -> dict[str, list[int]]:
    """Every stored `seq` of the devices whose id starts with `prefix`, per device (over all
    of a device's series: ours may hold its first readings in one without metadata tags)."""
    assert prefix.replace("-", "").isalnum(), prefix  # safe inside the regex below
    flux = f"""
from(bucket: "{bucket}")
  |> range(start: {since.isoformat()}, stop: {(datetime.now(UTC) + timedelta(minutes=1)).isoformat()})
  |> filter(fn: (r) => r._measurement == "telemetry" and r._field == "seq"
                       and r.device_id =~ /^{prefix}/)
  |> keep(columns: ["_time", "_value", "device_id"])
"""  # noqa: E501
    org = env["TELEMETRY_INFLUXDB_ORG"]
    seqs: dict[str, list[int]] = defaultdict(list)
    with InfluxDBClient(url=env["TELEMETRY_INFLUXDB_URL"], token=env["TELEMETRY_INFLUXDB_TOKEN"],
                        org=org, timeout=60_000) as client:  # fmt: skip
        for table in client.query_api().query(flux, org=org):
            for record in table.records:
                seqs[record.values["device_id"]].append(int(record.get_value()))
    return dict(seqs)


def load(summary: dict[str, Any]) -> dict[str, int]:
    """A simulator run's last seq per device, by device id without the run's prefix."""
    prefix = summary["device_prefix"]
    return {d.removeprefix(prefix): m for d, m in summary["max_seq_by_device"].items()}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_compare_telegraf_stores_every_reading_in_both_buckets_and_reports_both_systems(
    telegraf_built: LocalStack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    stack = telegraf_built
    was_running = stack.telegraf.pid() is not None
    report_dir, report = run_compare(stack_env, tmp_path)

    assert report["run"]["mode"] == "compare" and report["run"]["compare"] == TELEGRAF
    assert report["run"]["telegraf_version"] == stack.settings.stack_telegraf_version
    assert report["warnings"] == []
    since = datetime.fromisoformat(report["run"]["started_at"]) - timedelta(minutes=1)
    buckets = {OURS: stack_env["TELEMETRY_INFLUXDB_BUCKET"], TELEGRAF: stack.telegraf.bucket}
    assert buckets[OURS] != buckets[TELEGRAF]

    # what the simulator sent in each system's run, read from its own summary
    summaries = {}
    for name in (OURS, TELEGRAF):
        (path,) = (report_dir / name).glob("simulate-summary-step*.json")
        summaries[name] = json.loads(path.read_text())
        assert summaries[name]["messages_unacked"] == 0 and summaries[name]["kept_up"] is True
    # the same load for both: the same devices (ids after the run's prefix), the same seqs
    assert load(summaries[OURS]) == load(summaries[TELEGRAF])
    assert len(load(summaries[OURS])) == DEVICES

    # every reading sent is stored, once, in the system's own bucket: seqs exactly 1..max
    for name, summary in summaries.items():
        max_seq = summary["max_seq_by_device"]
        assert sum(max_seq.values()) == summary["readings_sent"] == summary["messages_sent"]
        seqs = stored_seqs(stack_env, buckets[name], summary["device_prefix"], since)
        assert set(seqs) == set(max_seq), (name, sorted(set(seqs) ^ set(max_seq)))
        for device, top in max_seq.items():
            assert sorted(seqs[device]) == list(range(1, top + 1)), (name, device)
    # ...and nowhere else: neither system's devices in the other's bucket
    for name, other in ((OURS, TELEGRAF), (TELEGRAF, OURS)):
        prefix = summaries[name]["device_prefix"]
        assert stored_seqs(stack_env, buckets[other], prefix, since) == {}, (name, other)

    # the comparison section: both systems' figures, matching what was sent and stored
    comp = report["comparison"]
    assert set(comp["systems"]) == {OURS, TELEGRAF}
    for name, system in comp["systems"].items():
        summary = summaries[name]
        assert system["data_path"] == list(DATA_PATH[name])
        (step,) = system["steps"]
        assert step["rate_asked"] == RATE and step["held"] is True, (name, step)
        assert step["messages_sent"] == summary["messages_sent"]
        assert step["stored_by_seq"] == sum(summary["max_seq_by_device"].values())
        assert step["lost"] == 0
        assert is_number(step["p50_ms"]) and is_number(step["p99_ms"])
        assert 0 < step["p50_ms"] <= step["p99_ms"] <= MAX_P99_MS, (name, step)
        for proc in system["data_path"]:
            assert is_number(step["cpu_seconds"][proc]), (name, proc, step["cpu_seconds"])
            assert is_number(step["cpu_us_per_message"][proc]), (name, proc)
            assert step["peak_rss_mib"][proc] > 0, (name, proc, step["peak_rss_mib"])
        assert step["cpu_seconds_total"] > 0 and step["cpu_us_per_message_total"] > 0
        assert system["max_rate_held"] == RATE
        assert system["cpu_us_per_message_at_max_held"] == step["cpu_us_per_message_total"]
    ratios = comp["ratios_ours_over_telegraf"]
    assert ratios["max_rate_held"] == 1.0 and ratios["cpu_us_per_message_at_rate"] == RATE
    ours_cpu = comp["systems"][OURS]["steps"][0]["cpu_us_per_message_total"]
    telegraf_cpu = comp["systems"][TELEGRAF]["steps"][0]["cpu_us_per_message_total"]
    assert ratios["cpu_us_per_message"] == pytest.approx(ours_cpu / telegraf_cpu, abs=0.001)
    assert comp["criteria"]["max_p99_ms"] == MAX_P99_MS and comp["telegraf_does_not"]

    # each system's processes, and Telegraf left as it was found (stopped, unless it ran)
    assert report["systems"][TELEGRAF]["components"][TELEGRAF]["peak_rss_mib"] > 0
    for name in ("ingest", "process", "sink-influxdb", "simulate"):
        assert report["systems"][OURS]["components"][name]["exit_code"] == 0, name
    assert (stack.telegraf.pid() is not None) == was_running
    # report.png draws each system's timeline; its memory panel shows Telegraf like ours
    rss: dict[str, set[str]] = {OURS: set(), TELEGRAF: set()}
    for row in report["timeline"]:
        rss[row["system"]] |= {name for name, mib in (row["rss_mib"] or {}).items() if mib}
    assert {"ingest", "process", "sink-influxdb"} <= rss[OURS] and TELEGRAF in rss[TELEGRAF]
    assert (report_dir / "report.png").stat().st_size > 10_000
