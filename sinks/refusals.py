"""Finds the points a database refuses in a batch by writing halves of it.

Writes are idempotent (a point's identity is measurement, tags and time), so re-writing the
good points of a half that was partly written is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sinks.write_errors import RefusedWriteError

P = TypeVar("P")


def write_isolating_refused(
    points: Sequence[P], write: Callable[[Sequence[P]], None]
) -> list[tuple[P, str]]:
    """Writes every point the database accepts; returns the refused ones with its reason.

    A `RetryableWriteError` from `write` propagates: the caller retries the whole batch.
    """
    if not points:
        return []
    try:
        write(points)
        return []
    except RefusedWriteError as exc:
        if len(points) == 1:
            return [(points[0], exc.reason)]
    middle = len(points) // 2
    return write_isolating_refused(points[:middle], write) + write_isolating_refused(
        points[middle:], write
    )
