"""Reading times: epoch ms, RFC 3339 in its many spellings, and everything that is not."""

from __future__ import annotations

import calendar

import pytest

from plumbing.reasons import Reason
from processors.timestamps import TimeLimits, TimestampError, parse_rfc3339_us, reading_time_us

LIMITS = TimeLimits.from_seconds(300, 604_800)


def utc_us(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int = 0) -> int:
    """An independent oracle: calendar.timegm counts whole UTC seconds."""
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-21T05:00:00Z", utc_us(2025, 11, 21, 5, 0, 0)),
        ("2025-11-21T05:00:00.123Z", utc_us(2025, 11, 21, 5, 0, 0, 123_000)),
        ("2025-11-21T05:00:00.5Z", utc_us(2025, 11, 21, 5, 0, 0, 500_000)),
        ("2025-11-21T05:00:00.123456Z", utc_us(2025, 11, 21, 5, 0, 0, 123_456)),
        # finer than a microsecond: truncated, never rounded up into the next microsecond
        ("2025-11-21T05:00:00.1234569Z", utc_us(2025, 11, 21, 5, 0, 0, 123_456)),
        ("2025-11-21T05:00:00.999999999999Z", utc_us(2025, 11, 21, 5, 0, 0, 999_999)),
        ("2025-11-21T10:30:00+05:30", utc_us(2025, 11, 21, 5, 0, 0)),
        ("2025-11-20T21:00:00.25-08:00", utc_us(2025, 11, 21, 5, 0, 0, 250_000)),
        ("2025-11-21T05:00:00+00:00", utc_us(2025, 11, 21, 5, 0, 0)),
        ("2025-11-21T05:00:00-00:00", utc_us(2025, 11, 21, 5, 0, 0)),
        ("2025-11-21t05:00:00z", utc_us(2025, 11, 21, 5, 0, 0)),
        ("2025-11-21 05:00:00Z", utc_us(2025, 11, 21, 5, 0, 0)),
        ("2024-02-29T00:00:00Z", utc_us(2024, 2, 29, 0, 0, 0)),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.5Z", -500_000),
        # a leap second stays inside its minute, after every other instant of it
        ("2016-12-31T23:59:60Z", utc_us(2016, 12, 31, 23, 59, 59, 999_999)),
    ],
)
def test_rfc3339_to_exact_microseconds(text: str, expected: int) -> None:
    assert parse_rfc3339_us(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-21T05:00:00",  # no offset: which zone?
        "2025-11-21",
        "05:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",  # not a leap year
        "2025-11-31T00:00:00Z",
        "2025-11-21T24:00:00Z",
        "2025-11-21T05:60:00Z",
        "2025-11-21T05:00:61Z",
        "2025-11-21T05:00:00+24:00",
        "2025-11-21T05:00:00+05:60",
        "2025-11-21T05:00:00.Z",
        "2025-11-21T05:00:00Z ",
        " 2025-11-21T05:00:00Z",
        "2025-11-21T05:00:00ZZ",
        "0000-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff15-11-21T05:00:00Z",  # fullwidth digits are not RFC 3339 digits
        "2025-11-21T05:00:00\x00Z",
        "1763701200123.5",  # a JSON float arrives as its text
        "true",
        '{"ms": 1763701200123}',
        "",
        "9" * 100_000,
    ],
)
def test_unparseable_strings_are_invalid_timestamp(text: str) -> None:
    with pytest.raises(TimestampError) as info:
        reading_time_us(text, 1_763_701_200_000, LIMITS)
    assert info.value.reason is Reason.INVALID_TIMESTAMP
    assert len(info.value.detail) < 300  # a huge input does not make a huge dead letter


def test_epoch_milliseconds_and_missing_ts() -> None:
    received = 1_763_701_200_000
    assert reading_time_us(received - 1234, received, LIMITS) == (received - 1234) * 1000
    assert reading_time_us(None, received, LIMITS) == received * 1000


def test_limits_are_relative_to_receive_time_not_the_clock() -> None:
    # A reading received in 2001 validates the same whenever it is replayed.
    received = 1_000_000_000_000
    assert reading_time_us(received - 86_400_000, received, LIMITS) == (
        received - 86_400_000
    ) * 1000


def test_future_limit_is_inclusive() -> None:
    received = 1_763_701_200_000
    assert reading_time_us(received + 300_000, received, LIMITS) == (received + 300_000) * 1000
    with pytest.raises(TimestampError) as info:
        reading_time_us(received + 300_001, received, LIMITS)
    assert info.value.reason is Reason.TIMESTAMP_IN_FUTURE


def test_age_limit_is_inclusive_and_hints_at_epoch_seconds() -> None:
    received = 1_763_701_200_000
    week_ms = 604_800_000
    assert reading_time_us(received - week_ms, received, LIMITS) == (received - week_ms) * 1000
    with pytest.raises(TimestampError) as info:
        reading_time_us(received - week_ms - 1, received, LIMITS)
    assert info.value.reason is Reason.TIMESTAMP_TOO_OLD
    assert "epoch seconds" not in info.value.detail
    with pytest.raises(TimestampError) as info:
        reading_time_us(1_763_701_200, received, LIMITS)  # seconds sent as milliseconds
    assert info.value.reason is Reason.TIMESTAMP_TOO_OLD
    assert "epoch seconds" in info.value.detail


def test_rfc3339_strings_are_checked_against_the_limits_too() -> None:
    received = utc_us(2025, 11, 21, 5, 0, 0) // 1000
    with pytest.raises(TimestampError) as info:
        reading_time_us("2025-11-21T05:05:00.000001Z", received, LIMITS)
    assert info.value.reason is Reason.TIMESTAMP_IN_FUTURE
    with pytest.raises(TimestampError) as info:
        reading_time_us("2025-11-13T05:00:00+00:00", received, LIMITS)
    assert info.value.reason is Reason.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (2**63 - 1, Reason.TIMESTAMP_IN_FUTURE),  # largest Avro long: no overflow, no crash
        (-(2**63), Reason.TIMESTAMP_TOO_OLD),
        (-1, Reason.TIMESTAMP_TOO_OLD),
        (True, Reason.INVALID_TIMESTAMP),
        (1.5e12, Reason.INVALID_TIMESTAMP),
    ],
)
def test_hostile_values(ts: object, reason: Reason) -> None:
    with pytest.raises(TimestampError) as info:
        reading_time_us(ts, 1_763_701_200_000, LIMITS)  # type: ignore[arg-type]
    assert info.value.reason is reason


def test_configurable_limits() -> None:
    strict = TimeLimits.from_seconds(max_future_s=1, max_age_s=60)
    received = 1_763_701_200_000
    with pytest.raises(TimestampError):
        reading_time_us(received + 1001, received, strict)
    with pytest.raises(TimestampError):
        reading_time_us(received - 60_001, received, strict)
    assert reading_time_us(received - 60_000, received, strict) == (received - 60_000) * 1000
