"""Which dead letters a `telemetry dlq` command is about: reason, stage, device, time."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from dlq.letters import StoredLetter


@dataclass(frozen=True)
class LetterFilter:
    """Empty fields select everything. Each given field must match (and); values within one
    field are alternatives (or)."""

    #: A letter matches on its own reason or on the reason of any metric it lists.
    reasons: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    #: Shell-style patterns (`sensor-*`) matched against the whole device id.
    devices: tuple[str, ...] = ()
    #: `rejected_at_ms` bounds, inclusive.
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: StoredLetter) -> bool:
        at = letter.rejected_at_ms
        if self.since_ms is not None and at < self.since_ms:
            return False
        if self.until_ms is not None and at > self.until_ms:
            return False
        record = letter.record
        if record is None:  # unreadable: only a filter on time alone selects it
            return not (self.reasons or self.stages or self.devices)
        if self.reasons and record["reason"] not in self.reasons and not any(
            m["reason"] in self.reasons for m in record.get("rejected_metrics") or ()
        ):
            return False
        if self.stages and record["stage"] not in self.stages:
            return False
        if self.devices:
            device = record.get("device_id")
            if device is None or not any(fnmatchcase(device, p) for p in self.devices):
                return False
        return True
