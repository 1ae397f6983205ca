"""validate: a RawReading as ingest wrote it -> an EnrichedReading, units as sent.

Rejects a whole reading for its time or for having no metrics, and single metrics whose value
is not a finite number or whose name no database could store as a field; a bad `seq` is
dropped from the reading and dead-lettered alone.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from plumbing.reasons import Reason
from processors.steps import Reject, Step, StepContext, StepResult, worth_forwarding
from processors.timestamps import TimeLimits, TimestampError, reading_time_us, short_repr


def metric_value(value: object) -> float | str:
    """The value as a finite float, or why it is not one (a str)."""
    if isinstance(value, bool):
        return f"value {value!r} is a boolean, not a number"
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return f"value {value!r} is not a finite number"
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return f"integer value {short_repr(value)} is beyond the range of a double"
    if value is None:
        return "value is null"
    if isinstance(value, str):
        return (
            f"value {short_repr(value)} is text (a string, or the JSON of an object or "
            "array), not a number"
        )
    return f"value of type {type(value).__name__} is not a number"


MAX_METRIC_NAME_BYTES = 1024
#: Field names the storage layout already uses (`seq`) or the databases reserve (`time`;
#: InfluxDB's `_field`, `_value`, `_time`... all begin with an underscore).
RESERVED_METRIC_NAMES = frozenset({"seq", "time"})
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def metric_name_problem(name: str) -> str | None:
    """Why a metric name cannot become a field name, or None when it can.

    Cached: a fleet uses a few metric names over and over. The cache is bounded in entries
    and only holds names short enough to be valid, so hostile names cannot grow it.
    """
    if len(name) > MAX_METRIC_NAME_BYTES:  # characters, so surely more bytes
        return _name_problem(name)
    return _cached_name_problem(name)


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "the metric name is empty or blank"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_METRIC_NAME_BYTES:
        return f"the metric name {short_repr(name)} is longer than {MAX_METRIC_NAME_BYTES} bytes"
    if _CONTROL_CHARACTERS.search(name):
        return f"the metric name {short_repr(name)} contains control characters (or a newline)"
    if name in RESERVED_METRIC_NAMES or name.startswith("_"):
        return (
            f"the metric name {short_repr(name)} is reserved (seq, time and names beginning "
            "with '_' are used by the storage layout); rename the metric on the device"
        )
    return None


_cached_name_problem = lru_cache(maxsize=1024)(_name_problem)


def validate_reading(raw: dict[str, Any], limits: TimeLimits) -> StepResult:
    """Checks one RawReading; the result holds at most one EnrichedReading."""
    result = StepResult()
    try:
        ts_us = reading_time_us(raw.get("ts"), raw["received_at_ms"], limits)
    except TimestampError as exc:
        result.rejects.append(Reject(exc.reason, exc.detail))
        return result
    metrics = raw.get("metrics") or []
    if not metrics:
        result.rejects.append(
            Reject(Reason.NO_METRICS, 'the reading has no metrics; send "metrics": {...}')
        )
        return result

    seq = raw.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
        result.rejects.append(
            Reject(
                Reason.INVALID_SEQ,
                f"seq {short_repr(seq)} is not an integer; the reading was kept without it",
            )
        )
        seq = None

    fields: dict[str, float] = {}
    units: dict[str, str] = {}
    for metric in metrics:
        name = metric["name"]
        name_problem = metric_name_problem(name)
        if name_problem is not None:
            result.rejects.append(
                Reject(Reason.INVALID_METRIC_NAME, name_problem, metric=name[:200])
            )
            continue
        value = metric_value(metric.get("value"))
        if isinstance(value, str):
            result.rejects.append(Reject(Reason.VALUE_NOT_A_NUMBER, value, metric=name))
            continue
        fields[name] = value
        unit = metric.get("unit")
        if unit is not None:
            units[name] = unit
        else:
            units.pop(name, None)

    reading = {
        "device_id": raw["device_id"],
        "ts_us": ts_us,
        "received_at_ms": raw["received_at_ms"],
        "seq": seq,
        "fields": fields,
        "units": units,
        "tags": {},
    }
    if worth_forwarding(reading):
        result.records.append(reading)
    return result


def make_step(context: StepContext) -> Step:
    """The `validate` step with the worker's time limits."""
    settings = context.settings
    limits = TimeLimits.from_seconds(
        settings.process_max_future_seconds, settings.process_max_age_seconds
    )

    def validate(raw: dict[str, Any]) -> StepResult:
        return validate_reading(raw, limits)

    return validate
