"""SeqWatcher: where each poll of InfluxDB starts, and what it counts (a fake probe)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from loadtest.benchmark import SeqWatcher

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


class FakeProbe:
    """Answers each poll with the next of `answers`, remembering where each poll started."""

    def __init__(self, answers: list[dict[str, tuple[datetime, int]]]) -> None:
        self.answers = answers
        self.starts: list[datetime] = []

    def latest_seq_by_device(self, prefix: str, start: datetime) -> dict[str, Any]:
        self.starts.append(start)
        return self.answers[min(len(self.starts), len(self.answers)) - 1]


def _watch(probe: FakeProbe, polls: int) -> SeqWatcher:
    watcher = SeqWatcher(probe, "bench", T0)  # type: ignore[arg-type]
    watcher.start()
    deadline = time.monotonic() + 10
    while len(probe.starts) < polls and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.stop()
    return watcher


def test_polls_start_at_the_oldest_newest_point_not_at_the_run_start() -> None:
    a1, b1, a2 = T0 + timedelta(seconds=5), T0 + timedelta(seconds=3), T0 + timedelta(seconds=9)
    probe = FakeProbe([
        {},
        {"a": (a1, 10), "b": (b1, 4)},
        {"a": (a2, 20), "b": (b1, 4)},
    ])
    watcher = _watch(probe, 4)
    assert probe.starts[:3] == [T0, T0, b1]  # nothing seen yet: the run start
    assert probe.starts[3] == b1  # b has not moved on, so its newest point bounds the window
    assert watcher.latest == {"a": 20, "b": 4}
    assert watcher.stored_with_seq() == 24
    assert watcher.caught_up({"a": 20, "b": 4}) and not watcher.caught_up({"a": 21})


def test_an_older_or_equal_seq_neither_counts_nor_moves_the_window_back() -> None:
    late = T0 - timedelta(minutes=5)  # before the run start: the window never goes before it
    probe = FakeProbe([{"a": (late, 3)}, {"a": (late, 2)}])
    watcher = _watch(probe, 3)
    assert probe.starts[1:3] == [T0, T0]
    assert watcher.latest == {"a": 3}
    assert len(watcher.latencies_ms) == 1
