"""Every dead letter fits one Kafka record, whichever stage writes it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from plumbing.dead_letters import (
    MAX_ORIGINAL_BYTES,
    RejectedMetric,
    dead_letter,
    encode_dead_letter,
)
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


def test_rejected_metrics_and_trace_id_travel_in_the_v2_record() -> None:
    rejected = [RejectedMetric("temp", Reason.VALUE_NOT_A_NUMBER, "NaN is not a value")]
    record = dead_letter(Reason.VALUE_NOT_A_NUMBER, "1 metric rejected", "validate", b"x", "avro",
                         device_id="dev", rejected_metrics=rejected, trace_id="abc")
    _, _, value = encode_dead_letter(record)
    codec = default_codec()
    assert codec.writer_of(value).version == 2
    decoded = codec.decode(value)
    assert decoded["rejected_metrics"] == [
        {"metric": "temp", "reason": "value_not_a_number", "detail": "NaN is not a value"}]
    assert decoded["trace_id"] == "abc"


def test_a_v1_dead_letter_still_reads_with_an_empty_list() -> None:
    codec = default_codec()
    old = dead_letter(Reason.INVALID_JSON, "bad", "ingest", b"{nope", "json")
    v1 = {k: v for k, v in old.items() if k not in ("rejected_metrics", "trace_id")}
    decoded = codec.decode(codec.encode("DeadLetter", v1, version=1))
    assert decoded["rejected_metrics"] == [] and decoded["trace_id"] is None


def test_a_reading_with_huge_rejected_metric_list_still_fits_a_kafka_record() -> None:
    # 30,000 rejected metrics with long names and details: the list is cut, the count kept.
    rejected = [RejectedMetric("m" * 200 + str(i), Reason.VALUE_NOT_A_NUMBER, "d" * 2_000)
                for i in range(30_000)]
    record = dead_letter(Reason.VALUE_NOT_A_NUMBER, "many", "validate", b"y" * 2_000_000, "avro",
                         rejected_metrics=rejected)
    _, _, value = encode_dead_letter(record)
    assert len(value) < KAFKA_DEFAULT_MAX_RECORD
    decoded = default_codec().decode(value)
    assert 0 < len(decoded["rejected_metrics"]) < 30_000
    left_out = 30_000 - len(decoded["rejected_metrics"])
    assert f"{left_out} more rejected metrics not listed" in decoded["detail"]


def test_the_list_is_cut_by_bytes_so_any_script_fits_a_kafka_record() -> None:
    # 4 bytes of UTF-8 per character: a budget in characters would let the list reach 1 MB
    rejected = [RejectedMetric("\U0001f680" * 200 + str(i), Reason.INVISIBLE_CHARACTER,
                               "\U0001f680" * 2_000) for i in range(5_000)]
    record = dead_letter(Reason.INVISIBLE_CHARACTER, "many", "validate", b"y" * 2_000_000,
                         "avro", rejected_metrics=rejected)
    _, _, value = encode_dead_letter(record)
    assert len(value) < 1_000_000 - 1024  # the processors' producer limit, headers aside
    assert 0 < len(default_codec().decode(value)["rejected_metrics"]) < 5_000


def _count(stage: str, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "telemetry_rejected_total", {"stage": stage, "reason": reason}) or 0.0


def test_a_letter_counts_the_rejects_it_stands_for() -> None:
    listed = [RejectedMetric(f"m{i}", Reason.VALUE_NOT_A_NUMBER, "NaN") for i in range(3)]
    before = (_count("s1", "value_not_a_number"), _count("s1", "unknown_unit"),
              _count("s2", "unknown_unit"))
    dead_letter(Reason.UNKNOWN_UNIT, "summed up", "s1", b"x", "avro", rejected_metrics=listed)
    assert _count("s1", "value_not_a_number") - before[0] == 3  # the listed metrics
    assert _count("s1", "unknown_unit") == before[1]  # not the summary's reason
    dead_letter(Reason.UNKNOWN_UNIT, "summed up", "s1", b"x", "avro", rejected_metrics=listed,
                counted=[("s2", Reason.UNKNOWN_UNIT), ("s1", Reason.UNKNOWN_UNIT),
                         ("s2", Reason.UNKNOWN_UNIT)])
    assert _count("s2", "unknown_unit") - before[2] == 2
    assert _count("s1", "unknown_unit") - before[1] == 1
    assert _count("s1", "value_not_a_number") - before[0] == 3  # `counted` replaces the rest
