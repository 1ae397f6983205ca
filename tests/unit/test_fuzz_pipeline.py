"""Property test of the whole route in one process (tests/fuzz/pipeline.py): MQTT payload ->
ingest -> processors -> line encoder -> InfluxDB's parser. No crash, no injected point, the
dead letters bounded per input byte, and a good reading stored with exactly its values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plumbing.reasons import Reason
from tests.fuzz import strategies as fz
from tests.fuzz.pipeline import DEAD_LETTER_ALLOWANCE, RECEIVED_AT_MS, Outcome, Pipeline
from tests.fuzz.run import MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    pipeline = Pipeline()
    yield pipeline
    pipeline.close()


@given(st.lists(st.tuples(fz.topic, st.one_of(fz.telemetry_payload, fz.metadata_payload)),
                min_size=1, max_size=4))
def test_no_input_crashes_or_injects_a_point(
    pipeline: Pipeline, messages: list[tuple[str, bytes]]
) -> None:
    outcome = Outcome()
    for topic, payload in messages:
        pipeline.run(topic, payload, outcome)
    pipeline.flush(outcome)
    assert outcome.crashes == []
    assert outcome.injected == []
    assert set(outcome.rejects) <= {r.value for r in Reason}
    assert outcome.worst_dead_letter_ratio <= MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE
    assert outcome.dead_letter_bytes <= MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE * (
        outcome.input_bytes + DEAD_LETTER_ALLOWANCE * len(messages))


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.-", min_size=1, max_size=20)


@given(st.dictionaries(_names.map(lambda n: "x" + n),
                       st.floats(allow_nan=False, allow_infinity=False), min_size=1,
                       max_size=8),
       st.integers(RECEIVED_AT_MS - 600_000_000, RECEIVED_AT_MS + 299_000),
       st.integers(0, 2**63 - 1))
def test_a_good_reading_is_stored_with_exactly_its_values(
    pipeline: Pipeline, metrics: dict[str, float], ts: int, seq: int
) -> None:
    outcome = Outcome()
    payload = fz.dumps({"ts": ts, "seq": seq, "metrics": metrics}, ascii_only=True)
    pipeline.run("devices/dev-fuzz/telemetry", payload, outcome)
    assert outcome.crashes == [] and outcome.injected == [] and outcome.dead_letters == 0
    [point] = pipeline.points
    assert point.measurement == "telemetry"
    assert point.tags == (("device_id", "dev-fuzz"),)
    assert point.time_ns == ts * 1_000_000
    stored: dict[str, Any] = dict(point.fields)
    assert stored.pop("seq") == seq
    assert {k: repr(v) for k, v in stored.items()} == {k: repr(v) for k, v in metrics.items()}
