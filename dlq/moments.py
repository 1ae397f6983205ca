"""`--since` and `--until` values: a duration back from now, a timestamp, or epoch ms."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
            "w": 7 * 86_400_000}


def duration_ms(text: str) -> int | None:
    """`90s`, `15m`, `2h`, `1h30m`, `7d` as milliseconds; None when it is not a duration."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        return None
    return int(sum(float(m["n"]) * _UNIT_MS[m["unit"]] for m in _DURATION.finditer(text)))


def moment_ms(text: str, now_ms: int) -> int:
    """Epoch ms of a `--since`/`--until` value.

    A duration counts back from `now_ms`; digits alone are epoch milliseconds; anything else
    is an ISO 8601 / RFC 3339 date or time (without an offset: UTC). Raises ValueError.
    """
    text = text.strip()
    back = duration_ms(text)
    if back is not None:
        return now_ms - back
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a duration (15m, 2h, 7d), epoch ms, or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso_ms(epoch_ms: int) -> str:
    """Epoch ms as RFC 3339 UTC with milliseconds."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hour_of(epoch_ms: int) -> str:
    """The UTC hour a moment falls in, as `2026-12-03T07:00Z`."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:00Z")
