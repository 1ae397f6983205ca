"""Every dead letter fits one Kafka record, whichever stage writes it."""

from __future__ import annotations

from plumbing.dead_letters import MAX_ORIGINAL_BYTES, dead_letter, encode_dead_letter
from plumbing.reasons import Reason
from schemas.codec import default_codec

KAFKA_DEFAULT_MAX_RECORD = 1_048_576


def test_a_huge_rejected_payload_is_cut_to_fit_a_kafka_record() -> None:
    # An MQTT payload of 2 MB is rejected whole at ingest; its dead letter must still be
    # producible, or the message would come back forever.
    huge = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
    record = dead_letter(Reason.PAYLOAD_TOO_LARGE, "d" * 100_000, "ingest", huge, "json",
                         device_id="dev", source_topic="devices/dev/telemetry")
    _, key, value = encode_dead_letter(record)
    assert len(value) < KAFKA_DEFAULT_MAX_RECORD
    decoded = default_codec().decode(value)
    assert decoded["original"] == huge[:MAX_ORIGINAL_BYTES]
    assert f"of {len(huge)} bytes" in decoded["detail"]
    assert key == b"dev"


def test_a_small_original_travels_whole() -> None:
    record = dead_letter(Reason.INVALID_JSON, "bad", "ingest", b"{nope", "json")
    assert record["original"] == b"{nope"
    assert record["detail"] == "bad"
