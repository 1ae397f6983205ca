"""`telemetry dlq replay`: selected dead letters back to where their originals entered.

Reads the range once, in order; each selected letter is skipped when the replay log has it
(unless `again`), or when it cannot go anywhere (`destinations.py` says why). The rest are sent
in chunks at the asked rate; once the brokers confirmed a chunk, its letters are recorded in
the replay log. A crash between the two replays at most one chunk again, which idempotent
storage absorbs (a point's identity is its measurement, tags and time).

Letters with the same original to the same place (the processors write one per rejected
metric of a reading) are sent once and all recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlq.destinations import Destination, NotReplayable, destination_of
from dlq.filters import LetterFilter
from dlq.letters import StoredLetter
from dlq.progress import Progress
from plumbing.topics import HEADER_TRACE_ID

#: Kafka header on a replayed record: the dead letter it came from (`topic/partition/offset`).
HEADER_REPLAY_OF = "dlq_replay_of"


class Sender(Protocol):
    def send(self, dest: Destination, headers: list[tuple[str, bytes]]) -> int: ...
    def confirm(self, handles: list[int], timeout_s: float) -> list[bool]: ...
    def close(self) -> None: ...


class Log(Protocol):
    def replayed(self) -> set[str]: ...
    def record(self, entries: Iterable[tuple[str, str]]) -> None: ...


@dataclass
class ReplayReport:
    """What a replay did; printed as one JSON object."""

    dry_run: bool
    scanned: int = 0
    #: letters that matched the filters
    selected: int = 0
    #: letters sent (or, with --dry-run, that would be) and recorded as replayed
    replayed: int = 0
    #: records actually sent: letters sharing an original and destination are one record
    sent: int = 0
    already_replayed: int = 0
    failed: int = 0
    to: Counter[str] = field(default_factory=Counter)
    not_replayable: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "scanned": self.scanned,
            "selected": self.selected,
            "replayed": self.replayed,
            "sent": self.sent,
            "already_replayed": self.already_replayed,
            "failed": self.failed,
            "to": dict(self.to.most_common()),
            "not_replayable": dict(self.not_replayable.most_common()),
        }

    def note(self) -> str:
        done = "would replay" if self.dry_run else "replayed"
        return (f"{done} {self.replayed:,}  skipped {self.already_replayed:,}  "
                f"not replayable {sum(self.not_replayable.values()):,}  failed {self.failed:,}")


class RateLimit:
    """At most `rate` sends a second on average (0: no limit); a pause is not caught up."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self.next_at is None or self.next_at < now:
            self.next_at = now
        elif self.next_at > now:
            self.sleep(self.next_at - now)
        self.next_at += self.interval


@dataclass
class _Pending:
    dest: Destination
    handle: int
    letter_ids: list[str]


class Replayer:
    """One replay run over the letters it is given (in topic order)."""

    def __init__(
        self,
        log: Log,
        senders: dict[str, Callable[[], Sender]],
        letter_filter: LetterFilter,
        *,
        rate: float,
        chunk: int = 500,
        confirm_timeout_s: float = 60.0,
        limit: int | None = None,
        again: bool = False,
        dry_run: bool = False,
        metadata_retained: bool = False,
        on_planned: Callable[[StoredLetter, Destination], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.log = log
        self.sender_factories = senders
        self.filter = letter_filter
        self.rate = RateLimit(rate)
        self.chunk = chunk
        self.confirm_timeout_s = confirm_timeout_s
        self.limit = limit
        self.again = again
        self.dry_run = dry_run
        self.metadata_retained = metadata_retained
        self.on_planned = on_planned
        self.progress = progress
        self.report = ReplayReport(dry_run)
        self._senders: dict[str, Sender] = {}
        self._pending: list[_Pending] = []
        #: letters taken to replay (what --limit counts)
        self._taken = 0
        #: (transport, topic, key, digest of payload) -> the pending send carrying it
        self._same: dict[tuple[str, str, bytes | None, bytes], _Pending] = {}

    def run(self, letters: Iterable[StoredLetter]) -> ReplayReport:
        done = set() if self.again else self.log.replayed()
        report = self.report
        try:
            for letter in letters:
                report.scanned += 1
                if self.progress is not None:
                    self.progress.update(report.scanned, report.note())
                if not self.filter.matches(letter):
                    continue
                report.selected += 1
                if letter.id in done:
                    report.already_replayed += 1
                    continue
                self._take(letter)
                if self.limit is not None and self._taken >= self.limit:
                    break
            self._flush()
        except BaseException:
            # Ctrl-C, or a broker out of reach: what was sent is confirmed and recorded
            # before stopping (as far as the brokers still answer), so the next replay does
            # not send it again.
            with contextlib.suppress(Exception):
                self._flush()
            raise
        finally:
            for sender in self._senders.values():
                sender.close()
        if self.progress is not None:
            self.progress.close(report.scanned, report.note())
        return report

    def _take(self, letter: StoredLetter) -> None:
        dest = destination_of(letter, self.metadata_retained)
        if isinstance(dest, NotReplayable):
            self.report.not_replayable[dest.why] += 1
            return
        self._taken += 1
        if self.dry_run:
            self.report.replayed += 1
            self.report.to[dest.label] += 1
            if self.on_planned is not None:
                self.on_planned(letter, dest)
            return
        same = (dest.transport, dest.topic, dest.key, hashlib.sha1(dest.payload).digest())
        pending = self._same.get(same)
        if pending is not None:
            pending.letter_ids.append(letter.id)
            return
        self.rate.wait()
        sender = self._sender(dest.transport)
        headers = [(HEADER_REPLAY_OF, letter.id.encode())]
        trace_id = letter.record.get("trace_id") if letter.record else None
        if trace_id:
            headers.append((HEADER_TRACE_ID, trace_id.encode()))
        pending = _Pending(dest, sender.send(dest, headers), [letter.id])
        self._same[same] = pending
        self._pending.append(pending)
        if len(self._pending) >= self.chunk:
            self._flush()

    def _sender(self, transport: str) -> Sender:
        sender = self._senders.get(transport)
        if sender is None:
            sender = self._senders[transport] = self.sender_factories[transport]()
        return sender

    def _flush(self) -> None:
        """Waits for the brokers to confirm what was sent, then records it as replayed."""
        if not self._pending:
            return
        confirmed: list[_Pending] = []
        for transport, sender in self._senders.items():
            mine = [p for p in self._pending if p.dest.transport == transport]
            if not mine:
                continue
            oks = sender.confirm([p.handle for p in mine], self.confirm_timeout_s)
            for pending, ok in zip(mine, oks, strict=True):
                if ok:
                    confirmed.append(pending)
                else:
                    self.report.failed += len(pending.letter_ids)
        self.log.record(
            (letter_id, p.dest.label if p.dest.transport == "kafka"
             else f"mqtt:{p.dest.topic}")
            for p in confirmed for letter_id in p.letter_ids
        )
        for p in confirmed:
            self.report.sent += 1
            self.report.replayed += len(p.letter_ids)
            self.report.to[p.dest.label] += len(p.letter_ids)
        self._pending.clear()
        self._same.clear()


def planned_line(letter: StoredLetter, dest: Destination) -> str:
    """What --dry-run prints for each letter it would replay."""
    record = letter.record or {}
    return json.dumps({
        "dlq": letter.id, "reason": record.get("reason"), "stage": record.get("stage"),
        "device_id": record.get("device_id"), "to": dest.transport, "topic": dest.topic,
    }, ensure_ascii=False)
