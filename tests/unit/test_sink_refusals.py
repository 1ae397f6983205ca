"""Finding refused points by writing halves. The database here is a fake that behaves like
InfluxDB 2 on a partial write: it stores the points it accepts and refuses the request."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sinks.refusals import write_isolating_refused
from sinks.write_errors import RefusedWriteError, RetryableWriteError


class PartialWriteDatabase:
    def __init__(self, bad: set[str]) -> None:
        self.bad = bad
        self.stored: dict[str, int] = {}
        self.calls = 0

    def write(self, lines: Sequence[str]) -> None:
        self.calls += 1
        refused = [line for line in lines if line in self.bad]
        for line in lines:
            if line not in self.bad:
                self.stored[line] = self.stored.get(line, 0) + 1
        if refused:
            raise RefusedWriteError(f"field type conflict: {refused[0]} dropped={len(refused)}")


def test_clean_batch_is_one_write() -> None:
    db = PartialWriteDatabase(bad=set())
    lines = [f"p{i}" for i in range(5000)]
    assert write_isolating_refused(lines, db.write) == []
    assert db.calls == 1 and set(db.stored) == set(lines)


@pytest.mark.parametrize("bad_index", [0, 1, 2499, 4999])
def test_one_bad_point_is_found_and_everything_else_stored(bad_index: int) -> None:
    lines = [f"p{i}" for i in range(5000)]
    db = PartialWriteDatabase(bad={lines[bad_index]})
    refused = write_isolating_refused(lines, db.write)
    assert refused == [(lines[bad_index], f"field type conflict: {lines[bad_index]} dropped=1")]
    assert set(db.stored) == set(lines) - {lines[bad_index]}
    assert db.calls <= 2 * 13 + 1  # about two writes per halving


def test_many_bad_points_keep_batch_order_and_reasons() -> None:
    lines = [f"p{i}" for i in range(100)]
    bad = {lines[i] for i in (3, 4, 50, 97)}
    db = PartialWriteDatabase(bad=bad)
    refused = write_isolating_refused(lines, db.write)
    assert [line for line, _ in refused] == [lines[i] for i in (3, 4, 50, 97)]
    assert all(reason.startswith("field type conflict: " + line) for line, reason in refused)
    assert set(db.stored) == set(lines) - bad


def test_every_point_bad() -> None:
    lines = [f"p{i}" for i in range(7)]
    db = PartialWriteDatabase(bad=set(lines))
    assert [line for line, _ in write_isolating_refused(lines, db.write)] == lines
    assert db.stored == {}


def test_retryable_failure_in_the_middle_propagates() -> None:
    calls = []

    def write(lines: Sequence[str]) -> None:
        calls.append(list(lines))
        if len(calls) == 1:
            raise RefusedWriteError("bad line")
        raise RetryableWriteError("connection refused")

    with pytest.raises(RetryableWriteError):
        write_isolating_refused(["a", "b", "c"], write)


def test_empty_batch_writes_nothing() -> None:
    db = PartialWriteDatabase(bad=set())
    assert write_isolating_refused([], db.write) == [] and db.calls == 0
