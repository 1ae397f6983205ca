"""Device metadata rules shared by the MQTT path and `telemetry devices load`."""

from __future__ import annotations

import pytest

from ingest.metadata import (
    MAX_TAG_KEY_BYTES,
    MAX_TAG_VALUE_BYTES,
    MAX_TAGS,
    TagLimits,
    check_tags,
    decode_metadata_payload,
    metadata_record,
    tag_problems,
)
from ingest.rejected import Rejected
from plumbing.reasons import Reason
from schemas.codec import default_codec


def test_good_tags_have_no_problems() -> None:
    tags = {"site": "berlin", "rack": "r-12", "model": "TH 2000, rev \"b\"", "ünïcode": "ök",
            "k" * MAX_TAG_KEY_BYTES: "v" * MAX_TAG_VALUE_BYTES}
    assert tag_problems(tags) == []
    assert tag_problems({f"t{i}": "x" for i in range(MAX_TAGS)}) == []
    assert tag_problems({}) == []


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        (["site", "berlin"], "got an array"),
        ("site=berlin", "got a string"),
        (None, "got null"),
        ({"floor": 3}, "is a number; tags are strings"),
        ({"on": True}, "is a boolean"),
        ({"x": None}, "is null"),
        ({"x": {"y": "z"}}, "is an object"),
        ({"": "v"}, "tag key is empty"),
        ({"k": ""}, "value of tag 'k' is empty"),
        ({"k": "a\nb"}, "U+000A"),
        ({"k": "a\rb"}, "U+000D"),
        ({"k\t": "v"}, "U+0009"),
        ({"k": "a\x00"}, "U+0000"),
        ({"k": "a\u2028b"}, "U+2028"),
        ({"k": "\x85"}, "U+0085"),
        ({"k": " v"}, "whitespace"),
        ({"k ": "v"}, "whitespace"),
        ({"k": "v" * (MAX_TAG_VALUE_BYTES + 1)}, f"at most {MAX_TAG_VALUE_BYTES}"),
        ({"k": "é" * (MAX_TAG_VALUE_BYTES // 2 + 1)}, "bytes"),
        ({"k" * (MAX_TAG_KEY_BYTES + 1): "v"}, f"at most {MAX_TAG_KEY_BYTES}"),
        ({f"t{i}": "x" for i in range(MAX_TAGS + 1)}, f"at most {MAX_TAGS}"),
        ({"device_id": "other"}, "reserved"),
        ({"time": "now"}, "reserved"),
        ({"_measurement": "x"}, "reserved"),
        ({"k": "\ud800"}, "surrogate"),
    ],
)
def test_bad_tags_say_what_to_fix(tags: object, words: str) -> None:
    problems = tag_problems(tags)
    assert problems and any(words in p for p in problems), problems


def test_every_problem_of_a_tag_set_is_reported() -> None:
    problems = tag_problems({"a": 1, "b": "", "c": "x\ny"})
    assert len(problems) == 3


def test_an_empty_payload_is_a_tombstone() -> None:
    assert decode_metadata_payload(b"", 1000) is None


def test_a_json_object_of_string_tags_is_decoded() -> None:
    checked = decode_metadata_payload(b'\xef\xbb\xbf{"site": "berlin", "rack": "r1"}', 1000)
    assert checked is not None and checked.refused == []
    assert checked.tags == {"site": "berlin", "rack": "r1"}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"null", "got null"),
        (b"[]", "got an array"),
        (b'"site"', "got a string"),
        (b"{", "not JSON"),
        (b"\xff", "not UTF-8"),
        (b'{"site": "a", "site": "b"}', "duplicate key"),
        (b"[" * 100_000, "nested"),
        (b'{"a": "' + b"x" * 2000 + b'"}', "bytes; at most 1000"),
        (b" ", "not JSON"),
    ],
)
def test_anything_else_is_invalid_metadata(payload: bytes, words: str) -> None:
    with pytest.raises(Rejected) as info:
        decode_metadata_payload(payload, 1000 if len(payload) < 100_000 else 10**6)
    assert info.value.reason == Reason.INVALID_METADATA
    assert words in info.value.detail


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"site": 5}, Reason.INVALID_TAG),
        ({"site": "a\nb"}, Reason.INVALID_TAG),
        ({"site": "ends\\"}, Reason.INVALID_TAG),  # line protocol cannot carry it
        ({"site\\": "v"}, Reason.INVALID_TAG),
        ({"site": "v" * (MAX_TAG_VALUE_BYTES + 1)}, Reason.TAG_TOO_LONG),
        ({"k" * (MAX_TAG_KEY_BYTES + 1): "v"}, Reason.TAG_TOO_LONG),
        ({"site": "\u202eberlin"}, Reason.INVISIBLE_CHARACTER),
        ({"site": "ber\u200blin"}, Reason.INVISIBLE_CHARACTER),
        ({"site": "\ufeffberlin"}, Reason.INVISIBLE_CHARACTER),
    ],
)
def test_a_bad_tag_is_refused_alone_with_its_reason(tags: dict, reason: Reason) -> None:
    checked = check_tags({**tags, "rack": "r1"})
    assert checked.tags == {"rack": "r1"}
    [refused] = checked.refused
    assert refused.reason == reason and refused.metric == next(iter(tags))[:200]


def test_tag_keys_and_values_are_stored_in_nfc() -> None:
    checked = check_tags({"cafe\u0301": "Zu\u0308rich"})
    assert checked.tags == {"caf\u00e9": "Z\u00fcrich"} and checked.refused == []
    twice = check_tags({"caf\u00e9": "a", "cafe\u0301": "b"})
    assert twice.tags == {"caf\u00e9": "a"}
    assert [r.reason for r in twice.refused] == [Reason.INVALID_TAG]


def test_the_tag_caps_are_configurable() -> None:
    limits = TagLimits(max_tags=2, max_key_bytes=4, max_value_bytes=3)
    with pytest.raises(Rejected) as info:
        check_tags({"a": "1", "b": "2", "c": "3"}, limits)
    assert info.value.reason == Reason.TOO_MANY_TAGS
    checked = check_tags({"abcde": "1", "b": "1234"}, limits)
    assert [r.reason for r in checked.refused] == [Reason.TAG_TOO_LONG] * 2


def test_a_metadata_record_encodes_as_device_metadata() -> None:
    record = metadata_record("d1", {"site": "berlin"}, "mqtt", 1763701200123)
    codec = default_codec()
    assert codec.decode(codec.encode("DeviceMetadata", record)) == record
