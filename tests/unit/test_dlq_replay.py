"""telemetry dlq replay with fake senders and a fake replay log: what is sent, recorded,
skipped, and at what rate."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import pytest

from dlq.destinations import Destination
from dlq.filters import LetterFilter
from dlq.progress import Progress
from dlq.replay import HEADER_REPLAY_OF, RateLimit, Replayer
from plumbing.reasons import Reason
from tests.unit.test_dlq_selection import letter


class FakeSender:
    def __init__(self, fail: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self.sent: list[tuple[Destination, list[tuple[str, bytes]]]] = []
        self.fail = fail
        self.closed = False

    def send(self, dest: Destination, headers: list[tuple[str, bytes]]) -> int:
        self.sent.append((dest, headers))
        return len(self.sent) - 1

    def confirm(self, handles: list[int], timeout_s: float) -> list[bool]:
        return [self.sent[h][0].payload not in self.fail for h in handles]

    def close(self) -> None:
        self.closed = True


class FakeLog:
    def __init__(self, done: Iterable[str] = ()) -> None:
        self.done = set(done)
        self.recorded: list[tuple[str, str]] = []

    def replayed(self) -> set[str]:
        return set(self.done)

    def record(self, entries: Iterable[tuple[str, str]]) -> None:
        for entry in entries:
            self.recorded.append(entry)
            self.done.add(entry[0])


def replayer(log: FakeLog, kafka: FakeSender, mqtt: FakeSender, **options: Any) -> Replayer:
    options.setdefault("rate", 0)
    return Replayer(log, {"kafka": lambda: kafka, "mqtt": lambda: mqtt},
                    options.pop("letter_filter", LetterFilter()), **options)


def letters() -> list[Any]:
    return [
        letter(1, original=b"\xc3\x01one", trace_id="t1"),
        # the same reading's second dead letter (one per rejected metric): sent once
        letter(2, original=b"\xc3\x01one", reason=Reason.WRONG_DIMENSION),
        letter(3, original=b"\xc3\x01two", device_id="pump-2"),
        letter(4, stage="ingest", original=b'{"metrics": {}}', original_format="json",
               source_topic="devices/pump-1/telemetry", reason=Reason.TOO_MANY_METRICS),
        letter(5, stage="sink-influxdb", original=b"telemetry x=1 1",
               original_format="line-protocol", reason=Reason.DATABASE_REJECTED),
    ]


def test_replay_sends_each_original_once_to_its_place_and_records_every_letter() -> None:
    log, kafka, mqtt = FakeLog(), FakeSender(), FakeSender()
    report = replayer(log, kafka, mqtt).run(letters())
    assert [(d.topic, d.key, d.payload) for d, _ in kafka.sent] == [
        ("telemetry.raw", b"pump-1", b"\xc3\x01one"), ("telemetry.raw", b"pump-2", b"\xc3\x01two")]
    assert kafka.sent[0][1] == [(HEADER_REPLAY_OF, b"telemetry.dlq/3/1"), ("trace_id", b"t1")]
    assert [(d.topic, d.payload) for d, _ in mqtt.sent] == [
        ("devices/pump-1/telemetry", b'{"metrics": {}}')]
    assert sorted(i for i, _ in log.recorded) == [f"telemetry.dlq/3/{o}" for o in (1, 2, 3, 4)]
    assert dict(log.recorded)["telemetry.dlq/3/4"] == "mqtt:devices/pump-1/telemetry"
    assert report.as_dict() | {"not_replayable": None} == {
        "dry_run": False, "scanned": 5, "selected": 5, "replayed": 4, "sent": 3,
        "already_replayed": 0, "failed": 0, "not_replayable": None,
        "to": {"kafka:telemetry.raw": 3, "mqtt:devices/+/telemetry": 1}}
    assert list(report.not_replayable) == [
        "a point the database refused (line protocol): fix the database side and write it there"]
    assert kafka.closed and mqtt.closed


def test_a_second_replay_sends_nothing_unless_again() -> None:
    log = FakeLog()
    replayer(log, FakeSender(), FakeSender()).run(letters())
    kafka, mqtt = FakeSender(), FakeSender()
    report = replayer(log, kafka, mqtt).run(letters())
    assert (report.replayed, report.already_replayed, kafka.sent, mqtt.sent) == (0, 4, [], [])
    again = replayer(log, kafka, mqtt, again=True).run(letters())
    assert again.replayed == 4 and len(kafka.sent) == 2


def test_unconfirmed_records_are_not_recorded_and_are_replayed_next_time() -> None:
    log = FakeLog()
    report = replayer(log, FakeSender(fail={b"\xc3\x01one"}), FakeSender()).run(letters())
    assert report.failed == 2 and report.replayed == 2
    assert "telemetry.dlq/3/1" not in log.done and "telemetry.dlq/3/3" in log.done
    kafka = FakeSender()
    assert replayer(log, kafka, FakeSender()).run(letters()).replayed == 2
    assert [d.payload for d, _ in kafka.sent] == [b"\xc3\x01one"]


def test_dry_run_sends_and_records_nothing() -> None:
    log, kafka, mqtt = FakeLog(), FakeSender(), FakeSender()
    planned: list[str] = []
    report = replayer(log, kafka, mqtt, dry_run=True,
                      on_planned=lambda letter, dest: planned.append(letter.id)).run(letters())
    assert (kafka.sent, mqtt.sent, log.recorded) == ([], [], [])
    assert report.replayed == 4 and len(planned) == 4


def test_filters_and_limit_choose_what_is_replayed() -> None:
    log, kafka = FakeLog(), FakeSender()
    report = replayer(log, kafka, FakeSender(),
                      letter_filter=LetterFilter(reasons=frozenset({"unknown_unit"}))
                      ).run(letters())
    assert report.selected == 2 and report.replayed == 2  # 1 and 3 (2 is wrong_dimension)
    log, kafka = FakeLog(), FakeSender()
    assert replayer(log, kafka, FakeSender(), limit=1).run(letters()).replayed == 1
    # the limit counts letters to replay: what an earlier replay sent does not use it up
    log = FakeLog({"telemetry.dlq/3/1"})
    report = replayer(log, FakeSender(), FakeSender(), limit=1).run(letters())
    assert (report.already_replayed, report.replayed) == (1, 1)


def test_chunks_are_confirmed_and_recorded_as_they_go() -> None:
    log = FakeLog()
    recorded_at: list[int] = []

    class Counting(FakeSender):
        def confirm(self, handles: list[int], timeout_s: float) -> list[bool]:
            recorded_at.append(len(self.sent))
            return super().confirm(handles, timeout_s)

    many = [letter(i, original=b"\xc3\x01" + bytes([i])) for i in range(5)]
    replayer(log, Counting(), FakeSender(), chunk=2).run(many)
    assert recorded_at == [2, 4, 5]
    assert len(log.recorded) == 5


def test_rate_limit_spaces_sends_and_does_not_catch_up_after_a_pause() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    limit = RateLimit(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limit.wait()
    assert slept == [0.25, 0.25]
    now[0] += 10  # a long confirm wait
    limit.wait()
    limit.wait()
    assert slept == [0.25, 0.25, 0.25]
    free = RateLimit(0, clock=lambda: now[0], sleep=sleep)
    free.wait()
    free.wait()
    assert len(slept) == 3


def test_progress_goes_to_its_stream_as_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(5, "replay", stream=out)
    replayer(FakeLog(), FakeSender(), FakeSender(), progress=progress).run(letters())
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("replay [")
    assert lines[-1].startswith("replay [" + "#" * 30 + "] 100%  5/5  replayed 4  skipped 0")


def test_ctrl_c_records_what_was_already_sent() -> None:
    log, kafka = FakeLog(), FakeSender()

    def interrupted() -> Any:
        yield letter(1, original=b"\xc3\x01one")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replayer(log, kafka, FakeSender()).run(interrupted())
    assert [i for i, _ in log.recorded] == ["telemetry.dlq/3/1"]
    assert kafka.closed


def test_a_broker_out_of_reach_stops_the_replay_after_recording_what_was_sent() -> None:
    log, kafka = FakeLog(), FakeSender()

    def unreachable() -> FakeSender:
        raise ConnectionRefusedError("MQTT broker 127.0.0.1:1883 refused the connection")

    many = [letter(1, original=b"\xc3\x01one"),
            letter(2, stage="ingest", original=b"{}", original_format="json",
                   source_topic="devices/pump-1/telemetry")]
    with pytest.raises(ConnectionRefusedError):
        Replayer(log, {"kafka": lambda: kafka, "mqtt": unreachable}, LetterFilter(),
                 rate=0).run(many)
    assert [i for i, _ in log.recorded] == ["telemetry.dlq/3/1"]
