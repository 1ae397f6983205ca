"""Device ids: the contract's rules, and reading one out of an MQTT topic."""

from __future__ import annotations

import functools
import re

from ingest.rejected import Rejected
from plumbing.reasons import Reason
from plumbing.stored_names import invisible_character_problem, nfc, tag_text_problem

MAX_DEVICE_ID_BYTES = 128

#: C0 and C1 control characters, DEL, and the Unicode line and paragraph separators: none of
#: them may appear in a device id or a tag, which end up as InfluxDB tags.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted and cut short, safe to put in a dead-letter detail or an error message."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return ascii(cut)


def device_id_problem(device_id: str) -> str | None:
    """What is wrong with `device_id` under the contract, or None when it is fine."""
    if _SURROGATES.search(device_id):
        return f"device id {shown(device_id)} is not valid UTF-8"
    size = len(device_id.encode("utf-8"))
    if size == 0:
        return "device id is empty"
    if size > MAX_DEVICE_ID_BYTES:
        return (f"device id {shown(device_id)} is {size} bytes of UTF-8; "
                f"at most {MAX_DEVICE_ID_BYTES} are allowed")
    for char in "/+#":
        if char in device_id:
            return f"device id {shown(device_id)} contains {char!r}"
    bad = CONTROL_CHARACTERS.search(device_id)
    if bad:
        return (f"device id {shown(device_id)} contains the control character "
                f"U+{ord(bad.group()):04X}")
    return tag_text_problem(device_id, f"device id {shown(device_id)}")


def checked_device_id(device_id: str) -> tuple[str, Rejected | None]:
    """The id in NFC (how it is keyed and stored), and why it is refused (None: it is fine).

    An id with an invisible character is `invisible_character`, anything else wrong with it
    `invalid_device_id`.
    """
    if _SURROGATES.search(device_id):
        return device_id, Rejected(Reason.INVALID_DEVICE_ID, device_id_problem(device_id) or "")
    device_id = nfc(device_id)
    invisible = invisible_character_problem(device_id, f"device id {shown(device_id)}")
    if invisible is not None:
        return device_id, Rejected(Reason.INVISIBLE_CHARACTER, invisible)
    problem = device_id_problem(device_id)
    return device_id, None if problem is None else Rejected(Reason.INVALID_DEVICE_ID, problem)


def topic_levels_of(topic_filter: str) -> list[str]:
    """The filter's levels, without a `$share/<group>/` prefix."""
    levels = topic_filter.split("/")
    if levels[0] == "$share" and len(levels) > 2:
        levels = levels[2:]
    return levels


@functools.lru_cache(maxsize=64)
def _compiled(topic_filter: str) -> tuple[int | None, int, tuple[tuple[int, str], ...], int | None]:
    """(exact level count or None after a `#`, levels before `#`, fixed levels, `+` level)."""
    want = topic_levels_of(topic_filter)
    before_hash = want.index("#") if "#" in want else len(want)
    fixed = tuple((i, lv) for i, lv in enumerate(want[:before_hash]) if lv != "+")
    device_level = want.index("+") if "+" in want[:before_hash] else None
    exact = None if before_hash < len(want) else len(want)
    return exact, before_hash, fixed, device_level


def device_id_from_topic(topic: str, topic_filter: str) -> str | None:
    """The level of `topic` at the filter's first `+`; None when the topic does not match."""
    exact, before_hash, fixed, device_level = _compiled(topic_filter)
    have = topic.split("/")
    if len(have) != exact if exact is not None else len(have) < before_hash:
        return None
    for i, level in fixed:
        if have[i] != level:
            return None
    if device_level is None or device_level >= len(have):
        return None
    return have[device_level]
