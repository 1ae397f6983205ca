"""Per-device audit of stored seqs: which readings were lost, which were stored twice.

The simulator numbers the readings of each device that should be stored 1..max; after a drained
run every one of them must be in the database exactly once. Kept apart from InfluxDB so the
counting can be checked on plain numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: how many devices and seqs a report lists by name (the totals count them all)
LISTED = 20


@dataclass
class SeqAudit:
    expected: int = 0
    stored_points: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    """Stored seqs above the device's max (or of a device the simulator did not report)."""
    lost_by_device: dict[str, list[int]] = field(default_factory=dict)
    duplicated_by_device: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "stored_points": self.stored_points,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "lost_by_device": {
                d: _ranges(s) for d, s in sorted(self.lost_by_device.items())[:LISTED]
            },
            "duplicated_by_device": {
                d: s[:LISTED] for d, s in sorted(self.duplicated_by_device.items())[:LISTED]
            },
        }


def audit_seqs(
    max_seq_by_device: Mapping[str, int], stored: Mapping[str, Sequence[int]]
) -> SeqAudit:
    """Lost = seqs 1..max of a device not stored; duplicated = stored points of a device beyond
    its distinct seqs (a seq stored twice counts once here, three times twice)."""
    audit = SeqAudit()
    for device in sorted(set(max_seq_by_device) | set(stored)):
        top = int(max_seq_by_device.get(device, 0))
        seqs = stored.get(device, ())
        counts = Counter(seqs)
        audit.expected += top
        audit.stored_points += len(seqs)
        missing = [s for s in range(1, top + 1) if s not in counts]
        if missing:
            audit.lost += len(missing)
            audit.lost_by_device[device] = missing
        twice = sorted(s for s, n in counts.items() if n > 1)
        extra = sum(n - 1 for n in counts.values())
        if extra:
            audit.duplicated += extra
            audit.duplicated_by_device[device] = twice
        audit.unexpected += sum(1 for s in counts if not 1 <= s <= top)
    return audit


def _ranges(seqs: Sequence[int]) -> list[str]:
    """[3, 4, 5, 9] -> ["3-5", "9"]: a lost stretch reads as one entry."""
    out: list[str] = []
    start = prev = None
    for s in sorted(seqs):
        if prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if start != prev else f"{start}")
        start = prev = s
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else f"{start}")
    return out[:LISTED]
