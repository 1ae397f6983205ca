"""dew_point: the worked example of a derived metric (processors/README.md, "Add your agent").

Reads telemetry.enriched; for every reading with `temperature` (degC) and `humidity`
(percent) writes a reading with only {"dew_point": <degC>} and the same device_id, ts_us and
tags to telemetry.derived. The sinks read telemetry.derived too, and InfluxDB merges the
fields of one series and time, so dew_point lands on the same point as the measurements.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from plumbing.topics import DERIVED, ENRICHED
from processors.steps import StepResult

if TYPE_CHECKING:
    import faust

    from processors.pipeline import Pipeline

STAGE = "dew_point"

#: Magnus formula coefficients over water (Sonntag 1990, as in the WMO guide):
#: within 0.35 degC from -45 to 60 degC.
MAGNUS_B = 17.62
MAGNUS_C = 243.12  # degC


def dew_point_c(temperature_c: float, humidity_percent: float) -> float | None:
    """Dew point in degC, or None where it is undefined (no humidity at all)."""
    if humidity_percent <= 0.0 or temperature_c <= -MAGNUS_C:
        return None
    gamma = math.log(humidity_percent / 100.0) + MAGNUS_B * temperature_c / (
        MAGNUS_C + temperature_c
    )
    dew_point = MAGNUS_C * gamma / (MAGNUS_B - gamma)
    return dew_point if math.isfinite(dew_point) else None


def derive_dew_point(reading: dict[str, Any]) -> StepResult:
    """A dew_point-only reading for the same device, time and tags; none without inputs."""
    fields = reading["fields"]
    temperature, humidity = fields.get("temperature"), fields.get("humidity")
    if temperature is None or humidity is None:
        return StepResult()
    value = dew_point_c(temperature, humidity)
    if value is None:
        return StepResult()
    return StepResult(
        records=[
            {
                "device_id": reading["device_id"],
                "ts_us": reading["ts_us"],
                "received_at_ms": reading["received_at_ms"],
                "seq": None,
                "fields": {"dew_point": value},
                "units": {"dew_point": "degC"},
                "tags": reading["tags"],
            }
        ]
    )


def register(pipeline: Pipeline) -> None:
    @pipeline.app.agent(pipeline.source(ENRICHED), name=STAGE)
    async def dew_point(stream: faust.StreamT[bytes]) -> None:
        await pipeline.run(
            stream, stage=STAGE, reads="EnrichedReading", writes=DERIVED, step=derive_dew_point
        )
