"""What a processing step is: a named function from one reading to readings and rejects.

A step is registered under the entry-point group `telemetry.steps`; the worker chains the
steps named in `TELEMETRY_PROCESS_STEPS`, in that order (processors/chain.py). The entry
point names a *factory*: it gets the worker's `StepContext` once at start and returns the
step, so set-up (a catalog, a rules file) happens once and the step itself only does the
per-reading work. Steps are plain functions, tested without Kafka.

Before `validate` a step sees a decoded `RawReading`; from `validate` on, an
`EnrichedReading` (schemas/*.avsc) as a dict. What the last step returns is what
`telemetry.enriched` gets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plumbing.reasons import Reason

if TYPE_CHECKING:
    from processors.settings import ProcessorSettings

#: The entry-point group steps are registered under.
ENTRY_POINT_GROUP = "telemetry.steps"


@dataclass(frozen=True)
class Reject:
    """One thing a step refused: the whole record (`metric` None), or one metric of it (or
    its `seq`) refused alone while the rest goes on: `metric` names it."""

    reason: Reason
    detail: str
    metric: str | None = None


@dataclass
class StepResult:
    """`records` go on to the next step (none: the reading stops here); `rejects` go in the
    reading's one dead letter, each with the step's name."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


#: A step: one reading in, readings and rejects out.
Step = Callable[[dict[str, Any]], StepResult]


@dataclass(frozen=True)
class StepContext:
    """What a step factory may use: the worker's settings and the device tags table."""

    settings: ProcessorSettings
    device_tags: Callable[[str], Mapping[str, str] | None]


#: What an entry point of `telemetry.steps` names.
StepFactory = Callable[[StepContext], Step]


def worth_forwarding(reading: dict[str, Any]) -> bool:
    """A reading with neither fields nor seq has nothing left to store.

    Its metrics were each dead-lettered with a reason, so nothing is dropped silently; and a
    point without fields is not valid line protocol for the sinks.
    """
    return bool(reading["fields"]) or reading.get("seq") is not None
