"""Exponential backoff with full jitter, for reconnects and retried writes."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial` up to `maximum`, each drawn uniformly below the cap.

    Full jitter keeps a fleet of pods that lost the same broker from reconnecting in lockstep.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        cap = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0
