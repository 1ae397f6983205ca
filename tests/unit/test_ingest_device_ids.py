"""Device id rules of the contract, and finding the id in an MQTT topic."""

from __future__ import annotations

import pytest

from ingest.device_ids import checked_device_id, device_id_from_topic, device_id_problem
from plumbing.reasons import Reason


@pytest.mark.parametrize(
    "device_id",
    ["d", "x" * 128, "€" * 42, "sensor-01.floor_3", "dev ice,with=odd\"chars\\in", "Zürich-🙂",
     "$SYS-like", "\u00a0nbsp"],
)
def test_good_device_ids(device_id: str) -> None:
    assert device_id_problem(device_id) is None


@pytest.mark.parametrize(
    ("device_id", "words"),
    [
        ("", "empty"),
        ("x" * 129, "129 bytes"),
        ("€" * 43, "129 bytes"),  # 43 characters, but 129 bytes of UTF-8
        ("🙂" * 33, "132 bytes"),
        ("a/b", "'/'"),
        ("a+b", "'+'"),
        ("a#", "'#'"),
        ("a\x00b", "U+0000"),
        ("tab\there", "U+0009"),
        ("new\nline", "U+000A"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("line\u2028sep", "U+2028"),
        ("para\u2029sep", "U+2029"),
        ("bad\udcffutf8", "not valid UTF-8"),
        ("ends-with\\", "ends with a backslash"),  # no sink can store it as a tag
    ],
)
def test_bad_device_ids_say_what_is_wrong(device_id: str, words: str) -> None:
    problem = device_id_problem(device_id)
    assert problem is not None and words in problem


@pytest.mark.parametrize(
    ("topic", "topic_filter", "expected"),
    [
        ("devices/d1/telemetry", "devices/+/telemetry", "d1"),
        ("devices/d1/telemetry", "$share/g/devices/+/telemetry", "d1"),
        ("devices//telemetry", "devices/+/telemetry", ""),
        ("devices/d1/metadata", "devices/+/telemetry", None),
        ("devices/d1/telemetry/x", "devices/+/telemetry", None),
        ("devices/d1", "devices/+/telemetry", None),
        ("other/d1/telemetry", "devices/+/telemetry", None),
        ("site/a/dev/d9/t", "site/+/dev/+/t", "a"),
        ("fleet/d2/telemetry/extra/levels", "fleet/+/#", "d2"),
        ("fleet/d2", "fleet/+/#", "d2"),
        ("d3", "+", "d3"),
    ],
)
def test_device_id_is_the_level_at_the_filters_first_plus(
    topic: str, topic_filter: str, expected: str | None
) -> None:
    assert device_id_from_topic(topic, topic_filter) == expected


@pytest.mark.parametrize(
    "device_id",
    ["rtl\u202eevil", "zero\u200bwidth", "\ufeffbom", "joiner\u200d", "isolate\u2066x\u2069"],
)
def test_invisible_characters_in_a_device_id_have_their_own_reason(device_id: str) -> None:
    _, rejected = checked_device_id(device_id)
    assert rejected is not None and rejected.reason == Reason.INVISIBLE_CHARACTER
    assert "U+" in rejected.detail


def test_a_device_id_is_one_device_whichever_unicode_form_it_is_sent_in() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert checked_device_id(decomposed) == (composed, None)
    assert checked_device_id(composed) == (composed, None)
