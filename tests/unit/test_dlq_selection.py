"""telemetry dlq: --since/--until values, the letter filter, and where each letter goes back."""

from __future__ import annotations

from typing import Any

import pytest

from dlq.destinations import Destination, NotReplayable, destination_of
from dlq.filters import LetterFilter
from dlq.letters import StoredLetter, decode_letter
from dlq.moments import duration_ms, hour_of, iso_ms, moment_ms
from plumbing.dead_letters import RejectedMetric, dead_letter, encode_dead_letter
from plumbing.reasons import Reason
from schemas.codec import default_codec

NOW = 1_764_745_200_000  # 2025-12-03T07:00:00Z


def letter(offset: int = 7, **fields: Any) -> StoredLetter:
    """A dead letter as plumbing.dead_letters writes it, read back from its Kafka bytes."""
    args: dict[str, Any] = {
        "reason": Reason.UNKNOWN_UNIT, "detail": "unit 'degR' of temperature is not known",
        "stage": "normalize", "original": b"\xc3\x01raw", "original_format": "avro",
        "device_id": "pump-1", "source_topic": "telemetry.raw",
    }
    rejected_at = fields.pop("rejected_at_ms", NOW)
    args.update(fields)
    record = dead_letter(**args)
    record["rejected_at_ms"] = rejected_at
    _, key, value = encode_dead_letter(record)
    return decode_letter("telemetry.dlq", 3, offset, rejected_at + 5, key, value)


def test_durations_count_back_from_now() -> None:
    assert duration_ms("90s") == 90_000
    assert duration_ms("1h30m") == 5_400_000
    assert duration_ms("7d") == 7 * 86_400_000
    assert duration_ms("2026-12-03") is None
    assert duration_ms("") is None
    assert moment_ms("15m", NOW) == NOW - 900_000


def test_timestamps_are_utc_unless_they_say_and_digits_are_epoch_ms() -> None:
    assert moment_ms("2025-12-03T07:00:00Z", 0) == NOW
    assert moment_ms("2025-12-03T07:00:00", 0) == NOW
    assert moment_ms("2025-12-03T08:00:00+01:00", 0) == NOW
    assert moment_ms(str(NOW), 0) == NOW
    with pytest.raises(ValueError, match="not a duration"):
        moment_ms("yesterday", NOW)
    assert iso_ms(NOW + 5) == "2025-12-03T07:00:00.005Z"
    assert hour_of(NOW + 3_599_999) == "2025-12-03T07:00Z"


def test_filter_fields_are_anded_and_values_ored() -> None:
    one = letter()
    assert LetterFilter().matches(one)
    assert LetterFilter(reasons=frozenset({"unknown_unit", "invalid_json"})).matches(one)
    assert not LetterFilter(reasons=frozenset({"invalid_json"})).matches(one)
    assert LetterFilter(stages=frozenset({"normalize"}), devices=("pump-*",)).matches(one)
    assert not LetterFilter(stages=frozenset({"normalize"}), devices=("fan-*",)).matches(one)
    # a pattern matches the whole id, not a part of it
    assert not LetterFilter(devices=("pump",)).matches(one)
    assert LetterFilter(devices=("fan-*", "pump-1")).matches(one)


def test_time_bounds_are_inclusive_on_rejected_at() -> None:
    one = letter(rejected_at_ms=NOW)
    assert LetterFilter(since_ms=NOW, until_ms=NOW).matches(one)
    assert not LetterFilter(since_ms=NOW + 1).matches(one)
    assert not LetterFilter(until_ms=NOW - 1).matches(one)


def test_reason_matches_a_listed_metric_and_device_filter_skips_letters_without_one() -> None:
    listed = letter(reason=Reason.INVALID_TAG, rejected_metrics=[
        RejectedMetric("site", Reason.INVALID_TAG, "empty"),
        RejectedMetric("x" * 300, Reason.TAG_TOO_LONG, "long")])
    assert LetterFilter(reasons=frozenset({"tag_too_long"})).matches(listed)
    anonymous = letter(device_id=None)
    assert not LetterFilter(devices=("*",)).matches(anonymous)
    assert LetterFilter(reasons=frozenset({"unknown_unit"})).matches(anonymous)


def test_an_unreadable_record_is_selected_only_by_time() -> None:
    junk = decode_letter("telemetry.dlq", 0, 1, NOW, b"k", b"not avro")
    assert junk.record is None and junk.error
    assert LetterFilter(since_ms=NOW - 1).matches(junk)
    assert not LetterFilter(reasons=frozenset({"invalid_json"})).matches(junk)


def test_mqtt_payloads_go_back_to_their_mqtt_topic() -> None:
    one = letter(stage="ingest", original=b'{"ts": 1}', original_format="json",
                 source_topic="devices/pump-1/telemetry", reason=Reason.TOO_MANY_METRICS)
    assert destination_of(one) == Destination("mqtt", "devices/pump-1/telemetry", None,
                                              b'{"ts": 1}')
    meta = letter(stage="metadata", original=b"{}", original_format="json",
                  source_topic="devices/pump-1/metadata", reason=Reason.INVALID_TAG)
    dest = destination_of(meta, metadata_retained=True)
    assert isinstance(dest, Destination) and dest.retain
    assert dest.label == "mqtt:devices/+/metadata"
    assert not destination_of(meta).retain  # type: ignore[union-attr]


def test_kafka_records_go_back_to_their_topic_keyed_by_device() -> None:
    dest = destination_of(letter())
    assert dest == Destination("kafka", "telemetry.raw", b"pump-1", b"\xc3\x01raw")
    assert dest.label == "kafka:telemetry.raw"


@pytest.mark.parametrize(("fields", "why"), [
    ({"original": b"", "reason": Reason.UNDECODABLE_RECORD}, "empty original"),
    ({"source_topic": None}, "no source topic"),
    ({"original": b"telemetry,device_id=a x=1 1", "original_format": "line-protocol",
      "stage": "sink-influxdb", "reason": Reason.DATABASE_REJECTED}, "database refused"),
    ({"original": b"{}", "original_format": "json", "stage": "ingest",
      "source_topic": "devices/+/telemetry"}, "not one a client can publish"),
    ({"original": b"x" * (512 * 1024 + 1), "original_format": "json", "stage": "ingest",
      "source_topic": "devices/a/telemetry"}, "cut"),
])
def test_what_cannot_go_back_says_why(fields: dict[str, Any], why: str) -> None:
    dest = destination_of(letter(**fields))
    assert isinstance(dest, NotReplayable)
    assert why in dest.why


def test_unreadable_letters_are_not_replayable() -> None:
    junk = decode_letter("telemetry.dlq", 0, 1, NOW, None, default_codec().encode(
        "DeviceMetadata", {"device_id": "a", "tags": {}, "source": "file",
                           "updated_at_ms": 1}))
    assert junk.record is None
    assert isinstance(destination_of(junk), NotReplayable)
