"""The `comparison` section of `--compare telegraf`, from two systems' find_max results, and
the report writer drawing its side-by-side panel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtest.comparison import TELEGRAF_DOES_NOT, comparison_section, max_held, step_row
from loadtest.find_max import Criteria
from loadtest.peak_memory import PeakMemory
from loadtest.report import write_report


def step(rate: float, lost: int | None, p99: float | None, cpu: dict[str, float | None],
         sent: int = 1000) -> dict[str, Any]:  # fmt: skip
    rows = {n: {"role": "server" if n in ("mosquitto", "influxdb", "kafka") else "component",
                "cpu_seconds": v} for n, v in cpu.items()}  # fmt: skip
    rows["simulate"] = {"role": "load", "cpu_seconds": 9.0}
    return {
        "rate_asked": rate, "sent_rate": rate, "messages_sent": sent, "readings_per_s": rate,
        "expected_with_seq": sent, "lost": lost, "p50_ms": 100.0, "p99_ms": p99,
        "cpu_us_per_reading": {"rows": rows}, "peak_rss_mib": {"telegraf": 30.04},
    }  # fmt: skip


def test_a_step_row_counts_stored_by_seq_and_cpu_per_message_without_the_load() -> None:
    row = step_row(step(1000, 3, 500.0, {"telegraf": 0.02, "mosquitto": 0.01}), Criteria())
    assert row["stored_by_seq"] == 997 and row["lost"] == 3
    assert row["held"] is False and "3 readings lost" in row["failed_because"][0]
    assert row["cpu_seconds"] == {"telegraf": 0.02, "mosquitto": 0.01}
    assert row["cpu_us_per_message"] == {"telegraf": 20.0, "mosquitto": 10.0}
    assert row["cpu_us_per_message_total"] == 30.0  # the simulator's 9 s are not in it
    assert row["load_cpu_seconds"] == 9.0 and row["peak_rss_mib"] == {"telegraf": 30.0}


def test_an_unknown_cpu_figure_leaves_the_total_unknown_and_p99_over_the_limit_fails() -> None:
    row = step_row(step(1000, 0, 2500.0, {"ingest": 0.1, "kafka": None}), Criteria())
    assert row["cpu_seconds_total"] is None and row["cpu_us_per_message_total"] is None
    assert row["held"] is False and "p99 latency" in row["failed_because"][0]


def test_the_held_rate_is_the_highest_with_no_lower_failure() -> None:
    steps = [{"rate_asked": r, "held": h} for r, h in ((1000, True), (2000, False), (1500, True),
                                                       (3000, True))]  # fmt: skip
    assert max_held(steps) == 1500
    assert max_held([{"rate_asked": 1000, "held": False}]) is None


def results() -> dict[str, Any]:
    ours = {"steps": [step(1000, 0, 800.0, {"ingest": 0.2, "kafka": 0.2}),
                      step(2000, 50, 4000.0, {"ingest": 0.5, "kafka": 0.3}, sent=2000)],
            "stopped_because": "2 bisections"}  # fmt: skip
    telegraf = {"steps": [step(1000, 0, 900.0, {"telegraf": 0.04}),
                          step(2000, 0, 950.0, {"telegraf": 0.08}, sent=2000)],
                "stopped_because": "every rate of the ramp held"}  # fmt: skip
    return {"ours": ours, "telegraf": telegraf}


def test_ratios_ours_over_telegraf_at_the_highest_rate_both_held() -> None:
    comp = comparison_section(results(), Criteria(), {"devices": 10})
    ours, tg = comp["systems"]["ours"], comp["systems"]["telegraf"]
    assert ours["max_rate_held"] == 1000 and tg["max_rate_held"] == 2000
    assert ours["cpu_us_per_message_at_max_held"] == 400.0
    assert tg["data_path"] == ["telegraf", "mosquitto", "influxdb"]
    r = comp["ratios_ours_over_telegraf"]
    assert r["max_rate_held"] == 0.5
    assert r["cpu_us_per_message_at_rate"] == 1000 and r["cpu_us_per_message"] == 10.0
    assert r["cpu_us_per_message_by_rate"] == {"1000": 10.0, "2000": 10.0}
    assert comp["telegraf_does_not"] == list(TELEGRAF_DOES_NOT)


def test_the_report_of_a_comparison_is_written_with_its_panel(tmp_path: Path) -> None:
    report = {
        "run": {"mode": "compare", "compare": "telegraf", "started_at": "2026-12-03T08:00:00"},
        "comparison": comparison_section(results(), Criteria(), {}),
        "timeline": [{"t_s": 0.0, "sent_per_s": 10.0, "system": "ours"},
                     {"t_s": 2.0, "sent_per_s": 12.0, "system": "ours"},
                     {"t_s": 9.0, "sent_per_s": 11.0, "system": "telegraf"}],
    }
    json_path, png_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["comparison"]["systems"]["ours"]["steps"]
    assert png_path.stat().st_size > 10_000


def test_peak_memory_keeps_the_highest_sample_per_process() -> None:
    values = iter([10.0, 30.0, 20.0, 5.0])
    peaks = PeakMemory(lambda: {"a": 1, "gone": None}, read=lambda pid: next(values, 1.0))
    for _ in range(4):
        peaks.sample()
    assert peaks.mib == {"a": 30.0}
