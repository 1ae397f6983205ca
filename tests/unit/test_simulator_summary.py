"""One summary and one set of metrics for a fleet sent by several processes; how many of them."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from loadtest.settings import SimulatorSettings
from loadtest.simulator import (
    MetricsExporter,
    check_settings,
    format_summary,
    merge_summaries,
    processes_for,
)


def part(index: int, sent: int, skipped: int = 0, shortfall: int = 0) -> dict[str, Any]:
    devices = {f"d-{index}-{i}": sent // 2 for i in range(2)}
    return {
        "share": [index, 2], "devices": 2, "rate_asked": 500.0, "paced_sent": sent,
        "achieved_rate": sent / 10, "started_at_s": 1000.0 + index, "finished_at_s": 1010.0,
        "messages_acked": sent + 2, "messages_unacked": 0, "asked_messages": sent + shortfall,
        "shortfall_messages": shortfall, "schedule_skipped": skipped, "saturated_events": 0,
        "kept_up": skipped == 0 and shortfall == 0, "window_full_s": 0.5 * index,
        "reconnects": 0, "cpu_seconds": 2.0, "messages_sent": sent, "metadata_sent": 2,
        "readings_sent": sent, "expected_good_points": sent, "expected_points_without_seq": 0,
        "bad_messages": 1, "bad_messages_by_reason": {"invalid_json": 1, "no_metrics": 0},
        "messages_by_kind": {"environment": {"single": sent}},
        "max_seq_by_device": devices, "device_kinds": dict.fromkeys(devices, "environment"),
    }  # fmt: skip


def settings(**kw: Any) -> SimulatorSettings:
    return SimulatorSettings(simulate_rate=1000.0, simulate_devices=4, **kw)


def test_shares_merge_into_one_summary() -> None:
    summary = merge_summaries([part(1, 4000), part(0, 5000)], settings(), seed=7, own_cpu_s=0.5)
    assert summary["processes"] == 2
    assert summary["messages_sent"] == 9000 and summary["messages_acked"] == 9004
    assert summary["max_seq_by_device"] == {
        "d-0-0": 2500, "d-0-1": 2500, "d-1-0": 2000, "d-1-1": 2000,
    }  # fmt: skip
    assert summary["bad_messages_by_reason"] == {"invalid_json": 2, "no_metrics": 0}
    assert summary["messages_by_kind"] == {"environment": {"single": 9000}}
    assert summary["duration_s"] == 10.0 and summary["achieved_rate"] == 900.0
    assert summary["cpu_seconds"] == 4.5
    assert summary["kept_up"] is True
    assert [p["share"] for p in summary["per_process"]] == [[0, 2], [1, 2]]


def test_one_share_that_fell_behind_makes_the_fleet_fall_behind_and_the_text_says_so() -> None:
    summary = merge_summaries(
        [part(0, 5000), part(1, 3000, skipped=1500, shortfall=2000)], settings(), seed=7
    )
    assert summary["kept_up"] is False
    assert summary["schedule_skipped"] == 1500 and summary["shortfall_messages"] == 2000
    text = format_summary(summary)
    assert "could not keep up" in text and "asked 1000 msg/s" in text
    assert "2000 of 10000 messages short" in text


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def snap(single: int, acked: int, connected: bool = True) -> dict[str, Any]:
    return {
        "messages_by_kind": {"vehicle": {"single": single}},
        "metadata_sent": 3, "readings_sent": single, "expected_good_points": single,
        "bad_messages_by_reason": {"invalid_json": 0}, "acked": acked,
        "connected": connected, "saturated": False,
    }  # fmt: skip


def test_the_metrics_add_up_the_shares_running_counts() -> None:
    key = ("telemetry_simulator_messages_sent_total", {"device_kind": "vehicle",
                                                       "shape": "single"})
    before, acked_before = sample(*key), sample("telemetry_simulator_messages_acked_total")
    exporter = MetricsExporter(shares=2)
    exporter.apply(0, snap(10, 5))
    assert not exporter.connected()  # share 1 has not reported yet
    exporter.apply(1, snap(7, 7))
    exporter.apply(0, snap(25, 20))  # later counts of share 0 replace its earlier ones
    assert sample(*key) - before == 32
    assert sample("telemetry_simulator_messages_acked_total") - acked_before == 27
    assert exporter.connected()
    exporter.apply(1, snap(7, 7, connected=False))
    assert not exporter.connected()


def test_processes_follow_the_rate_up_to_one_per_cpu() -> None:
    uniform: dict[str, Any] = {"simulate_batch_share": 0.0, "simulate_ts_format": "epoch_ms"}
    assert processes_for(settings(**uniform), cpus=2) == 1
    fast = SimulatorSettings(simulate_rate=20_000.0, simulate_devices=50, **uniform)
    assert processes_for(fast, cpus=2) == 2
    assert processes_for(fast, cpus=8) == 3
    mixed = SimulatorSettings(simulate_rate=20_000.0, simulate_devices=50)
    assert processes_for(mixed, cpus=8) == 5  # the full generator is slower per message
    assert processes_for(SimulatorSettings(simulate_processes=4, simulate_devices=3)) == 3


def test_options_a_device_cannot_honour_are_refused_with_what_to_do() -> None:
    too_fast = SimulatorSettings(simulate_rate=20_000.0, simulate_devices=10)
    assert "add devices" in (check_settings(too_fast, None, None) or "")
    assert "--ts-format" in (check_settings(settings(simulate_ts_format="iso"), None, None) or "")
    assert "--batch-share" in (check_settings(settings(simulate_batch_share=2.0), None, None)
                               or "")
    assert check_settings(settings(), 5.0, None) is None
