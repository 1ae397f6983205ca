"""Reading times as devices send them, to exact epoch microseconds.

Integer arithmetic only: a float of epoch microseconds (about 1.7e15) is still exact, but the
fraction of an RFC 3339 string would not be, so nothing here goes through float seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from plumbing.reasons import Reason

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

#: RFC 3339 `date-time` (section 5.6): the offset is required; `T`/`Z` may be lower case and
#: the `T` may be a space (section 5.6, NOTE). Any number of fraction digits.
_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>\d{2}):(?P<off_minute>\d{2}))",
    re.ASCII,
)

#: Epoch milliseconds below this are probably epoch seconds (before 1970-04-26 in ms,
#: after 2286 in s); said in the reject detail so the device owner knows what to fix.
_SECONDS_HINT_BELOW_MS = 10_000_000_000


class TimestampError(ValueError):
    """The reading's time is unusable; `reason` says why."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TimeLimits:
    """How far a reading's time may stray from the moment ingest received it."""

    max_future_us: int
    max_age_us: int

    @classmethod
    def from_seconds(cls, max_future_s: float, max_age_s: float) -> TimeLimits:
        return cls(round(max_future_s * 1_000_000), round(max_age_s * 1_000_000))


def short_repr(value: object, limit: int = 80) -> str:
    """repr() cut to `limit` characters, for reject details that must stay small."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_rfc3339_us(text: str) -> int:
    """Epoch microseconds of an RFC 3339 date-time; digits finer than 1 µs are truncated."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise TimestampError(
            Reason.INVALID_TIMESTAMP,
            f"ts {short_repr(text)} is not epoch milliseconds or an RFC 3339 date-time "
            "with an offset, like 2025-11-21T05:00:00.123Z",
        )
    second = int(m["second"])
    fraction = m["fraction"] or ""
    micro = int((fraction + "000000")[:6])
    if second == 60:
        # A leap second: the last representable instant of the minute keeps the order.
        second, micro = 59, 999_999
    if m["utc"]:
        tz = UTC
    else:
        off_hour, off_minute = int(m["off_hour"]), int(m["off_minute"])
        if off_hour > 23 or off_minute > 59:
            raise TimestampError(
                Reason.INVALID_TIMESTAMP, f"ts {short_repr(text)} has an impossible UTC offset"
            )
        offset = timedelta(hours=off_hour, minutes=off_minute)
        tz = timezone(-offset if m["sign"] == "-" else offset)
    try:
        moment = datetime(
            int(m["year"]),
            int(m["month"]),
            int(m["day"]),
            int(m["hour"]),
            int(m["minute"]),
            second,
            micro,
            tzinfo=tz,
        )
        return (moment - _EPOCH) // _ONE_US
    except (ValueError, OverflowError) as exc:
        raise TimestampError(
            Reason.INVALID_TIMESTAMP, f"ts {short_repr(text)} is not a real date-time: {exc}"
        ) from None


def reading_time_us(ts: int | str | None, received_at_ms: int, limits: TimeLimits) -> int:
    """The reading's time in epoch µs, checked against when ingest received it."""
    if ts is None:
        return received_at_ms * 1000
    if isinstance(ts, bool) or not isinstance(ts, int | str):
        raise TimestampError(
            Reason.INVALID_TIMESTAMP, f"ts has type {type(ts).__name__}; send an integer or string"
        )
    ts_us = ts * 1000 if isinstance(ts, int) else parse_rfc3339_us(ts)
    received_us = received_at_ms * 1000
    ahead = ts_us - received_us
    if ahead > limits.max_future_us:
        raise TimestampError(
            Reason.TIMESTAMP_IN_FUTURE,
            f"ts {short_repr(ts)} is {ahead / 1e6:.0f} s after ingest received the reading; "
            f"at most {limits.max_future_us / 1e6:.0f} s is accepted (check the device clock)",
        )
    if -ahead > limits.max_age_us:
        hint = ""
        if isinstance(ts, int) and 0 < ts < _SECONDS_HINT_BELOW_MS:
            hint = "; it looks like epoch seconds, send milliseconds"
        raise TimestampError(
            Reason.TIMESTAMP_TOO_OLD,
            f"ts {short_repr(ts)} is {-ahead / 1e6:.0f} s before ingest received the reading; "
            f"at most {limits.max_age_us / 1e6:.0f} s is accepted{hint}",
        )
    return ts_us
