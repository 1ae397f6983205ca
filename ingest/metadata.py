"""Device metadata: the rules tags must follow, shared by the MQTT path and the file loader.

Tags become InfluxDB tags, so they are short, single-line, non-empty strings, and no key may
shadow the `device_id` tag or one of InfluxDB's own names. A bad tag is refused alone (its
own reason, listed in the message's one dead letter); the device's other tags are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ingest.device_ids import CONTROL_CHARACTERS, shown
from ingest.rejected import Rejected
from ingest.strict_json import JsonProblem, is_valid_unicode, loads_utf8, type_name
from plumbing.dead_letters import RejectedMetric
from plumbing.reasons import Reason
from plumbing.stored_names import invisible_character_problem, nfc, tag_text_problem

MAX_TAGS = 64
MAX_TAG_KEY_BYTES = 128
MAX_TAG_VALUE_BYTES = 256
#: `device_id` is the device's own tag; InfluxDB refuses `time` and reserves `_`-names.
RESERVED_TAG_KEYS = frozenset(("device_id", "time"))


@dataclass(frozen=True)
class TagLimits:
    """The caps of a device's tag set (IngestSettings.tag_limits gives the configured ones)."""

    max_tags: int = MAX_TAGS
    max_key_bytes: int = MAX_TAG_KEY_BYTES
    max_value_bytes: int = MAX_TAG_VALUE_BYTES


DEFAULT_TAG_LIMITS = TagLimits()


class CheckedTags(NamedTuple):
    """The tags kept (keys and values in NFC) and each tag refused alone, with its reason."""

    tags: dict[str, str]
    refused: list[RejectedMetric]


def check_tags(tags: Any, limits: TagLimits = DEFAULT_TAG_LIMITS) -> CheckedTags:
    """A tag set, one tag at a time: a bad tag is refused alone and the others are kept.

    Raises Rejected for the set as a whole: not an object (`invalid_metadata`), or more
    tags than `limits.max_tags` (`too_many_tags`).
    """
    if not isinstance(tags, dict):
        raise Rejected(Reason.INVALID_METADATA, (
            'tags must be an object of string to string, like {"site": "berlin"}; '
            f"got {type_name(tags)}"))
    if len(tags) > limits.max_tags:
        raise Rejected(Reason.TOO_MANY_TAGS, (
            f"{len(tags)} tags; at most {limits.max_tags} are allowed per device: keep the "
            "ones queries group or filter by"))
    kept: dict[str, str] = {}
    refused: list[RejectedMetric] = []
    for key, value in tags.items():
        problem = _tag_problem(key, value, limits)
        if problem is None:
            key, value = nfc(key), nfc(value)
            if key in kept:
                problem = (Reason.INVALID_TAG, f"tag key {shown(key)} appears twice once "
                           "written in Unicode NFC (composed and decomposed forms are one "
                           "key): keep one")
            else:
                kept[key] = value
                continue
        refused.append(RejectedMetric(key[:200], *problem))
    return CheckedTags(kept, refused)


def tag_problems(tags: Any, limits: TagLimits = DEFAULT_TAG_LIMITS) -> list[str]:
    """Everything wrong with a tag set, each saying what to fix; empty when it is fine."""
    try:
        checked = check_tags(tags, limits)
    except Rejected as rej:
        return [rej.detail]
    return [r.detail for r in checked.refused]


def _tag_problem(key: Any, value: Any, limits: TagLimits) -> tuple[Reason, str] | None:
    problem = _text_problem(key, "tag key", limits.max_key_bytes)
    if problem is not None:
        return problem
    if key in RESERVED_TAG_KEYS or key.startswith("_"):
        return Reason.INVALID_TAG, f"tag key {shown(key)} is reserved; rename it"
    if not isinstance(value, str):
        return Reason.INVALID_TAG, (f"value of tag {shown(key)} is {type_name(value)}; tags "
                                    "are strings: quote it")
    return _text_problem(value, f"value of tag {shown(key)}", limits.max_value_bytes)


def _text_problem(text: str, what: str, max_bytes: int) -> tuple[Reason, str] | None:
    if not is_valid_unicode(text):
        return Reason.INVALID_TAG, (f"{what} {shown(text)} holds an unpaired surrogate; it is "
                                    "not Unicode text")
    if not text:
        return Reason.INVALID_TAG, f"{what} is empty"
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        return Reason.TAG_TOO_LONG, (f"{what} {shown(text)} is {size} bytes; at most "
                                     f"{max_bytes} allowed")
    bad = CONTROL_CHARACTERS.search(text)
    if bad:
        return Reason.INVALID_TAG, (f"{what} {shown(text)} contains the control or line-break "
                                    f"character U+{ord(bad.group()):04X}; remove it")
    if text != text.strip():
        return Reason.INVALID_TAG, (f"{what} {shown(text)} has leading or trailing "
                                    "whitespace; remove it")
    invisible = invisible_character_problem(text, f"{what} {shown(text)}")
    if invisible is not None:
        return Reason.INVISIBLE_CHARACTER, invisible
    unstorable = tag_text_problem(text, f"{what} {shown(text)}")
    if unstorable is not None:
        return Reason.INVALID_TAG, unstorable
    return None


def decode_metadata_payload(
    payload: bytes, max_bytes: int, limits: TagLimits = DEFAULT_TAG_LIMITS
) -> CheckedTags | None:
    """The tags of a retained metadata message; None (a tombstone) for an empty payload."""
    if not payload:
        return None
    if len(payload) > max_bytes:
        raise Rejected(Reason.INVALID_METADATA,
                       f"payload is {len(payload)} bytes; at most {max_bytes} are accepted")
    try:
        tags = loads_utf8(payload)
    except JsonProblem as exc:
        raise Rejected(Reason.INVALID_METADATA, str(exc)) from None
    return check_tags(tags, limits)


def metadata_record(
    device_id: str, tags: dict[str, str], source: str, updated_at_ms: int
) -> dict[str, Any]:
    """A DeviceMetadata record."""
    return {"device_id": device_id, "tags": tags, "updated_at_ms": updated_at_ms,
            "source": source}
