"""dew_point: the worked example of a derived metric (processors/README.md, "Add your step").

A reading with `temperature` (degC) and `humidity` (percent) gets a `dew_point` field (degC)
on the same record, so it is stored on the same point as the measurements it comes from.
Run it after `normalize`, which puts both in those units.
"""

from __future__ import annotations

import math
from typing import Any

from processors.steps import Step, StepContext, StepResult

#: Magnus formula coefficients over water (Sonntag 1990, as in the WMO guide):
#: within 0.35 degC from -45 to 60 degC.
MAGNUS_B = 17.62
MAGNUS_C = 243.12  # degC
#: Where the formula holds, for the air temperature and for the dew point alike (the dew point
#: is the temperature whose saturation pressure is the air's vapour pressure). Outside it the
#: formula extrapolates (a humidity of 1e-300 % gives about -240 degC): no dew point then.
MAGNUS_MIN_C = -45.0
MAGNUS_MAX_C = 60.0


def dew_point_c(temperature_c: float, humidity_percent: float) -> float | None:
    """Dew point in degC, or None where the formula gives no right one: no humidity (or one
    that small it underflows), a relative humidity over 100 %, a temperature or a dew point
    outside the formula's -45..60 degC (NaN included)."""
    if not (MAGNUS_MIN_C <= temperature_c <= MAGNUS_MAX_C and 0.0 < humidity_percent <= 100.0):
        return None
    ratio = humidity_percent / 100.0
    if ratio <= 0.0:  # 5e-324 % underflows to 0.0: log(0) is undefined
        return None
    gamma = math.log(ratio) + MAGNUS_B * temperature_c / (MAGNUS_C + temperature_c)
    # gamma <= MAGNUS_B * 60 / 303.12 < MAGNUS_B here: the divisor is never 0
    dew_point = MAGNUS_C * gamma / (MAGNUS_B - gamma)
    return dew_point if dew_point >= MAGNUS_MIN_C else None


def derive_dew_point(reading: dict[str, Any]) -> StepResult:
    """The reading with `dew_point` added where temperature and humidity give one."""
    fields = reading["fields"]
    temperature, humidity = fields.get("temperature"), fields.get("humidity")
    value = (
        None if temperature is None or humidity is None else dew_point_c(temperature, humidity)
    )
    if value is None:
        return StepResult(records=[reading])
    return StepResult(
        records=[
            {
                **reading,
                "fields": {**fields, "dew_point": value},
                "units": {**reading["units"], "dew_point": "degC"},
            }
        ]
    )


def make_step(context: StepContext) -> Step:
    """The `dew_point` step (it needs nothing from the worker)."""
    return derive_dew_point
