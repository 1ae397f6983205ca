"""How a destination tells the batching base what went wrong with a write."""

from __future__ import annotations

from collections.abc import Mapping


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


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The seconds an HTTP `Retry-After` header asks us to wait, if it is a number."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
