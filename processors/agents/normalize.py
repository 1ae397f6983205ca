"""normalize: telemetry.validated -> telemetry.normalized, every catalog metric in its
canonical unit (processors/unit_catalog.yaml). Bad units and impossible values are rejected
one metric at a time; metrics the catalog does not know pass through unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plumbing.topics import NORMALIZED, VALIDATED
from processors.units import UnitCatalog

if TYPE_CHECKING:
    import faust

    from processors.pipeline import Pipeline

STAGE = "normalize"


def register(pipeline: Pipeline, catalog: UnitCatalog) -> None:
    @pipeline.app.agent(pipeline.source(VALIDATED), name=STAGE)
    async def normalize(stream: faust.StreamT[bytes]) -> None:
        await pipeline.run(
            stream,
            stage=STAGE,
            reads="EnrichedReading",
            writes=NORMALIZED,
            step=catalog.normalize,
        )
