"""Counts of dead letters by reason, stage, device and hour: what `telemetry dlq summary`
prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dlq.letters import StoredLetter
from dlq.moments import hour_of, iso_ms

#: What an unreadable record counts as, in every column.
UNREADABLE = "(unreadable)"
NO_DEVICE = "(none)"


@dataclass
class Summary:
    """One count per dead letter in each table (a letter listing several metrics is one)."""

    total: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_stage: Counter[str] = field(default_factory=Counter)
    by_device: Counter[str] = field(default_factory=Counter)
    by_hour: Counter[str] = field(default_factory=Counter)
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, letter: StoredLetter) -> None:
        record = letter.record
        self.total += 1
        if record is None:
            reason = stage = device = UNREADABLE
        else:
            reason, stage = record["reason"], record["stage"]
            device = record.get("device_id") or NO_DEVICE
        self.by_reason[reason] += 1
        self.by_stage[stage] += 1
        self.by_device[device] += 1
        at = letter.rejected_at_ms
        self.by_hour[hour_of(at)] += 1
        self.first_ms = at if self.first_ms is None else min(self.first_ms, at)
        self.last_ms = at if self.last_ms is None else max(self.last_ms, at)

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        """JSON-ready; `top` keeps only the most frequent devices (the rest summed)."""
        devices = dict(self.by_device.most_common(top))
        others = self.total - sum(devices.values())
        if others:
            devices["(others)"] = others
        return {
            "total": self.total,
            "first": None if self.first_ms is None else iso_ms(self.first_ms),
            "last": None if self.last_ms is None else iso_ms(self.last_ms),
            "by_reason": dict(self.by_reason.most_common()),
            "by_stage": dict(self.by_stage.most_common()),
            "by_device": devices,
            "by_hour": dict(sorted(self.by_hour.items())),
        }

    def render(self, top: int = 20) -> str:
        """Readable tables: most frequent first, hours in order."""
        if not self.total:
            return "no dead letters\n"
        data = self.as_dict(top)
        lines = [f"{self.total} dead letters, {data['first']} .. {data['last']}"]
        for title in ("by_reason", "by_stage", "by_device", "by_hour"):
            counts: dict[str, int] = data[title]
            lines.append("")
            lines.append(title.replace("_", " "))
            width = max(map(len, counts))
            lines.extend(f"  {name:<{width}}  {n:>9,}" for name, n in counts.items())
        return "\n".join(lines) + "\n"
