"""Device metadata: the rules tags must follow, shared by the MQTT path and the file loader.

Tags become InfluxDB tags, so they are short, single-line, non-empty strings, and no key may
shadow the `device_id` tag or one of InfluxDB's own names.
"""

from __future__ import annotations

from typing import Any

from ingest.device_ids import CONTROL_CHARACTERS, shown
from ingest.rejected import Rejected
from ingest.strict_json import JsonProblem, is_valid_unicode, loads_utf8, type_name
from plumbing.reasons import Reason

MAX_TAGS = 64
MAX_TAG_KEY_BYTES = 128
MAX_TAG_VALUE_BYTES = 256
#: `device_id` is the device's own tag; InfluxDB refuses `time` and reserves `_`-names.
RESERVED_TAG_KEYS = frozenset(("device_id", "time"))


def tag_problems(tags: Any) -> list[str]:
    """Everything wrong with a tag set, each saying what to fix; empty when it is fine."""
    if not isinstance(tags, dict):
        return [f'tags must be an object of string to string, like {{"site": "berlin"}}; '
                f"got {type_name(tags)}"]
    problems: list[str] = []
    if len(tags) > MAX_TAGS:
        problems.append(f"{len(tags)} tags; at most {MAX_TAGS} are allowed")
    for key, value in tags.items():
        problems.extend(_text_problems(key, "tag key", MAX_TAG_KEY_BYTES))
        if key in RESERVED_TAG_KEYS or key.startswith("_"):
            problems.append(f"tag key {shown(key)} is reserved; rename it")
        if isinstance(value, str):
            problems.extend(_text_problems(value, f"value of tag {shown(key)}",
                                           MAX_TAG_VALUE_BYTES))
        else:
            problems.append(f"value of tag {shown(key)} is {type_name(value)}; tags are "
                            "strings: quote it")
    return problems


def _text_problems(text: str, what: str, max_bytes: int) -> list[str]:
    if not is_valid_unicode(text):
        return [f"{what} {shown(text)} holds an unpaired surrogate; it is not Unicode text"]
    if not text:
        return [f"{what} is empty"]
    problems = []
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        problems.append(f"{what} {shown(text)} is {size} bytes; at most {max_bytes} allowed")
    bad = CONTROL_CHARACTERS.search(text)
    if bad:
        problems.append(f"{what} {shown(text)} contains the control or line-break character "
                        f"U+{ord(bad.group()):04X}; remove it")
    if text != text.strip():
        problems.append(f"{what} {shown(text)} has leading or trailing whitespace; remove it")
    return problems


def decode_metadata_payload(payload: bytes, max_bytes: int) -> dict[str, str] | None:
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
    problems = tag_problems(tags)
    if problems:
        raise Rejected(Reason.INVALID_METADATA, "; ".join(problems[:10]))
    return dict(tags)


def metadata_record(
    device_id: str, tags: dict[str, str], source: str, updated_at_ms: int
) -> dict[str, Any]:
    """A DeviceMetadata record."""
    return {"device_id": device_id, "tags": tags, "updated_at_ms": updated_at_ms,
            "source": source}
