"""Backoff: doubling to the cap, jittered between half the cap and the cap, for ever."""

from __future__ import annotations

from plumbing.backoff import Backoff


def test_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(0.5, 30.0)
    caps = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    for cap in caps:
        delay = backoff.next_delay()
        assert cap / 2 <= delay <= cap


def test_an_outage_of_any_length_keeps_giving_delays() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(5_000):  # 1,024 attempts overflowed 2**attempt as a float before
        delay = backoff.next_delay()
    assert 15.0 <= delay <= 30.0


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 0.5
