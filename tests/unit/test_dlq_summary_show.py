"""telemetry dlq summary and show: the counts and the decoded originals."""

from __future__ import annotations

import json

from dlq.letters import decode_letter
from dlq.show import decoded_original, letter_json
from dlq.summary import Summary
from plumbing.reasons import Reason
from schemas.codec import default_codec
from tests.unit.test_dlq_selection import NOW, letter

RAW = {"device_id": "pump-1", "ts": NOW, "received_at_ms": NOW + 3, "seq": 4,
       "metrics": [{"name": "temperature", "value": 500.0, "unit": "degR"}]}


def test_summary_counts_each_letter_once_per_table() -> None:
    summary = Summary()
    for i, (reason, stage, device, at) in enumerate([
        (Reason.UNKNOWN_UNIT, "normalize", "pump-1", NOW),
        (Reason.UNKNOWN_UNIT, "normalize", "pump-2", NOW + 1),
        (Reason.INVALID_JSON, "ingest", None, NOW + 3_600_000),
    ]):
        summary.add(letter(i, reason=reason, stage=stage, device_id=device, rejected_at_ms=at))
    summary.add(decode_letter("telemetry.dlq", 0, 9, NOW + 2, None, b"junk"))
    data = summary.as_dict()
    assert data["total"] == 4
    assert data["by_reason"] == {"unknown_unit": 2, "invalid_json": 1, "(unreadable)": 1}
    assert data["by_stage"] == {"normalize": 2, "ingest": 1, "(unreadable)": 1}
    assert data["by_device"] == {"pump-1": 1, "pump-2": 1, "(none)": 1, "(unreadable)": 1}
    assert data["by_hour"] == {"2025-12-03T07:00Z": 3, "2025-12-03T08:00Z": 1}
    assert data["first"] == "2025-12-03T07:00:00.000Z"
    assert data["last"] == "2025-12-03T08:00:00.000Z"
    assert summary.as_dict(top=1)["by_device"] == {"pump-1": 1, "(others)": 3}
    text = summary.render()
    assert text.startswith("4 dead letters, 2025-12-03T07:00:00.000Z .. ")
    assert "  unknown_unit  " in text and "by hour" in text
    assert Summary().render() == "no dead letters\n"


def test_show_decodes_avro_originals_with_the_codec() -> None:
    raw = default_codec().encode("RawReading", RAW)
    out = letter_json(letter(original=raw))
    assert out["dlq"] == "telemetry.dlq/3/7"
    assert out["reason"] == "unknown_unit" and out["stage"] == "normalize"
    assert out["rejected_at"] == "2025-12-03T07:00:00.000Z"
    assert out["original"] == RAW
    json.dumps(out)  # JSON all the way down


def test_show_gives_json_text_as_text_and_other_bytes_as_base64() -> None:
    assert decoded_original(b'{"ts": 1}', "json") == {"original": '{"ts": 1}'}
    assert decoded_original(b"\xff\xfe{}", "json")["original_base64"] == "//57fQ=="
    junk = decoded_original(b"\xc3\x01nope", "avro")
    assert "original_base64" in junk and "original_error" in junk
    lp = decoded_original(b"telemetry,device_id=a x=1 1", "line-protocol")
    assert lp == {"original": "telemetry,device_id=a x=1 1"}


def test_show_says_when_a_record_is_not_a_dead_letter() -> None:
    out = letter_json(decode_letter("telemetry.dlq", 1, 2, NOW, b"dev", b"junk"))
    assert out["dlq"] == "telemetry.dlq/1/2"
    assert out["error"].startswith("unreadable dead letter")
    assert out["key"] == "dev"
