"""One dead letter per rejected reading, not per metric: every metric refused alone listed in
it with its reason, the reading's bytes once, every reject counted under its step and reason.

The handler is the `readings` agent's over the whole default step chain, as the worker runs it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faust
import pytest
from prometheus_client import REGISTRY

from plumbing.reasons import Reason
from plumbing.topics import DLQ, ENRICHED, RAW
from processors.agents.readings import chain_handler
from processors.chain import Chain
from processors.forwarder import Forwarder, Incoming, Output, Send
from processors.settings import ProcessorSettings
from processors.steps import Reject, Step, StepContext, StepResult
from processors.steps.validate import make_step as make_validate
from schemas.codec import default_codec

CODEC = default_codec()
RECEIVED = 1_763_701_200_000
SETTINGS = ProcessorSettings()


@pytest.fixture
def forwarder(tmp_path: Path) -> Forwarder:
    app = faust.App("unit-dead-letter", web_enabled=False, autodiscover=False,
                    datadir=str(tmp_path))  # not started: no Kafka involved

    def never(agent: str, exc: BaseException) -> None:
        raise AssertionError("no delivery in unit tests")

    return Forwarder(app, SETTINGS, never)


def encoded(metrics: list[tuple[str, Any]], seq: int | None = 7) -> bytes:
    """A RawReading as ingest writes it; values are (Avro branch, value) or a float."""
    return CODEC.encode("RawReading", {
        "device_id": "dev-1", "ts": ("long", RECEIVED - 1000), "received_at_ms": RECEIVED,
        "seq": None if seq is None else ("long", seq),
        "metrics": [
            {"name": name, "value": value if isinstance(value, tuple) else ("double", value),
             "unit": None}
            for name, value in metrics
        ],
    })


def handled(forwarder: Forwarder, value: bytes, chain: Chain | None = None) -> list[Output]:
    chain = chain or Chain.from_settings(SETTINGS, lambda device: {"site": "berlin"})
    handle = chain_handler(forwarder, chain)
    return list(handle(Incoming(RAW, 0, b"dev-1", value, CODEC.decode(value))))


def split(outputs: list[Output]) -> tuple[list[dict[str, Any]], list[tuple[Send, dict[str, Any]]]]:
    """(forwarded readings, (send, dead letter) pairs)."""
    sends = [o for o in outputs if isinstance(o, Send)]
    assert len(sends) == len(outputs)
    forwarded = [CODEC.decode(s.value) for s in sends if s.topic == ENRICHED and s.forwarded]
    letters = [(s, CODEC.decode(s.value)) for s in sends if s.topic == DLQ]
    assert len(forwarded) + len(letters) == len(sends)
    return forwarded, letters


def rejected(stage: str, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "telemetry_rejected_total", {"stage": stage, "reason": reason}) or 0.0


def test_a_thousand_bad_metric_names_make_one_dead_letter_and_the_good_metrics_go_on(
    forwarder: Forwarder,
) -> None:
    bad = [
        *((f"m{i}" + "\\" * (i % 7 * 2 + 1), 1.0) for i in range(400)),  # odd backslash runs
        *((f"m{i}\\,x", 1.0) for i in range(200)),  # an odd run before a separator
        *((f"m{i}\u202e", 1.0) for i in range(200)),  # a bidi control
        *((f"\ufeffm{i}", 1.0) for i in range(200)),  # a BOM
    ]
    good = [("temperature", 21.5), ("humidity", 40.0), ("pressure", 101.3), ("cafe\u0301", 3.0)]
    value = encoded([*bad[:500], *good, *bad[500:]])
    before = (rejected("validate", "invalid_metric_name"),
              rejected("validate", "invisible_character"))

    forwarded, letters = split(handled(forwarder, value))

    [reading] = forwarded
    assert set(reading["fields"]) == {"temperature", "humidity", "pressure", "caf\u00e9",
                                      "dew_point"}
    [(send, letter)] = letters
    assert len(send.value) < forwarder.max_record_bytes
    assert letter["original"] == value  # once, whole
    assert letter["stage"] == "validate" and letter["metric"] is None
    assert letter["reason"] == "invalid_metric_name"
    assert "1000 metrics refused alone" in letter["detail"]
    assert "invalid_metric_name x600" in letter["detail"]
    assert "invisible_character x400" in letter["detail"]
    assert "the rest of the reading went on" in letter["detail"]
    listed = letter["rejected_metrics"]
    assert [m["metric"] for m in listed] == [name for name, _ in bad]
    assert all(m["detail"] for m in listed)
    # every refused metric counted under its own reason
    assert rejected("validate", "invalid_metric_name") - before[0] == 600
    assert rejected("validate", "invisible_character") - before[1] == 400


def test_nan_everywhere_is_one_dead_letter_that_says_the_reading_went_no_further(
    forwarder: Forwarder,
) -> None:
    before = rejected("validate", "value_not_a_number")
    value = encoded([(f"m{i}", math.nan) for i in range(1000)], seq=None)
    forwarded, [(_, letter)] = split(handled(forwarder, value))
    assert forwarded == []
    assert len(letter["rejected_metrics"]) == 1000
    assert {m["reason"] for m in letter["rejected_metrics"]} == {"value_not_a_number"}
    assert "went no further" in letter["detail"]
    assert rejected("validate", "value_not_a_number") - before == 1000


def test_metrics_refused_by_several_steps_share_the_one_dead_letter(forwarder: Forwarder) -> None:
    before = rejected("normalize", "physically_impossible")
    value = CODEC.encode("RawReading", {
        "device_id": "dev-1", "ts": ("long", RECEIVED - 1000), "received_at_ms": RECEIVED,
        "seq": ("string", "x"),
        "metrics": [
            {"name": "temperature", "value": ("double", -500.0), "unit": "degC"},
            {"name": "humidity", "value": ("double", 40.0), "unit": None},
            {"name": "voltage", "value": ("boolean", True), "unit": "V"},
        ],
    })
    forwarded, [(_, letter)] = split(handled(forwarder, value))
    assert forwarded[0]["fields"] == {"humidity": 40.0} and forwarded[0]["seq"] is None
    assert letter["stage"] == "validate"
    assert [(m["metric"], m["reason"]) for m in letter["rejected_metrics"]] == [
        ("seq", "invalid_seq"), ("voltage", "value_not_a_number"),
        ("temperature", "physically_impossible")]
    assert letter["rejected_metrics"][2]["detail"].startswith("normalize: ")
    assert rejected("normalize", "physically_impossible") - before == 1


def test_a_reading_refused_whole_after_some_metrics_is_still_one_dead_letter(
    forwarder: Forwarder,
) -> None:
    def boom(reading: dict[str, Any]) -> StepResult:
        raise RuntimeError("a bug in a user's step")

    validate = make_validate_step()
    before = (rejected("validate", "value_not_a_number"), rejected("boom", "undecodable_record"))
    value = encoded([("a", math.nan), ("b", math.inf), ("temperature", 20.0)])
    forwarded, [(_, letter)] = split(
        handled(forwarder, value, Chain([("validate", validate), ("boom", boom)])))
    assert forwarded == []
    assert (letter["stage"], letter["reason"], letter["metric"]) == (
        "boom", "undecodable_record", None)
    assert "RuntimeError" in letter["detail"]
    assert "2 metrics were refused alone before, listed" in letter["detail"]
    assert [(m["metric"], m["reason"]) for m in letter["rejected_metrics"]] == [
        ("a", "value_not_a_number"), ("b", "value_not_a_number")]
    assert all(m["detail"].startswith("validate: ") for m in letter["rejected_metrics"])
    assert rejected("validate", "value_not_a_number") - before[0] == 2
    assert rejected("boom", "undecodable_record") - before[1] == 1


def make_validate_step() -> Step:
    return make_validate(StepContext(settings=SETTINGS, device_tags=lambda device: None))


def test_parts_of_a_split_reading_refused_whole_are_one_dead_letter(forwarder: Forwarder) -> None:
    def split_in_three(reading: dict[str, Any]) -> StepResult:
        return StepResult(records=[reading, reading, reading])

    def refuse(reading: dict[str, Any]) -> StepResult:
        return StepResult(rejects=[Reject(Reason.PHYSICALLY_IMPOSSIBLE, "not this part")])

    before = rejected("refuse", "physically_impossible")
    chain = Chain([("validate", make_validate_step()), ("split", split_in_three),
                   ("refuse", refuse)])
    forwarded, [(_, letter)] = split(handled(forwarder, encoded([("temperature", 1.0)]), chain))
    assert forwarded == []
    assert letter["reason"] == "physically_impossible" and letter["stage"] == "refuse"
    assert "2 more parts of the reading refused: physically_impossible x2" in letter["detail"]
    assert rejected("refuse", "physically_impossible") - before == 3


def test_the_worst_reading_still_makes_one_dead_letter_that_fits_a_kafka_record(
    forwarder: Forwarder,
) -> None:
    # 1,000 metrics (about 800 kB of Avro, what another producer could write to
    # telemetry.raw), named with 200 4-byte characters and a bidi control: the list is cut
    # to its budget in bytes, not characters, so original + list fit.
    names = [f"{i}" + "\U0001f680" * 200 + "\u202e" for i in range(1_000)]
    value = encoded([(name, 1.0) for name in names])
    assert 700_000 < len(value) < 1_000_000
    _, [(send, letter)] = split(handled(forwarder, value))
    assert len(send.value) < forwarder.max_record_bytes
    assert 0 < len(letter["rejected_metrics"]) < 1_000
    left_out = 1_000 - len(letter["rejected_metrics"])
    assert f"{left_out} more rejected metrics not listed" in letter["detail"]


def test_a_reading_without_rejects_has_no_dead_letter_and_counts_nothing(
    forwarder: Forwarder,
) -> None:
    total = sum(s.value for m in REGISTRY.collect() if m.name == "telemetry_rejected"
                for s in m.samples if s.name == "telemetry_rejected_total")
    outputs = handled(forwarder, encoded([("temperature", 20.0), ("humidity", 50.0),
                                          ("pressure", 101.3), ("voltage", 3.7)]))
    forwarded, letters = split(outputs)
    assert len(forwarded) == 1 and letters == []
    assert sum(s.value for m in REGISTRY.collect() if m.name == "telemetry_rejected"
               for s in m.samples if s.name == "telemetry_rejected_total") == total


@pytest.mark.parametrize("humidity", [5e-324, 1e-300, 0.001])
def test_a_tiny_humidity_is_a_valid_reading_without_a_dew_point(
    forwarder: Forwarder, humidity: float
) -> None:
    forwarded, letters = split(handled(forwarder, encoded([("temperature", 20.0),
                                                           ("humidity", humidity)])))
    assert letters == []
    [reading] = forwarded
    assert reading["fields"] == {"temperature": 20.0, "humidity": humidity}
