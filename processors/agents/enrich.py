"""enrich: telemetry.normalized -> telemetry.enriched, adding the device's allow-listed tags.

Tags come from the device tags table (processors/device_tags.py, fed by the device_metadata
agent). A device without metadata goes on without tags.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from plumbing.topics import ENRICHED, NORMALIZED
from processors.steps import StepResult

if TYPE_CHECKING:
    import faust

    from processors.device_tags import DeviceTags
    from processors.pipeline import Pipeline

STAGE = "enrich"
ALL_TAGS = "*"


def allowed_tags(tags: Mapping[str, str] | None, allow: Collection[str]) -> dict[str, str]:
    """The tags a reading carries: allow-listed (`*` = all), never `device_id`, never empty.

    An empty tag value is the same as no tag in InfluxDB line protocol, and is invalid there.
    """
    if not tags:
        return {}
    every = ALL_TAGS in allow
    return {
        name: value
        for name, value in tags.items()
        if (every or name in allow) and value and name != "device_id"
    }


def enrich_reading(reading: dict[str, Any], tags: Mapping[str, str]) -> StepResult:
    """The reading with `tags` set; its device_id, fields and time are untouched."""
    return StepResult(records=[{**reading, "tags": dict(tags)}])


def register(pipeline: Pipeline, device_tags: DeviceTags) -> None:
    allow = frozenset(pipeline.settings.process_tag_allow_list)

    def step(reading: dict[str, Any]) -> StepResult:
        tags = device_tags.get(reading["device_id"].encode())
        return enrich_reading(reading, allowed_tags(tags, allow))

    @pipeline.app.agent(pipeline.source(NORMALIZED), name=STAGE)
    async def enrich(stream: faust.StreamT[bytes]) -> None:
        await pipeline.run(
            stream, stage=STAGE, reads="EnrichedReading", writes=ENRICHED, step=step
        )
