"""How a destination tells the batching base what went wrong with a write."""

from __future__ import annotations


class WriteError(Exception):
    """A write did not go through."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableWriteError(WriteError):
    """Nothing is wrong with the data (database down, overloaded, timed out, misconfigured):
    write the same batch again later."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class RefusedWriteError(WriteError):
    """The database refused (some of) the points for what they are; `reason` is its words."""
