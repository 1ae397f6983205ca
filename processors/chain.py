"""A reading's route through the processors: the configured steps, in order, in one process.

telemetry.raw --decode--> validate -> normalize -> enrich -> dew_point (or whatever
`TELEMETRY_PROCESS_STEPS` says) --encode--> telemetry.enriched. Every reject on the way is
kept with the step that made it; what a reading's steps refused becomes one dead letter
(processors/agents/readings.py does the Kafka part: one decode and one encode per reading,
one hop, at most one dead letter).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plumbing.reasons import Reason
from processors import plugins
from processors.settings import ProcessorSettings
from processors.steps import ENTRY_POINT_GROUP, Reject, Step, StepContext

log = logging.getLogger(__name__)

#: The step that turns a RawReading into an EnrichedReading; every chain has it.
VALIDATE = "validate"


@dataclass
class ChainResult:
    """What one raw reading became: EnrichedReading dicts and (step, reject) pairs."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[str, Reject]] = field(default_factory=list)


class Chain:
    """Named steps applied in order; a step's records are the next step's input."""

    def __init__(self, steps: list[tuple[str, Step]]) -> None:
        self.steps = steps
        self.names = [name for name, _ in steps]

    @classmethod
    def from_settings(
        cls,
        settings: ProcessorSettings,
        device_tags: Callable[[str], Mapping[str, str] | None],
    ) -> Chain:
        """The chain of `process_steps`; raises PluginError for a name that cannot be used
        (and whatever a step's factory raises, such as CatalogError)."""
        names = list(settings.process_steps)
        if VALIDATE not in names:
            raise plugins.PluginError(
                f"TELEMETRY_PROCESS_STEPS ({','.join(names)}) has no {VALIDATE!r}: it turns "
                "what ingest wrote into the reading every later step and the sinks expect"
            )
        context = StepContext(settings=settings, device_tags=device_tags)
        factories = plugins.load(ENTRY_POINT_GROUP, names, "TELEMETRY_PROCESS_STEPS")
        return cls([(name, factory(context)) for name, factory in factories])

    def run(self, reading: dict[str, Any]) -> ChainResult:
        """Never raises: a step that fails on a reading dead-letters that reading."""
        result = ChainResult()
        readings = [reading]
        for name, step in self.steps:
            passed: list[dict[str, Any]] = []
            for current in readings:
                try:
                    out = step(current)
                except Exception as exc:  # a bug must not stop the pipeline nor lose it
                    log.exception(
                        "step failed on a reading; it goes to the dead-letter topic",
                        extra={"step": name},
                    )
                    result.rejects.append((name, Reject(
                        Reason.UNDECODABLE_RECORD,
                        f"{name} failed on this reading ({exc!r}); it is kept here to be "
                        "replayed once the step is fixed: please report it")))
                    continue
                passed.extend(out.records)
                result.rejects.extend((name, reject) for reject in out.rejects)
            readings = passed
            if not readings:
                break
        result.records = readings
        return result
