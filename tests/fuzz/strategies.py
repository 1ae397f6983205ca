"""Hypothesis strategies for the property tests (tests/unit/test_fuzz_*.py): hostile text,
JSON documents in the contract's shape and out of it, and records of our Avro schemas."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.inputs import HOSTILE_NUMBERS, HOSTILE_TEXT
from tests.fuzz.pipeline import RECEIVED_AT_MS

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

#: Characters every stage treats specially somewhere, and some that are just text.
_SPECIAL = [*",= \"\\\t\n\r\x00#_\u202e\u200b\ufeff\u00e9\u0301\U0001f680", "a", "b", "1"]

#: Text made of the special characters, of the hostile strings, and anything at all.
hostile_text = st.one_of(
    st.text(alphabet=st.sampled_from(_SPECIAL), max_size=12),
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=12),
    st.lists(st.sampled_from(HOSTILE_TEXT), min_size=2, max_size=3).map("".join),
)
#: Valid Unicode only (what Avro strings can hold).
unicode_text = hostile_text.filter(
    lambda s: not any("\ud800" <= c <= "\udfff" for c in s))

hostile_number = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS), st.floats(), INT64, st.integers(), st.booleans())

json_scalar = st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), hostile_text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12,
)

metric_value = st.one_of(
    hostile_number,
    hostile_text,
    st.fixed_dictionaries({"value": hostile_number},
                          optional={"unit": st.one_of(st.none(), hostile_text, st.sampled_from(
                              ["degC", "degF", "K", "percent", "kPa", "V", "W", "furlong"]))}),
    json_value,
)
ts_value = st.one_of(
    st.integers(min_value=RECEIVED_AT_MS - 700_000_000, max_value=RECEIVED_AT_MS + 400_000),
    st.sampled_from(["2025-11-21T05:00:00Z", "2025-11-21 04:59:59.999999+00:00",
                     "2025-13-45T25:61:00Z", "yesterday", ""]),
    json_value,
)
reading_object = st.fixed_dictionaries(
    {},
    optional={
        "ts": ts_value,
        "seq": st.one_of(INT64, json_value),
        "metrics": st.one_of(
            st.dictionaries(st.one_of(hostile_text, st.sampled_from(
                ["temperature", "humidity", "pressure", "voltage"])), metric_value, max_size=6),
            json_value),
    },
)
telemetry_document = st.one_of(reading_object, st.lists(reading_object, max_size=4), json_value)


def dumps(document: Any, ascii_only: bool) -> bytes:
    """JSON as a device might write it; a lone surrogate travels as its escape."""
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "backslashreplace")


telemetry_payload = st.one_of(
    st.builds(dumps, telemetry_document, st.booleans()),
    st.binary(max_size=200),
)
metadata_payload = st.one_of(
    st.builds(dumps, st.dictionaries(hostile_text, st.one_of(hostile_text, json_value),
                                     max_size=6), st.booleans()),
    st.builds(dumps, json_value, st.booleans()),
    st.binary(max_size=100),
)
device_id = st.one_of(st.sampled_from(["dev-1", "caf\u00e9", "cafe\u0301", "a b,c=d\\"]),
                      hostile_text)


def as_received(topic: str) -> str:
    """The topic as ingest gets it: MQTT bytes decoded with `surrogateescape`
    (ingest/mqtt_connection.py), so a lone surrogate arrives as the bytes that encode it."""
    return topic.encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")


topic = st.one_of(
    st.builds(lambda d, kind: f"devices/{d}/{kind}", device_id,
              st.sampled_from(["telemetry", "metadata"])),
    st.text(max_size=30),
    st.binary(max_size=30).map(lambda b: b.decode("utf-8", "surrogateescape")),
).map(as_received)

# ---- Avro records ----

raw_metric = st.fixed_dictionaries({
    "name": unicode_text,
    "value": st.one_of(st.none(), st.floats(), INT64, st.booleans(), unicode_text),
    "unit": st.one_of(st.none(), unicode_text, st.sampled_from(["degC", "K", "percent"])),
})
raw_reading = st.fixed_dictionaries({
    "device_id": st.one_of(st.just("dev-1"), unicode_text),
    "ts": st.one_of(st.none(), INT64, ts_value.filter(lambda t: isinstance(t, int)),
                    unicode_text),
    "received_at_ms": st.one_of(st.just(RECEIVED_AT_MS), INT64),
    "seq": st.one_of(st.none(), INT64, unicode_text),
    "metrics": st.lists(raw_metric, max_size=6),
})
tags = st.dictionaries(unicode_text, unicode_text, max_size=4)
enriched_reading = st.fixed_dictionaries({
    "device_id": unicode_text,
    "ts_us": INT64,
    "received_at_ms": INT64,
    "seq": st.one_of(st.none(), INT64),
    "fields": st.dictionaries(unicode_text, st.floats(), max_size=5),
    "units": st.dictionaries(unicode_text, unicode_text, max_size=2),
    "tags": tags,
})
