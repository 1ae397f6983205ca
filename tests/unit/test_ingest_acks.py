"""PUBACKs go out only when a message is complete, and in the order messages arrived."""

from __future__ import annotations

from ingest.acks import InOrderAcks


def test_acks_wait_for_every_part_and_keep_arrival_order() -> None:
    sent: list[tuple[int, int]] = []
    acks = InOrderAcks(lambda mid, qos: sent.append((mid, qos)))
    first = acks.track(10, 1, parts=2)
    second = acks.track(11, 1, parts=1)
    third = acks.track(12, 1, parts=1)

    acks.part_done(third)
    acks.part_done(second)
    assert sent == []  # the first message is not complete: nothing may overtake it
    acks.part_done(first)
    assert sent == []
    acks.part_done(first)
    assert sent == [(10, 1), (11, 1), (12, 1)]
    assert len(acks) == 0


def test_a_stuck_message_holds_back_later_ones_only() -> None:
    sent: list[int] = []
    acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    done = acks.track(1, 1, parts=1)
    stuck = acks.track(2, 1, parts=1)
    later = acks.track(3, 1, parts=1)
    acks.part_done(done)
    acks.part_done(later)
    assert sent == [1]
    assert len(acks) == 2
    acks.part_done(stuck)
    assert sent == [1, 2, 3]


def test_a_message_without_records_is_acknowledged_at_once_when_first_in_line() -> None:
    sent: list[int] = []
    acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    acks.track(5, 1, parts=0)
    assert sent == [5]
