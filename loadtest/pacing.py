"""Pacing of the simulator: how many messages are due, for a total rate, on a clock.

Message n is due at start + n/rate, so a short stall is caught up rather than lost. A sender
that cannot keep up at all must not build an ever-growing debt (it would burst for minutes once
it could, and the figures would say nothing): at most `max_behind_s` seconds of messages are
kept owed; anything beyond is dropped from the schedule, counted as `skipped`, and the sender
is *saturated*. It then keeps sending as fast as it can, and the summary says by how much it
fell short.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Pacer:
    """The schedule of one sender; pure arithmetic on the times it is given."""

    rate: float
    start: float
    #: seconds of messages that may be owed before the schedule drops the excess
    max_behind_s: float = 1.0
    #: messages dropped from the schedule because the sender could not keep up
    skipped: int = 0
    #: times the schedule had to drop messages
    saturated_events: int = 0
    _last_saturated_at: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("rate must be positive")

    @property
    def max_owed(self) -> int:
        return max(1, int(self.max_behind_s * self.rate))

    def due(self, now: float, sent: int) -> int:
        """How many messages to send now, given `sent` so far (never more than `max_owed`)."""
        target = int((now - self.start) * self.rate) + 1 - self.skipped
        owed = target - sent
        if owed > self.max_owed:
            self.skipped += owed - self.max_owed
            self.saturated_events += 1
            self._last_saturated_at = now
            owed = self.max_owed
        return max(0, owed)

    def wait_s(self, now: float, sent: int) -> float:
        """Seconds until the next message is due (0 when one is due already)."""
        next_at = self.start + (sent + self.skipped) / self.rate
        return max(0.0, next_at - now)

    def saturated_within(self, now: float, seconds: float) -> bool:
        """Whether the schedule dropped messages in the last `seconds`."""
        return self._last_saturated_at is not None and now - self._last_saturated_at <= seconds

    def shortfall(self, now: float, sent: int) -> int:
        """Messages the asked rate called for by `now` that were not sent (dropped + owed)."""
        return max(0, int((now - self.start) * self.rate) - sent)


def split_evenly(total: int, parts: int, index: int) -> int:
    """Share `index` of `total` split into `parts` shares that differ by at most one."""
    return total // parts + (1 if index < total % parts else 0)


def kept_up(asked: int, shortfall: int, skipped: int, tolerance: float = 0.02) -> bool:
    """Whether a sender held its schedule: nothing dropped from it, and at the end at most
    `tolerance` of the `asked` messages (and at least one message) still owed."""
    return skipped == 0 and shortfall <= max(1, int(asked * tolerance))
