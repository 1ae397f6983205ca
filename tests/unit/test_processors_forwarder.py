"""What one Kafka message becomes in the agent loop: outputs and dead letters, never a crash.

The handler is the `readings` agent's: the whole default step chain, one hop."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import pytest

from plumbing.dead_letters import MAX_ORIGINAL_BYTES
from plumbing.reasons import Reason
from plumbing.topics import DLQ, ENRICHED, RAW
from processors.agents.readings import chain_handler
from processors.chain import Chain
from processors.forwarder import Forwarder, Handler, Incoming, Send
from processors.settings import ProcessorSettings
from processors.steps import StepResult
from schemas.codec import default_codec

CODEC = default_codec()
RECEIVED = 1_763_701_200_000


@dataclass
class Message:
    """The fields of a Faust message the loop reads."""

    value: bytes | None
    key: bytes | None = b"dev-1"
    topic: str = RAW
    partition: int = 3
    offset: int = 17
    headers: list[tuple[str, bytes]] = field(default_factory=lambda: [("trace_id", b"t-1")])


SETTINGS = ProcessorSettings()
TAGS = {"dev-1": {"site": "berlin", "serial": "not allow-listed"}}


@pytest.fixture
def pipeline(tmp_path: Path) -> Forwarder:
    app = faust.App("unit-pipeline", web_enabled=False, autodiscover=False,
                    datadir=str(tmp_path))  # not started: no Kafka involved

    def never(agent: str, exc: BaseException) -> None:
        raise AssertionError("no delivery in unit tests")

    return Forwarder(app, SETTINGS, never)


def chain_of(forwarder: Forwarder, *steps: Any) -> Handler:
    """The default chain's handler, or one of the given (name, step) pairs."""
    chain = Chain(list(steps)) if steps else Chain.from_settings(SETTINGS, TAGS.get)
    return chain_handler(forwarder, chain)


def raw_reading(device_id: str = "dev-1") -> bytes:
    return CODEC.encode(
        "RawReading",
        {
            "device_id": device_id,
            "ts": ("long", RECEIVED - 1000),
            "received_at_ms": RECEIVED,
            "seq": ("string", "1.5"),
            "metrics": [
                {"name": "temperature", "value": ("double", 20.5), "unit": "degC"},
                {"name": "flag", "value": ("boolean", True), "unit": None},
            ],
        },
    )


def dead(send: Any) -> dict[str, Any]:
    assert isinstance(send, Send) and send.topic == DLQ and not send.forwarded
    return CODEC.decode(send.value)


def test_a_reading_is_forwarded_and_its_rejects_dead_lettered(pipeline: Forwarder) -> None:
    handle = chain_of(pipeline)
    value = raw_reading()
    outputs = pipeline.outputs_for(Message(value), "validate", "RawReading", handle)
    forwarded = [o for o in outputs if isinstance(o, Send) and o.forwarded]
    assert [(o.topic, o.key) for o in forwarded] == [(ENRICHED, b"dev-1")]
    reading = CODEC.decode(forwarded[0].value)
    assert reading["fields"] == {"temperature": 20.5}
    assert reading["tags"] == {"site": "berlin"}
    # one dead letter for the reading, listing what was refused alone
    [letter] = [dead(o) for o in outputs if o not in forwarded]
    assert [(m["metric"], m["reason"]) for m in letter["rejected_metrics"]] == [
        ("seq", "invalid_seq"),
        ("flag", "value_not_a_number"),
    ]
    assert (letter["reason"], letter["metric"]) == ("invalid_seq", None)
    assert "2 metrics refused alone" in letter["detail"]
    assert "went on" in letter["detail"]
    assert letter["original"] == value
    assert letter["original_format"] == "avro"
    assert letter["stage"] == "validate"
    assert letter["source_topic"] == RAW
    assert letter["device_id"] == "dev-1"
    assert letter["trace_id"] == "t-1"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"", "not Avro"),
        (b"junk", "not Avro"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown writer schema"),
        (b"\xc3\x01" + bytes(range(200)), "unknown writer schema"),
        (None, "tombstone"),
    ],
)
def test_records_that_do_not_decode_become_dead_letters(
    pipeline: Forwarder, value: bytes | None, why: str
) -> None:
    handle = chain_of(pipeline)
    [output] = pipeline.outputs_for(Message(value), "validate", "RawReading", handle)
    letter = dead(output)
    assert letter["reason"] == Reason.UNDECODABLE_RECORD.value
    assert why in letter["detail"]
    assert letter["original"] == (value or b"")
    assert letter["device_id"] == "dev-1"  # from the key


def test_a_record_of_another_type_is_undecodable(pipeline: Forwarder) -> None:
    other = CODEC.encode("DeviceMetadata", {"device_id": "dev-1", "tags": {},
                                            "updated_at_ms": 1, "source": "file"})
    handle = chain_of(pipeline)
    [output] = pipeline.outputs_for(Message(other), "validate", "RawReading", handle)
    letter = dead(output)
    assert letter["reason"] == "undecodable_record"
    assert "DeviceMetadata" in letter["detail"] and "RawReading" in letter["detail"]


def test_a_corrupt_body_is_undecodable(pipeline: Forwarder) -> None:
    value = raw_reading()
    handle = chain_of(pipeline)
    [output] = pipeline.outputs_for(Message(value[:14]), "validate", "RawReading", handle)
    assert dead(output)["reason"] == "undecodable_record"


def test_a_failing_step_dead_letters_the_record_instead_of_crashing(pipeline: Forwarder) -> None:
    def broken(record: dict[str, Any]) -> StepResult:
        raise ZeroDivisionError("bug")

    handle = chain_of(pipeline, ("validate", broken))
    [output] = pipeline.outputs_for(Message(raw_reading()), "validate", "RawReading", handle)
    letter = dead(output)
    assert letter["reason"] == "undecodable_record"
    assert "ZeroDivisionError" in letter["detail"] and "report" in letter["detail"]


def test_non_utf8_key_gives_a_dead_letter_without_device_id(pipeline: Forwarder) -> None:
    handle = chain_of(pipeline)
    [output] = pipeline.outputs_for(Message(b"junk", key=b"\xff\xfe"), "validate",
                                    "RawReading", handle)
    letter = dead(output)
    assert letter["device_id"] is None
    assert isinstance(output, Send) and output.key is None


def test_a_huge_original_is_cut_and_the_detail_says_so(pipeline: Forwarder) -> None:
    huge = b"x" * (MAX_ORIGINAL_BYTES + 10)
    handle = chain_of(pipeline)
    [output] = pipeline.outputs_for(Message(huge), "validate", "RawReading", handle)
    letter = dead(output)
    assert letter["original"] == huge[:MAX_ORIGINAL_BYTES]
    assert f"of {len(huge)} bytes" in letter["detail"]


def test_tombstones_reach_handlers_that_ask_for_them(pipeline: Forwarder) -> None:
    seen: list[Incoming] = []

    def handle(incoming: Incoming) -> list[Any]:
        seen.append(incoming)
        return []

    assert pipeline.outputs_for(Message(None, topic="devices.metadata"), "enrich",
                                "DeviceMetadata", handle, tombstones=True) == []
    assert [(i.record, i.key, i.partition) for i in seen] == [(None, b"dev-1", 3)]


def test_forwarded_records_are_keyed_by_device_id_whatever_the_input_key(
    pipeline: Forwarder,
) -> None:
    handle = chain_of(pipeline)
    for key in (None, b"some-other-key"):
        outputs = pipeline.outputs_for(Message(raw_reading("dev-9"), key=key), "validate",
                                       "RawReading", handle)
        [forwarded] = [o for o in outputs if isinstance(o, Send) and o.forwarded]
        assert forwarded.key == b"dev-9"


@pytest.mark.parametrize(
    "given",
    [
        [("trace_id", b"t-1"), ("ingest_time_ms", b"17"), ("processor", b"old/validate"),
         ("empty", None)],
        {"trace_id": b"t-1", "ingest_time_ms": b"17", "processor": b"old/validate",
         "empty": None},
    ],
)
def test_output_headers_keep_the_trace_and_name_this_processor(
    pipeline: Forwarder, given: Any
) -> None:
    message = Message(b"", headers=given)
    assert pipeline.output_headers(message, "readings") == [
        ("trace_id", b"t-1"),
        ("ingest_time_ms", b"17"),
        ("empty", b""),
        ("processor", b"unit-pipeline/readings"),
    ]


def test_every_step_of_the_chain_runs_once_and_dead_letters_name_their_step(
    pipeline: Forwarder,
) -> None:
    value = CODEC.encode("RawReading", {
        "device_id": "dev-1", "ts": ("long", RECEIVED - 1000), "received_at_ms": RECEIVED,
        "seq": ("long", 7),
        "metrics": [
            {"name": "temperature", "value": ("double", 68.0), "unit": "degF"},
            {"name": "humidity", "value": ("double", 50.0), "unit": None},
            {"name": "pressure", "value": ("double", 1.0), "unit": "furlong"},
            {"name": "bad", "value": ("string", "x"), "unit": None},
        ],
    })
    outputs = chain_of(pipeline)(Incoming(RAW, 0, b"dev-1", value, CODEC.decode(value)))
    [forwarded] = [o for o in outputs if isinstance(o, Send) and o.forwarded]
    reading = CODEC.decode(forwarded.value)
    assert reading["fields"]["temperature"] == pytest.approx(20.0)
    assert reading["fields"]["dew_point"] == pytest.approx(9.3, abs=0.1)
    assert reading["units"]["dew_point"] == "degC" and reading["seq"] == 7
    assert "pressure" not in reading["fields"] and "bad" not in reading["fields"]
    [letter] = [dead(o) for o in outputs if o is not forwarded]
    assert (letter["stage"], letter["reason"]) == ("validate", "value_not_a_number")
    listed = {m["metric"]: m for m in letter["rejected_metrics"]}
    assert {name: m["reason"] for name, m in listed.items()} == {
        "bad": "value_not_a_number", "pressure": "unknown_unit"}
    # a metric refused by another step than the letter's says which
    assert listed["pressure"]["detail"].startswith("normalize: ")
    assert not listed["bad"]["detail"].startswith("validate: ")


def test_a_step_returning_something_that_is_not_a_reading_is_dead_lettered(
    pipeline: Forwarder,
) -> None:
    def validate(raw: dict[str, Any]) -> StepResult:
        return StepResult(records=[{"device_id": "dev-1", "oops": True}])

    [output] = chain_of(pipeline, ("validate", validate))(
        Incoming(RAW, 0, b"dev-1", raw_reading(), CODEC.decode(raw_reading())))
    letter = dead(output)
    assert letter["reason"] == "undecodable_record" and "EnrichedReading" in letter["detail"]
