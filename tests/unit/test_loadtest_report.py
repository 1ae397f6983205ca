"""The benchmark report: numbers in, report.json and report.png out."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

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
    assert png_size(png_path) == (1100, 800)
    assert png_path.stat().st_size > 20_000  # lines were drawn, not an empty canvas


def test_an_empty_timeline_still_gives_a_plot(tmp_path: Path) -> None:
    report: dict[str, Any] = {"run": {}, "timeline": []}
    _, png_path = write_report(report, tmp_path)
    assert png_size(png_path) == (1100, 800)


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
