"""validate: a RawReading as ingest wrote it -> an EnrichedReading, units as sent.

Rejects a whole reading for its time or for having no metrics, and single metrics whose value
is not a finite number or whose name no sink could store as a field (refused here, at the
edge, so the rest of the reading goes on); a bad `seq` is dropped from the reading and
refused alone too. Metric names are stored in Unicode NFC.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from plumbing.reasons import Reason
from plumbing.stored_names import field_key_problem, invisible_character_problem, nfc
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
#: Verdicts remembered (a fleet sends a few hundred names over and over), and the longest
#: name remembered: real names are short, and a bound on both keeps hostile names from
#: growing the cache past a few MB.
_NAME_CACHE_ENTRIES = 4096
_NAME_CACHE_CHARS = 256
#: Longest name kept in a reject (a dead letter lists many).
_SHOWN_NAME_CHARS = 200

#: A checked metric name: (None, None) to store it as sent, (its NFC form, None) to store
#: that instead, or (None, why it is refused).
NameVerdict = tuple[str | None, Reject | None]


class MetricNames:
    """The verdict on each metric name: refused at the edge with its reason when no sink
    could store it, so the metric is dead-lettered alone instead of its whole reading at the
    sink (whose own checks stay as the last line of defence). Verdicts are cached."""

    def __init__(self, max_bytes: int = MAX_METRIC_NAME_BYTES) -> None:
        self.max_bytes = max_bytes
        self._cached = lru_cache(maxsize=_NAME_CACHE_ENTRIES)(self.verdict)

    def check(self, name: str) -> NameVerdict:
        """The verdict on `name`, from the cache when it is short enough to be kept there."""
        if len(name) > _NAME_CACHE_CHARS:
            return self.verdict(name)
        return self._cached(name)

    def verdict(self, name: str) -> NameVerdict:
        """See NameVerdict."""
        shown = short_repr(name)
        if not name.strip():
            return None, _refused(Reason.INVALID_METRIC_NAME, name,
                                  "the metric name is empty or blank")
        if _CONTROL_CHARACTERS.search(name):
            return None, _refused(Reason.INVALID_METRIC_NAME, name, (
                f"the metric name {shown} contains control characters (or a newline)"))
        invisible = invisible_character_problem(name, f"the metric name {shown}")
        if invisible is not None:
            return None, _refused(Reason.INVISIBLE_CHARACTER, name, invisible)
        try:
            stored = nfc(name)
            size = len(stored.encode("utf-8"))
        except UnicodeEncodeError:
            return None, _refused(Reason.INVALID_METRIC_NAME, name, (
                f"the metric name {shown} holds a lone UTF-16 surrogate, which is not text"))
        if size > self.max_bytes:
            return None, _refused(Reason.METRIC_NAME_TOO_LONG, name, (
                f"the metric name {shown} is {size} bytes of UTF-8, more than "
                f"{self.max_bytes} (TELEMETRY_PROCESS_MAX_METRIC_NAME_BYTES): shorten it on "
                "the device"))
        if stored in RESERVED_METRIC_NAMES or stored.startswith("_"):
            return None, _refused(Reason.INVALID_METRIC_NAME, name, (
                f"the metric name {shown} is reserved (seq, time and names beginning "
                "with '_' are used by the storage layout); rename the metric on the device"))
        unstorable = field_key_problem(stored, f"the metric name {shown}")
        if unstorable is not None:
            return None, _refused(Reason.INVALID_METRIC_NAME, name, unstorable)
        return (None if stored == name else stored), None


def _refused(reason: Reason, name: str, detail: str) -> Reject:
    return Reject(reason, detail, metric=name[:_SHOWN_NAME_CHARS])


_DEFAULT_NAMES = MetricNames()


def validate_reading(
    raw: dict[str, Any], limits: TimeLimits, names: MetricNames = _DEFAULT_NAMES
) -> StepResult:
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
                metric="seq",  # refused alone: listed with the metrics
            )
        )
        seq = None

    fields: dict[str, float] = {}
    units: dict[str, str] = {}
    check_name = names.check
    renamed = False  # a name changed by NFC: from then on, names may collide
    for metric in metrics:
        name = metric["name"]
        in_nfc, refused = check_name(name)
        if refused is not None:
            result.rejects.append(refused)
            continue
        if in_nfc is not None or renamed:
            renamed = True
            if in_nfc is not None:
                sent, name = name, in_nfc
            else:
                sent = name
            if name in fields:
                result.rejects.append(_refused(Reason.INVALID_METRIC_NAME, sent, (
                    f"the metric name {short_repr(sent)} is the name of an earlier metric "
                    "of the reading (names are compared in Unicode NFC); the first was kept")))
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

    names = MetricNames(settings.process_max_metric_name_bytes)

    def validate(raw: dict[str, Any]) -> StepResult:
        return validate_reading(raw, limits, names)

    return validate
