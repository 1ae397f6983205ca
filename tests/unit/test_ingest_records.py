"""One MQTT message -> the Kafka records ingest produces for it."""

from __future__ import annotations

import json

import pytest

from ingest.records import headers, records_for
from ingest.settings import IngestSettings
from plumbing.reasons import Reason
from plumbing.topics import DLQ, METADATA, RAW
from schemas.codec import default_codec

SETTINGS = IngestSettings(
    mqtt_telemetry_filter="devices/+/telemetry", mqtt_metadata_filter="devices/+/metadata",
    ingest_max_payload_bytes=256 * 1024, kafka_max_record_bytes=1_000_000,
)
codec = default_codec()


def test_a_batch_becomes_raw_readings_keyed_by_device() -> None:
    payload = b'[{"ts": 1, "metrics": {"a": 1}}, {"ts": 2, "metrics": {"b": 2.5}}]'
    kind, records = records_for("devices/d\u00fc1/telemetry", payload, SETTINGS, 99)
    assert kind == "telemetry"
    assert [(r.topic, r.key, r.kind) for r in records] == [(RAW, "dü1".encode(), "reading")] * 2
    decoded = [codec.decode(r.value) for r in records if r.value]
    assert decoded == [
        {"device_id": "dü1", "ts": 1, "received_at_ms": 99, "seq": None,
         "metrics": [{"name": "a", "value": 1, "unit": None}]},
        {"device_id": "dü1", "ts": 2, "received_at_ms": 99, "seq": None,
         "metrics": [{"name": "b", "value": 2.5, "unit": None}]},
    ]


def test_a_tag_key_that_is_a_lone_surrogate_is_refused_alone_and_listed_escaped() -> None:
    # Found by `make fuzz`: the refused key was listed as sent, Avro could not write it as
    # UTF-8, and records_for raised, so the service dead-lettered the whole message as an
    # internal error and the device's good tags were lost.
    payload = b'{"\\ud800": "x", "site": "berlin"}'
    kind, [record, letter_record] = records_for("devices/d1/metadata", payload, SETTINGS, 99)
    assert kind == "metadata" and record.value is not None
    assert codec.decode(record.value)["tags"] == {"site": "berlin"}
    assert letter_record.value is not None
    letter = codec.decode(letter_record.value)
    assert letter["reason"] == "invalid_tag"
    assert [m["metric"] for m in letter["rejected_metrics"]] == ["\\ud800"]
    assert letter["original"] == payload


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "device_id"),
    [
        ("devices/d1/telemetry", b"[]", Reason.INVALID_SHAPE, "d1"),
        ("devices/d1/telemetry", b"\xff", Reason.INVALID_JSON, "d1"),
        ("devices/d1/telemetry", b"x" * (256 * 1024 + 1), Reason.PAYLOAD_TOO_LARGE, "d1"),
        ("devices//telemetry", b"{}", Reason.INVALID_DEVICE_ID, None),
        ("devices/" + "x" * 129 + "/telemetry", b"{}", Reason.INVALID_DEVICE_ID, None),
        ("devices/a\u2028b/telemetry", b"{}", Reason.INVALID_DEVICE_ID, None),
        ("elsewhere/d1", b"{}", Reason.INVALID_DEVICE_ID, None),
    ],
)
def test_a_reject_is_one_dead_letter_with_the_original_bytes(
    topic: str, payload: bytes, reason: Reason, device_id: str | None
) -> None:
    kind, [record] = records_for(topic, payload, SETTINGS, 99)
    assert kind == "telemetry"
    assert record.topic == DLQ and record.kind == "dead_letter"
    assert record.key == (device_id.encode() if device_id else None)
    assert record.value is not None
    letter = codec.decode(record.value)
    assert letter["reason"] == reason.value
    assert letter["stage"] == "ingest"
    assert letter["original"] == payload
    assert letter["original_format"] == "json"
    assert letter["source_topic"] == topic
    assert letter["device_id"] == device_id
    assert letter["detail"]


def test_a_topic_that_is_not_utf8_is_rejected_and_shown_escaped() -> None:
    topic = b"devices/d\xff1/telemetry".decode("utf-8", "surrogateescape")
    _, [record] = records_for(topic, b"{}", SETTINGS, 99)
    assert record.value is not None
    letter = codec.decode(record.value)
    assert letter["reason"] == "invalid_device_id"
    assert letter["source_topic"] == "devices/d\\xff1/telemetry"


def test_a_reading_too_big_for_a_kafka_record_is_payload_too_large() -> None:
    settings = IngestSettings(ingest_max_payload_bytes=200_000, kafka_max_record_bytes=270_000)
    # Each 1e9 (4 bytes) comes back as 1000000000.0 (12 bytes) in the value's JSON text.
    payload = ('{"metrics": {"a": [' + ",".join(["1e9"] * 35_000) + "]}}").encode()
    assert len(payload) < 200_000
    _, [record] = records_for("devices/d1/telemetry", payload, settings, 99)
    assert record.value is not None
    letter = codec.decode(record.value)
    assert letter["reason"] == "payload_too_large"
    assert "Kafka record limit" in letter["detail"]


def test_metadata_becomes_device_metadata_and_empty_payload_a_tombstone() -> None:
    kind, [record] = records_for("devices/d1/metadata", b'{"site": "berlin"}', SETTINGS, 99)
    assert kind == "metadata"
    assert (record.topic, record.key, record.kind) == (METADATA, b"d1", "metadata")
    assert record.value is not None
    assert codec.decode(record.value) == {
        "device_id": "d1", "tags": {"site": "berlin"}, "updated_at_ms": 99, "source": "mqtt"}
    _, [tombstone] = records_for("devices/d1/metadata", b"", SETTINGS, 99)
    assert (tombstone.topic, tombstone.key, tombstone.value) == (METADATA, b"d1", None)


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "device_id"),
    [
        ("devices/d1/metadata", b'["floor", 3]', Reason.INVALID_METADATA, "d1"),
        ("devices/d1/metadata", b"not json", Reason.INVALID_METADATA, "d1"),
        ("devices/" + "€" * 43 + "/metadata", b"{}", Reason.INVALID_DEVICE_ID, None),
    ],
)
def test_bad_metadata_is_dead_lettered_at_stage_metadata(
    topic: str, payload: bytes, reason: Reason, device_id: str | None
) -> None:
    kind, [record] = records_for(topic, payload, SETTINGS, 99)
    assert kind == "metadata"
    assert record.topic == DLQ and record.value is not None
    letter = codec.decode(record.value)
    assert (letter["reason"], letter["stage"], letter["device_id"]) == (
        reason.value, "metadata", device_id)
    assert letter["original"] == payload


def test_a_bad_tag_is_refused_alone_and_the_other_tags_are_stored() -> None:
    payload = ('{"site": "berlin", "floor": 3, "rack": "r1\\\\", "room": "caf\u0065\u0301", '
               '"x": "a\u200bb"}')
    _, [metadata, letter_record] = records_for("devices/d1/metadata", payload.encode(), SETTINGS, 9)
    assert metadata.topic == METADATA and metadata.value is not None
    assert codec.decode(metadata.value)["tags"] == {"site": "berlin", "room": "caf\u00e9"}
    assert letter_record.topic == DLQ and letter_record.value is not None
    letter = codec.decode(letter_record.value)
    assert letter["stage"] == "metadata" and letter["original"] == payload.encode()
    assert [(r["metric"], r["reason"]) for r in letter["rejected_metrics"]] == [
        ("floor", "invalid_tag"), ("rack", "invalid_tag"), ("x", "invisible_character")]
    assert "3 of 5 tags refused" in letter["detail"]


def test_over_the_caps_a_message_is_one_dead_letter() -> None:
    many_readings = json.dumps([{"metrics": {"a": 1}}] * 11).encode()
    many_metrics = json.dumps({"metrics": {f"m{i}": 1 for i in range(6)}}).encode()
    many_tags = json.dumps({f"t{i}": "v" for i in range(4)}).encode()
    capped = SETTINGS.model_copy(update={
        "ingest_max_readings_per_message": 10, "ingest_max_metrics_per_reading": 5,
        "ingest_max_tags_per_device": 3})
    for topic, payload, reason in [
        ("devices/d1/telemetry", many_readings, Reason.TOO_MANY_READINGS),
        ("devices/d1/telemetry", many_metrics, Reason.TOO_MANY_METRICS),
        ("devices/d1/metadata", many_tags, Reason.TOO_MANY_TAGS),
    ]:
        _, [record] = records_for(topic, payload, capped, 9)
        assert record.topic == DLQ and record.value is not None
        letter = codec.decode(record.value)
        assert letter["reason"] == reason.value and letter["original"] == payload


def test_readings_without_metrics_share_one_dead_letter_and_the_rest_go_on() -> None:
    payload = json.dumps([{}] * 500 + [{"metrics": {"a": 1}}] + [{"metrics": {}}] * 10).encode()
    _, records = records_for("devices/d1/telemetry", payload, SETTINGS, 9)
    assert [r.kind for r in records] == ["reading", "dead_letter"]
    assert records[1].value is not None
    letter = codec.decode(records[1].value)
    assert letter["reason"] == "no_metrics" and letter["stage"] == "ingest"
    assert "510 of 511 readings have no metrics" in letter["detail"]
    assert letter["original"] == payload


def test_headers_carry_the_trace_id_and_ingest_time() -> None:
    assert headers("ab" * 16, 1763701200123) == [
        ("trace_id", b"ab" * 16), ("ingest_time_ms", b"1763701200123")]


def test_settings_reject_a_payload_limit_whose_dead_letters_would_not_fit_kafka() -> None:
    with pytest.raises(ValueError, match="must fit in kafka_max_record_bytes"):
        IngestSettings(ingest_max_payload_bytes=1_000_000, kafka_max_record_bytes=1_000_000)
    with pytest.raises(ValueError, match="needs a `\\+` level"):
        IngestSettings(mqtt_telemetry_filter="devices/all/telemetry")
    with pytest.raises(ValueError, match="without `\\$share"):
        IngestSettings(mqtt_telemetry_filter="$share/g/devices/+/telemetry")


def test_defaults_are_the_contract_topics() -> None:
    defaults = IngestSettings.model_fields
    assert defaults["mqtt_telemetry_filter"].default == "devices/+/telemetry"
    assert defaults["mqtt_metadata_filter"].default == "devices/+/metadata"
    assert defaults["ingest_max_payload_bytes"].default == 256 * 1024
    assert defaults["ingest_health_port"].default == 9101
