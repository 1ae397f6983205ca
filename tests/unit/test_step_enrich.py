"""The enrich step and the devices.metadata checks that feed its table."""

from __future__ import annotations

from typing import Any

from plumbing.reasons import Reason
from processors.agents.device_metadata import metadata_problem
from processors.settings import DEFAULT_TAG_ALLOW_LIST
from processors.steps.enrich import allowed_tags, enrich_reading

TAGS = {
    "site": "berlin",
    "room": "lab 1, \"north\"",
    "serial": "SN-123",
    "device_id": "someone-else",
    "zone": "",
    "vendor": "acme=1",
}


def normalized() -> dict[str, Any]:
    return {
        "device_id": "dev 1,=x",
        "ts_us": 1_763_701_200_123_456,
        "received_at_ms": 1_763_701_200_200,
        "seq": 3,
        "fields": {"temperature": 21.5},
        "units": {"temperature": "degC"},
        "tags": {},
    }


def test_allow_list_keeps_only_named_tags_and_never_device_id_or_empty_values() -> None:
    assert allowed_tags(TAGS, DEFAULT_TAG_ALLOW_LIST) == {
        "site": "berlin",
        "room": "lab 1, \"north\"",
        "vendor": "acme=1",
    }


def test_star_allows_every_tag_but_still_not_device_id() -> None:
    assert allowed_tags(TAGS, ["*"]) == {
        "site": "berlin",
        "room": "lab 1, \"north\"",
        "serial": "SN-123",
        "vendor": "acme=1",
    }
    assert allowed_tags({"device_id": "x"}, ["device_id"]) == {}


def test_no_metadata_means_no_tags() -> None:
    assert allowed_tags(None, ["*"]) == {}
    assert allowed_tags({}, DEFAULT_TAG_ALLOW_LIST) == {}


def test_enrich_sets_tags_and_leaves_the_reading_alone() -> None:
    reading = normalized()
    [record] = enrich_reading(reading, {"site": "berlin"}).records
    assert record == {**normalized(), "tags": {"site": "berlin"}}
    assert reading["tags"] == {}  # the input is not modified


def test_metadata_key_must_be_the_device_id() -> None:
    good = {"device_id": "dev-1", "tags": {}, "updated_at_ms": 1, "source": "file"}
    assert metadata_problem(b"dev-1", good) is None
    assert metadata_problem(b"dev-1", None) is None  # a tombstone forgets the device
    no_key = metadata_problem(None, good)
    assert no_key is not None and no_key.reason is Reason.INVALID_METADATA
    other = metadata_problem(b"dev-2", good)
    assert other is not None and other.reason is Reason.INVALID_METADATA
    assert "dev-2" in other.detail
    not_utf8 = metadata_problem(b"\xff\xfe", good)
    assert not_utf8 is not None and not_utf8.reason is Reason.INVALID_METADATA
