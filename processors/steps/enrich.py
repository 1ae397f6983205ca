"""enrich: adds the device's allow-listed tags to the reading.

Tags come from the device tags table (processors/device_tags.py, fed by the device_metadata
agent). A device without metadata goes on without tags.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from processors.steps import Step, StepContext, StepResult

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


def make_step(context: StepContext) -> Step:
    """The `enrich` step over the worker's device tags table and tag allow-list."""
    allow = frozenset(context.settings.process_tag_allow_list)
    device_tags = context.device_tags

    def enrich(reading: dict[str, Any]) -> StepResult:
        return enrich_reading(reading, allowed_tags(device_tags(reading["device_id"]), allow))

    return enrich
