"""What a processing step returns: the record to forward, and what it rejected and why.

Steps are plain functions from one decoded record to a `StepResult`, so they are tested
without Kafka; the agent runner turns rejects into dead letters and forwards the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plumbing.reasons import Reason


@dataclass(frozen=True)
class Reject:
    """One thing a step refused: the whole record (`metric` None) or one metric of it."""

    reason: Reason
    detail: str
    metric: str | None = None


@dataclass
class StepResult:
    """`records` go to the step's output topic, each a dict of that topic's Avro record."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def worth_forwarding(reading: dict[str, Any]) -> bool:
    """A reading with neither fields nor seq has nothing left to store.

    Its metrics were each dead-lettered with a reason, so nothing is dropped silently; and a
    point without fields is not valid line protocol for the sinks.
    """
    return bool(reading["fields"]) or reading.get("seq") is not None
