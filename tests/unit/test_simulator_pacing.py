"""The simulator's schedule: what is due when, a short stall caught up, a long one not owed."""

from __future__ import annotations

import pytest

from loadtest.pacing import Pacer, kept_up, split_evenly


def test_messages_fall_due_at_n_over_rate() -> None:
    pacer = Pacer(rate=100.0, start=10.0)
    assert pacer.due(10.0, 0) == 1  # message 0 is due at the start
    assert pacer.due(10.5, 1) == 50  # by 0.5 s, messages 0..50
    assert pacer.due(10.5, 51) == 0
    assert pacer.wait_s(10.5, 51) == pytest.approx(0.01)
    assert pacer.skipped == 0 and pacer.shortfall(10.5, 51) == 0


def test_a_short_stall_is_caught_up() -> None:
    pacer = Pacer(rate=100.0, start=0.0, max_behind_s=1.0)
    assert pacer.due(0.0, 0) == 1
    # nothing sent for 0.8 s: everything missed is still owed
    assert pacer.due(0.8, 1) == 80
    assert pacer.skipped == 0 and not pacer.saturated_within(0.8, 5.0)


def test_a_sender_that_cannot_keep_up_owes_at_most_max_behind_and_says_so() -> None:
    pacer = Pacer(rate=1000.0, start=0.0, max_behind_s=1.0)
    sent = 0
    for step in range(1, 11):  # 10 s in which it manages only 200 msg/s
        now = float(step)
        assert pacer.due(now, sent) == 1000  # never a burst of the whole debt
        sent += 200
    # by t=10, messages 0..10000 were due; 1800 were sent before, 1000 are still owed
    assert pacer.skipped == 10_001 - 1800 - 1000
    assert pacer.saturated_events == 10
    assert pacer.saturated_within(10.0, 1.0) and not pacer.saturated_within(12.0, 1.0)
    assert pacer.shortfall(10.0, sent) == 10_000 - sent
    assert not kept_up(asked=10_000, shortfall=10_000 - sent, skipped=pacer.skipped)


def test_after_saturation_the_schedule_continues_from_where_it_stands() -> None:
    pacer = Pacer(rate=100.0, start=0.0, max_behind_s=0.5)
    pacer.due(10.0, 0)  # 10 s owed; 50 kept, the rest dropped
    assert pacer.skipped == 1001 - 50
    # it sends the 50 and is on time again: the next one is due in 1/rate
    assert pacer.due(10.0, 50) == 0
    assert pacer.wait_s(10.0, 50) == pytest.approx(0.01)


def test_kept_up_allows_a_little_slack_but_not_a_dropped_schedule() -> None:
    assert kept_up(asked=10_000, shortfall=150, skipped=0)
    assert not kept_up(asked=10_000, shortfall=250, skipped=0)
    assert not kept_up(asked=10_000, shortfall=0, skipped=1)
    assert kept_up(asked=3, shortfall=1, skipped=0)  # one message of rounding is not a failure


def test_counts_split_into_shares_that_add_up() -> None:
    for total in (0, 1, 7, 700, 1001):
        for parts in (1, 2, 3, 8):
            shares = [split_evenly(total, parts, k) for k in range(parts)]
            assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(rate=0.0, start=0.0)
