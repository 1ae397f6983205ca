"""Exponential backoff with jitter ("equal jitter"), for reconnects and retried writes."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `maximum`, each drawn uniformly between half
    the cap and the cap.

    The jitter keeps a fleet of pods that lost the same broker from reconnecting in lockstep;
    the lower half-cap bound keeps a long outage from being retried in a tight loop.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        cap = min(self.maximum, self.initial * (2**self.attempt))
        if cap < self.maximum:  # stop counting at the cap: 2**1024 would overflow a float
            self.attempt += 1
        return random.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0
