"""--find-max decisions: whether a step held, and which rate comes next."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.find_max import Criteria, Ramp, find_max, judge_step, lag_slope

FLAT = [(float(t), 100.0) for t in range(0, 30, 2)]


def test_a_clean_step_holds() -> None:
    held, why, lag = judge_step(5000, 5000, 30, 4990.0, 0, 850.0, FLAT)
    assert held and why == []
    assert lag["slope_per_s"] == 0.0 and lag["at_end"] == 100.0


@pytest.mark.parametrize(
    ("sent", "lost", "p99", "words"),
    [
        (4990.0, 3, 850.0, "3 readings lost"),
        (4990.0, 0, 2400.0, "p99 latency 2400 ms > 2000 ms"),
        (4100.0, 0, 850.0, "its own limit"),
        (4990.0, None, 850.0, "could not be counted"),
        (4990.0, 0, None, "no latency samples"),
    ],
)
def test_a_step_fails_for_each_reason_and_says_which(
    sent: float, lost: int | None, p99: float | None, words: str
) -> None:
    held, why, _ = judge_step(5000, 5000, 30, sent, lost, p99, FLAT)
    assert not held
    assert any(words in w for w in why), why


def test_a_growing_lag_fails_the_step_even_with_nothing_lost_yet() -> None:
    growing = [(float(t), 400.0 * t) for t in range(0, 30, 2)]  # +400 records/s
    held, why, lag = judge_step(1000, 1000, 30, 1000.0, 0, 1500.0, growing)
    assert not held and "consumer lag grew" in why[0]
    assert lag["slope_per_s"] == pytest.approx(400.0)
    # the same growth is noise at a higher rate (less than 3 s of load over the step)
    assert judge_step(10_000, 10_000, 30, 10_000.0, 0, 1500.0, growing)[0]


def test_the_lag_slope_is_least_squares_and_needs_three_samples() -> None:
    assert lag_slope([(0.0, 0.0), (1.0, 10.0)]) is None
    assert lag_slope([(0.0, 0.0), (1.0, 10.0), (2.0, 20.0)]) == pytest.approx(10.0)
    sawtooth = [(float(t), 500.0 if t % 3 == 0 else 0.0) for t in range(30)]
    assert abs(lag_slope(sawtooth) or 0.0) < 5  # Faust's periodic commits are not growth


def test_the_ramp_climbs_then_bisects_between_held_and_failed() -> None:
    ramp = Ramp(rates=(1000, 2000, 3000, 5000), bisect_steps=2)
    tried = []
    outcome: dict[float, bool] = {1000: True, 2000: True, 3000: False}
    while (rate := ramp.next_rate()) is not None:
        tried.append(rate)
        ramp.record(rate, outcome.get(rate, rate < 2600))
    assert tried == [1000, 2000, 3000, 2500, 2750]
    assert ramp.max_held() == 2500
    assert "bisections" in (ramp.stopped_because or "")


def test_the_ramp_stops_when_every_rate_held_or_the_simulator_is_the_limit() -> None:
    ramp = Ramp(rates=(1000, 2000))
    for rate in (1000, 2000):
        assert ramp.next_rate() == rate
        ramp.record(rate, True)
    assert ramp.next_rate() is None and ramp.max_held() == 2000
    assert ramp.stopped_because == "every rate of the ramp held"

    ramp = Ramp(rates=(1000, 2000, 3000))
    ramp.record(1000, True)
    ramp.record(2000, False, simulator_was_the_limit=True)
    assert ramp.next_rate() is None and ramp.max_held() == 1000
    assert "simulator" in (ramp.stopped_because or "")


def test_a_first_step_that_fails_bisects_down_and_a_fluke_above_a_failure_does_not_count(
) -> None:
    ramp = Ramp(rates=(1000, 2000), bisect_steps=1)
    assert ramp.next_rate() == 1000
    ramp.record(1000, False)
    assert ramp.next_rate() == 500
    ramp.record(500, True)
    assert ramp.next_rate() is None and ramp.max_held() == 500
    odd = Ramp(history=[(1000, True), (2000, False), (3000, True)])
    assert odd.max_held() == 1000


class FakeRunner:
    """A system that holds up to `limit` msg/s."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.settled: list[float] = []

    def run_step(self, index: int, rate: float, duration_s: float) -> dict[str, Any]:
        ok = rate <= self.limit
        return {
            "sent_rate": rate, "lost": 0 if ok else 120, "p99_ms": 400.0 if ok else 9000.0,
            "lag_samples": FLAT, "readings_per_s": rate, "cpu_us_per_reading": {"rows": {}},
        }  # fmt: skip

    def settle(self, timeout_s: float) -> bool:
        self.settled.append(timeout_s)
        return True


def test_find_max_reports_every_step_and_the_highest_held() -> None:
    runner = FakeRunner(limit=6000)
    result = find_max(runner, Ramp(rates=(1000, 3000, 5000, 7500), bisect_steps=2), 30.0,
                      Criteria(), settle_timeout_s=60)
    assert [s["rate_asked"] for s in result["steps"]] == [1000, 3000, 5000, 7500, 6250, 5600]
    assert result["max_rate_held"] == 5600
    failed = [s for s in result["steps"] if not s["held"]]
    assert {s["rate_asked"] for s in failed} == {7500, 6250}
    assert all("lost" in " ".join(s["failed_because"]) for s in failed)
    assert "lag_samples" not in result["steps"][0]  # raw samples stay out of the report
    assert result["criteria"]["max_p99_ms"] == 2000.0 and len(runner.settled) == 6
