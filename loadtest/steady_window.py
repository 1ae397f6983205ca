"""Which part of a backlog replay measures the component, not its start-up and its tail.

A component started on a backlog spends its first seconds importing, connecting and joining
its consumer group, and its last moments waiting for a final batch or commit. Readings per
second and CPU per reading are therefore taken between the samples where 10% and 90% of the
backlog were done, provided progress moved at least twice in between (a sink commits per
batch, Faust every few seconds). Otherwise (a backlog too small for the component's steps)
the window is the whole run from the component's start, and the report says so: the figures
then include the start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STEADY = "10%-90% of the backlog"
WHOLE = (
    "from the component's start to the end of the backlog (too few progress steps for a "
    "steady window: use a larger --count)"
)
#: progress must move at least this often inside a steady window
MIN_STEPS = 2


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    how: str

    @property
    def steady(self) -> bool:
        return self.how == STEADY


def steady_window(done: Sequence[float], total: float) -> Window | None:
    """Indexes of two samples of `done` (readings done so far, one per sample time) that
    frame the measurement; None with fewer than two samples."""
    if len(done) < 2:
        return None
    first = next((i for i, d in enumerate(done) if d >= 0.1 * total and d > 0), None)
    last = next((i for i, d in enumerate(done) if d >= 0.9 * total), None)
    if first is not None and last is not None and last > first:
        steps = sum(1 for i in range(first + 1, last + 1) if done[i] > done[i - 1])
        if steps >= MIN_STEPS:
            return Window(first, last, STEADY)
    top = max(done)
    end = next(i for i, d in enumerate(done) if d >= top)
    return Window(0, max(end, 1), WHOLE)
