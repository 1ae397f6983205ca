"""`telemetry benchmark --find-max`: which rate a system holds, found by stepping the load up.

Pure decisions, no I/O: whether a step held (`judge_step`), and which rate to try next
(`Ramp`). The steps themselves are run by a `StepRunner`, so the same ramp can measure
another system on the same load (issue 7 compares Telegraf this way).

A step *held* when, over its whole duration: the simulator sent the asked rate, nothing was
lost (every seq 1..max of the step's devices stored), the consumer lag did not grow, and the
p99 latency from publish to queryable stayed within the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: offered rates, msg/s, before the first failure; then the ramp bisects
DEFAULT_RAMP: tuple[float, ...] = (
    1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 40000, 50000,
)


@dataclass(frozen=True)
class Criteria:
    """What a step must satisfy to count as held."""

    max_p99_ms: float = 2000.0
    max_lost: int = 0
    #: the lag may not grow by more than this many seconds of offered load over a step
    max_lag_growth_s: float = 3.0
    #: the simulator must have sent at least this share of the asked rate
    min_sent_share: float = 0.98

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_p99_ms": self.max_p99_ms,
            "max_lost": self.max_lost,
            "max_lag_growth_s": self.max_lag_growth_s,
            "min_sent_share": self.min_sent_share,
        }


def lag_slope(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, lag in records): records per second; None if < 3."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


def judge_step(
    rate_asked: float,
    readings_per_s: float,
    duration_s: float,
    sent_rate: float | None,
    lost: int | None,
    p99_ms: float | None,
    lag_samples: Sequence[tuple[float, float]],
    criteria: Criteria = Criteria(),
) -> tuple[bool, list[str], dict[str, Any]]:
    """(held, why not, lag figures) for one step. Unknown figures fail the step: a rate is
    only reported as held when it was shown to be."""
    why: list[str] = []
    if sent_rate is None or sent_rate < rate_asked * criteria.min_sent_share:
        why.append(
            f"the simulator sent {sent_rate if sent_rate is not None else 'n/a'} msg/s of "
            f"{rate_asked:g} asked (its own limit, not the pipeline's)"
        )
    if lost is None:
        why.append("the stored readings could not be counted")
    elif lost > criteria.max_lost:
        why.append(f"{lost} readings lost (not stored after the step)")
    if p99_ms is None:
        why.append("no latency samples")
    elif p99_ms > criteria.max_p99_ms:
        why.append(f"p99 latency {p99_ms:.0f} ms > {criteria.max_p99_ms:.0f} ms")
    slope = lag_slope(lag_samples)
    growth = None if slope is None else slope * duration_s
    limit = criteria.max_lag_growth_s * readings_per_s
    if growth is not None and growth > limit:
        why.append(
            f"consumer lag grew by about {growth:.0f} records over the step "
            f"(> {criteria.max_lag_growth_s:g} s of load)"
        )
    lag = {
        "slope_per_s": None if slope is None else round(slope, 1),
        "growth_over_step": None if growth is None else round(growth),
        "at_end": lag_samples[-1][1] if lag_samples else None,
    }
    return not why, why, lag


def simulator_limited(reasons: Sequence[str]) -> bool:
    return any("its own limit" in r for r in reasons)


@dataclass
class Ramp:
    """Which rate to try next, from the steps so far: the ramp's rates until one fails, then
    `bisect_steps` bisections between the highest held and the lowest failed rate."""

    rates: Sequence[float] = DEFAULT_RAMP
    bisect_steps: int = 2
    max_rate: float = math.inf
    #: stop bisecting when the interval is narrower than this share of the failed rate
    resolution: float = 0.05
    history: list[tuple[float, bool]] = field(default_factory=list)
    #: why the ramp stopped (None while it goes on)
    stopped_because: str | None = None

    def record(self, rate: float, held: bool, simulator_was_the_limit: bool = False) -> None:
        self.history.append((rate, held))
        if not held and simulator_was_the_limit:
            self.stopped_because = (
                f"the simulator could not send {rate:g} msg/s: higher rates cannot be offered"
            )

    def next_rate(self) -> float | None:
        if self.stopped_because:
            return None
        failed = [r for r, ok in self.history if not ok]
        if not failed:
            tried = max((r for r, _ in self.history), default=0.0)
            for rate in self.rates:
                if rate > tried and rate <= self.max_rate:
                    return float(rate)
            self.stopped_because = "every rate of the ramp held"
            return None
        high = min(failed)
        low = max((r for r, ok in self.history if ok and r < high), default=0.0)
        first_failure = next(i for i, (_, ok) in enumerate(self.history) if not ok)
        bisections = len(self.history) - first_failure - 1
        if bisections >= self.bisect_steps:
            self.stopped_because = f"{self.bisect_steps} bisections after the first failure"
            return None
        if high - low <= self.resolution * high:
            self.stopped_because = "the interval between held and failed is narrow enough"
            return None
        mid = (low + high) / 2
        step = 50.0 if high > 1000 else 10.0
        return float(max(step, round(mid / step) * step))

    def max_held(self) -> float | None:
        held = [r for r, ok in self.history if ok]
        failed = [r for r, ok in self.history if not ok]
        if not held:
            return None
        # a rate counts only if no lower rate failed (a fluke high hold after a failure is noise)
        floor = min(failed) if failed else math.inf
        below = [r for r in held if r < floor]
        return max(below) if below else None


class StepRunner(Protocol):
    """Runs one load step at `rate` for `duration_s` through a system; returns its figures
    (the keys `judge_step` needs: sent_rate, lost, p99_ms, lag_samples, readings_per_s)."""

    def run_step(self, index: int, rate: float, duration_s: float) -> dict[str, Any]: ...

    def settle(self, timeout_s: float) -> bool:
        """Waits until the system has no backlog left; False when it did not in time."""
        ...


def find_max(
    runner: StepRunner,
    ramp: Ramp,
    duration_s: float,
    criteria: Criteria = Criteria(),
    settle_timeout_s: float = 120.0,
    stop: Any = None,
) -> dict[str, Any]:
    """Steps the offered rate up through `runner` until the ramp stops; the report section."""
    steps: list[dict[str, Any]] = []
    index = 0
    while (rate := ramp.next_rate()) is not None:
        if stop is not None and stop.is_set():
            ramp.stopped_because = "interrupted"
            break
        figures = runner.run_step(index, rate, duration_s)
        held, why, lag = judge_step(
            rate, figures.get("readings_per_s", rate), duration_s, figures.get("sent_rate"),
            figures.get("lost"), figures.get("p99_ms"), figures.get("lag_samples", []),
            criteria,
        )  # fmt: skip
        figures = {k: v for k, v in figures.items() if k != "lag_samples"}
        steps.append({"index": index, "rate_asked": rate, "held": held, "failed_because": why,
                      "lag": lag, **figures})
        ramp.record(rate, held, simulator_limited(why))
        index += 1
        if not runner.settle(settle_timeout_s):
            ramp.stopped_because = (
                f"the backlog of step {index - 1} ({rate:g} msg/s) did not drain within "
                f"{settle_timeout_s:g} s"
            )
            break
    return {
        "max_rate_held": ramp.max_held(),
        "stopped_because": ramp.stopped_because,
        "criteria": criteria.as_dict(),
        "step_duration_s": duration_s,
        "steps": steps,
    }
