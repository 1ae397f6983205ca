"""The benchmark report: numbers in, report.json and report.png out."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from loadtest.benchmark import build_report
from loadtest.report import percentiles, write_report

START = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def sample_report() -> dict[str, Any]:
    timeline = [
        {
            "t_s": t,
            "sent_per_s": 200.0 if t < 30 else None,
            "in_per_s": 199.0 if t < 30 else 0.0,
            "processed_per_s": 450.0,
            "written_per_s": None if t == 0 else 430.0 + t,
            "stored_per_s": 400.0,
            "rss_mib": {"ingest": 50 + t / 10, "process": 140.0, "sink-influxdb": 80.0},
        }
        for t in range(0, 40, 2)
    ]
    return {
        "run": {"started_at": "2026-11-21T06:00:00+00:00", "devices": 50, "rate_asked": 200.0,
                "duration_s": 30.0},
        "throughput": {"messages_sent": 6000, "points_stored_per_s": 412.5},
        "latency_ms": {"p50": 800.0, "p99": 2500.0},
        "timeline": timeline,
    }  # fmt: skip


def test_writes_json_that_reads_back_and_a_png_plot(tmp_path: Path) -> None:
    report = sample_report()
    json_path, png_path = write_report(report, tmp_path / "reports" / "20261121T060000Z")
    assert json.loads(json_path.read_text()) == report
    assert png_size(png_path) == (1100, 1100)
    assert png_path.stat().st_size > 20_000  # lines were drawn, not an empty canvas


def test_an_empty_timeline_still_gives_a_plot(tmp_path: Path) -> None:
    report: dict[str, Any] = {"run": {}, "timeline": []}
    _, png_path = write_report(report, tmp_path)
    assert png_size(png_path) == (1100, 1100)


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]
    p = percentiles(samples)
    assert (p["p50"], p["p90"], p["p99"], p["min"], p["max"], p["count"]) == (
        50.0, 90.0, 99.0, 1.0, 100.0, 100.0,
    )  # fmt: skip
    assert percentiles([]) == {}
    assert percentiles([7.0])["p99"] == 7.0


def test_loss_duplicates_and_dead_letters_are_accounted_and_explained() -> None:
    summary = {
        "duration_s": 30.0,
        "achieved_rate": 200.0,
        "messages_sent": 6000,
        "expected_good_points": 1000,
        "max_seq_by_device": {"d-1": 600, "d-2": 390},
        "bad_messages_by_reason": {"invalid_json": 5, "unknown_unit": 4, "no_metrics": 0},
    }
    timeline = SimpleNamespace(
        rows=[{"t_s": 0, "written_per_s": 100.0}, {"t_s": 2, "written_per_s": 300.0}],
        pids={"ingest": 10},
        peak_rss={"ingest": 51.234},
        cpu={"ingest": 3.456},
    )
    args = SimpleNamespace(devices=2, rate=200.0, bad_ratio=0.01, seed=1, duration=30.0)
    drain = {"drained": True, "seconds": 10.0, "lag_at_end": {}}
    report = build_report(
        cast(Any, args), "bench-x-", START,
        summary, {"d-1": 598, "d-2": 400}, {"d-1": 597, "d-2": 390},
        {"invalid_json": 10, "unknown_unit": 4}, [100.0, 200.0, 300.0], drain, 6100.0,
        cast(Any, timeline), {"ingest": 0},
    )  # fmt: skip
    points = report["points"]
    assert (points["expected"], points["stored"], points["lost"]) == (1000, 998, 2)
    assert points["missing_seq"] == 3 and points["devices_missing_seq"] == {"d-1": 3}
    assert report["dead_letters"]["difference_by_reason"] == {"invalid_json": 5}
    assert report["throughput"]["messages_in_per_s"] == round(6100 / 30, 2)
    assert report["throughput"]["points_stored_per_s"] == round(998 / 40, 2)
    assert report["throughput"]["points_written_per_s_peak"] == 300.0
    assert report["components"]["ingest"] == {
        "pid": 10, "peak_rss_mib": 51.23, "cpu_seconds": 3.46, "exit_code": 0,
    }  # fmt: skip
    assert report["latency_ms"]["p50"] == 200.0
    text = " ".join(report["warnings"])
    assert "100 more telemetry messages" in text and "invalid_json" in text
    assert "did not drain" not in text


def test_an_undrained_run_with_extra_points_says_so() -> None:
    summary = {
        "duration_s": 10.0, "achieved_rate": 10.0, "messages_sent": 100,
        "expected_good_points": 100, "max_seq_by_device": {"d-1": 100},
        "bad_messages_by_reason": {},
    }  # fmt: skip
    timeline = SimpleNamespace(rows=[], pids={}, peak_rss={}, cpu={})
    args = SimpleNamespace(devices=1, rate=10.0, bad_ratio=0.0, seed=1, duration=10.0)
    report = build_report(
        cast(Any, args), "b-", START, summary,
        {"d-1": 103}, {"d-1": 100}, {}, [], {"drained": False, "seconds": 5.0}, None,
        cast(Any, timeline), {},
    )  # fmt: skip
    assert report["points"]["lost"] == -3
    text = " ".join(report["warnings"])
    assert "did not drain" in text and "3 more points than expected" in text
    assert report["throughput"]["messages_in"] is None
    assert report["latency_ms"].keys() == {"method"}


def test_counts_that_could_not_be_read_are_null_not_zero() -> None:
    summary = {
        "duration_s": 10.0, "achieved_rate": 10.0, "messages_sent": 100,
        "expected_good_points": 100, "max_seq_by_device": {"d-1": 100},
        "bad_messages_by_reason": {},
    }  # fmt: skip
    timeline = SimpleNamespace(rows=[], pids={}, peak_rss={}, cpu={})
    args = SimpleNamespace(devices=1, rate=10.0, bad_ratio=0.0, seed=1, duration=10.0)
    report = build_report(
        cast(Any, args), "b-", START, summary, None, None, {}, [],
        {"drained": True, "seconds": 1.0}, 100.0, cast(Any, timeline), {},
    )  # fmt: skip
    points = report["points"]
    assert points["stored"] is None and points["lost"] is None and points["missing_seq"] is None
    assert report["throughput"]["points_stored_per_s"] is None
    assert points["expected"] == 100


def table(us: float) -> dict[str, Any]:
    from loadtest.cpu_table import CpuSample, cpu_table

    names = ("ingest", "process", "sink", "mosquitto", "kafka", "influxdb")
    before = CpuSample(0.0, dict.fromkeys(names, 0.0))
    after = CpuSample(10.0, dict.fromkeys(names, us * 1e-6 * 1000))
    return cpu_table(before, after, 1000, extra_seconds={"simulate": 0.05})


def test_a_find_max_report_has_every_step_the_rate_held_and_its_cpu_table(
    tmp_path: Path,
) -> None:
    from loadtest.benchmark import find_max_report

    steps = [
        {"index": 0, "rate_asked": 1000.0, "held": True, "failed_because": [],
         "lag": {"growth_over_step": 0}, "sent_rate": 999.0, "lost": 0, "p99_ms": 500.0,
         "cpu_us_per_reading": table(10.0)},
        {"index": 1, "rate_asked": 2000.0, "held": False, "failed_because": ["3 readings lost"],
         "lag": {"growth_over_step": 900}, "sent_rate": 1999.0, "lost": 3, "p99_ms": 2500.0,
         "cpu_us_per_reading": table(20.0), "simulator_kept_up": True},
    ]  # fmt: skip
    result = {"max_rate_held": 1000.0, "stopped_because": "2 bisections", "steps": steps,
              "criteria": {"max_p99_ms": 2000.0}, "step_duration_s": 30.0}
    args = SimpleNamespace(devices=50, payload="uniform", bad_ratio=0.0, seed=1,
                           step_duration=30.0)
    timeline = SimpleNamespace(
        rows=[{"t_s": t, "sent_per_s": 1000.0, "step": t // 10, "step_rate": 1000.0 * (t // 10 + 1),
               "rss_mib": {"ingest": 50.0}} for t in range(0, 20, 2)],
        pids={"ingest": 7}, peak_rss={"ingest": 55.5}, cpu={"ingest": 3.0},
    )  # fmt: skip
    report = find_max_report(cast(Any, args), "b-", START, ["g"], result,
                             cast(Any, timeline), {"ingest": 0})
    assert report["run"]["mode"] == "find_max"
    assert report["find_max"]["max_rate_held"] == 1000.0 and len(report["find_max"]["steps"]) == 2
    assert report["cpu_us_per_reading_step"] == 0  # the table of the highest held step
    rows = report["cpu_us_per_reading"]["rows"]
    assert {"ingest", "process", "sink", "mosquitto", "kafka", "influxdb"} <= set(rows)
    assert all(isinstance(rows[n]["us_per_reading"], float) for n in rows)
    assert report["components"]["ingest"]["peak_rss_mib"] == 55.5
    json_path, png_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["find_max"]["steps"][1]["lost"] == 3
    assert png_size(png_path) == (1100, 1100)


def test_a_component_report_has_throughput_and_cpu_per_reading(tmp_path: Path) -> None:
    from loadtest.benchmark import component_report
    from loadtest.component_bench import Replay, Sample
    from loadtest.cpu_table import CpuSample

    replay = Replay("process", backlog=2000, completed=True, seconds_to_done=5.0,
                    notes={"committed_to_end": True}, exit_code=0, peak_rss_mib=80.0, pid=9)
    for i, done in enumerate([0, 0, 0, 400, 1000, 1600, 2000]):
        cpu: dict[str, float | None] = {
            "process": 0.1 * i, "kafka": 1.0 + 0.01 * i, "mosquitto": 2.0, "influxdb": 3.0
        }
        replay.samples.append(Sample(0.5 * i, done, 0, CpuSample(0.5 * i, cpu), 60.0 + i))
    args = SimpleNamespace(devices=50, count=2000, seed=1)
    report = component_report(cast(Any, args), "b-", START, replay)
    c = report["component"]
    assert report["run"]["mode"] == "component" and c["name"] == "process"
    assert c["completed"] and c["done"] == 2000 and c["committed_to_end"] is True
    assert c["readings_per_s"] == round(1600 / 1.5, 1)  # from 10% (400 at 1.5 s) to 2000 at 3 s
    assert c["window"]["how"].startswith("10%")
    steady = report["cpu_us_per_reading"]["rows"]
    assert steady["process"]["us_per_reading"] == pytest.approx(0.3 / 1600 * 1e6, rel=1e-3)
    assert steady["kafka"]["role"] == "server"
    assert report["cpu_us_per_reading_incl_startup"]["rows"]["process"]["cpu_seconds"] == 0.6
    assert report["timeline"][4]["done_per_s"] == 1200.0
    _, png_path = write_report(report, tmp_path)
    assert png_size(png_path) == (1100, 1100)
