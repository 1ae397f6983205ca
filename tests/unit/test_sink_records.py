"""What the sink makes of each Kafka record before any write: a line, or a dead letter with
its reason and original bytes (pure logic: no Kafka, no database)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plumbing.dead_letters import MAX_ORIGINAL_BYTES
from schemas.codec import default_codec
from sinks.batching import BatchingSink, Destination
from sinks.line_protocol import Dialect
from sinks.settings import InfluxDBSinkSettings, TDengineSinkSettings

TOPIC = "telemetry.enriched"


class NoDatabase(Destination):
    name = "influxdb"
    dialect = Dialect.INFLUXDB

    def write(self, batch: Sequence[str]) -> None:
        raise AssertionError("not used")


def enriched(**over: Any) -> bytes:
    record: dict[str, Any] = {
        "device_id": "dev-7",
        "ts_us": 1_763_701_200_000_001,
        "received_at_ms": 1_763_701_200_100,
        "seq": 3,
        "fields": {"temperature": 20.25},
        "units": {"temperature": "degC"},
        "tags": {"site": "s1"},
    }
    record.update(over)
    return default_codec().encode("EnrichedReading", record)


def sink() -> BatchingSink:
    return BatchingSink(InfluxDBSinkSettings(), NoDatabase())


def test_reading_becomes_a_line_and_its_offset_is_tracked() -> None:
    s = sink()
    s.add(TOPIC, 4, 17, b"dev-7", enriched())
    assert [p.line for p in s.batch.points] == [
        "telemetry,device_id=dev-7,site=s1 temperature=20.25,seq=3i 1763701200000001"
    ]
    assert s.batch.commit_offsets() == [(TOPIC, 4, 18)]
    assert s.batch.dead_letters == []


def test_junk_bytes_are_dead_lettered_as_undecodable() -> None:
    s = sink()
    junk = b"\x00\x01{not avro at all"
    s.add(TOPIC, 0, 5, b"dev-\xff", junk)
    [letter] = s.batch.dead_letters
    rec = letter.record
    assert rec["reason"] == "undecodable_record"
    assert rec["stage"] == "sink-influxdb"
    assert rec["original"] == junk and rec["original_format"] == "avro"
    assert rec["device_id"] == "dev-\ufffd" and rec["source_topic"] == TOPIC
    assert "C3 01" in rec["detail"]
    assert s.batch.commit_offsets() == [(TOPIC, 0, 6)] and s.batch.points == []


def test_record_of_another_schema_is_undecodable_and_says_which() -> None:
    raw = default_codec().encode(
        "RawReading",
        {"device_id": "d", "ts": None, "received_at_ms": 1, "seq": None, "metrics": []},
    )
    s = sink()
    s.add(TOPIC, 0, 0, b"d", raw)
    [letter] = s.batch.dead_letters
    assert letter.record["reason"] == "undecodable_record"
    assert "io.telemetry.RawReading" in letter.record["detail"]


def test_truncated_and_empty_records_are_undecodable() -> None:
    s = sink()
    good = enriched()
    s.add(TOPIC, 0, 0, None, good[:-3])
    s.add(TOPIC, 0, 1, None, None)
    s.add(TOPIC, 0, 2, None, b"")
    assert [d.record["reason"] for d in s.batch.dead_letters] == ["undecodable_record"] * 3
    assert [d.record["device_id"] for d in s.batch.dead_letters] == [None] * 3


def test_unrepresentable_reading_is_dead_lettered_with_avro_original_and_metric() -> None:
    s = sink()
    value = enriched(fields={"ok": 1.0, "odd\\,name": 2.0})
    s.add(TOPIC, 1, 9, b"dev-7", value)
    [letter] = s.batch.dead_letters
    rec = letter.record
    assert rec["reason"] == "database_rejected"
    assert rec["metric"] == "odd\\,name"
    assert rec["original"] == value and rec["original_format"] == "avro"
    assert rec["device_id"] == "dev-7"
    assert "odd number of backslashes" in rec["detail"]


def test_trailing_backslash_device_id_is_dead_lettered_not_written() -> None:
    s = sink()
    s.add(TOPIC, 1, 1, b"x", enriched(device_id="dev\\"))
    assert s.batch.points == []
    [letter] = s.batch.dead_letters
    assert "ends with a backslash" in letter.record["detail"]


def test_huge_original_is_cut_and_the_detail_says_so() -> None:
    s = sink()
    big = b"\xc3\x01" + b"\x00" * (MAX_ORIGINAL_BYTES + 50)
    s.add(TOPIC, 0, 0, None, big)
    [letter] = s.batch.dead_letters
    assert len(letter.record["original"]) == MAX_ORIGINAL_BYTES
    assert f"of {len(big)} bytes" in letter.record["detail"]


def test_tdengine_sink_uses_its_dialect_and_stage() -> None:
    class TD(NoDatabase):
        name = "tdengine"
        dialect = Dialect.TDENGINE

    s = BatchingSink(TDengineSinkSettings(), TD())
    s.add(TOPIC, 0, 0, b"a\\b", enriched(device_id="a\\b"))
    [letter] = s.batch.dead_letters
    assert letter.record["stage"] == "sink-tdengine"
    assert "TDengine" in letter.record["detail"]


def test_long_database_reasons_are_cut_to_fit_a_kafka_record() -> None:
    from plumbing.dead_letters import MAX_DETAIL_CHARS
    from plumbing.reasons import Reason

    letter = sink()._letter(Reason.DATABASE_REJECTED, "x" * 50_000, b"line", "line-protocol",
                            TOPIC, "dev-7")
    assert len(letter["detail"]) <= MAX_DETAIL_CHARS + 10
    assert letter["detail"].endswith("[...]")
