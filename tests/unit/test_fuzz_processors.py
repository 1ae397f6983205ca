"""Property tests of the processors' step chain (validate, normalize, enrich, dew_point) as the
`readings` agent runs it (Forwarder.outputs_for over chain_handler, no Kafka): any record on
telemetry.raw is forwarded, dead-lettered with a documented reason, or both, never raises
and never takes the "step failed" path; a good reading keeps its values."""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.raw_avro import encode_raw_reading
from plumbing.reasons import Reason
from plumbing.topics import DLQ, ENRICHED, RAW
from processors.agents.readings import READS, chain_handler
from processors.chain import Chain
from processors.forwarder import Forwarder, Send
from processors.settings import ProcessorSettings
from schemas.codec import default_codec
from tests.fuzz import strategies as fz
from tests.fuzz.pipeline import RECEIVED_AT_MS

CODEC = default_codec()
SETTINGS = ProcessorSettings(process_tag_allow_list=["*"])
TAGS = {"site": "a b,c=d\\x", "area": "caf\u00e9"}


class _Message:
    def __init__(self, value: bytes) -> None:
        self.topic, self.partition, self.offset = RAW, 0, 0
        self.key, self.value, self.headers = b"dev-1", value, None


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = faust.App("unit-fuzz-processors", web_enabled=False, autodiscover=False,
                    datadir=str(tmp_path_factory.mktemp("faust")))

    def never(agent: str, exc: BaseException) -> None:
        raise AssertionError("no delivery in unit tests")

    forwarder = Forwarder(app, SETTINGS, never)
    chain = Chain.from_settings(SETTINGS, lambda device: TAGS)
    handle = chain_handler(forwarder, chain)
    failures: list[logging.LogRecord] = []

    class Failures(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            failures.append(record)

    handler = Failures(logging.ERROR)
    logging.getLogger("processors").addHandler(handler)

    def run(value: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        outputs = forwarder.outputs_for(_Message(value), chain.names[0], READS, handle)
        assert not failures, [f.getMessage() for f in failures]
        forwarded, letters = [], []
        for output in outputs:
            assert isinstance(output, Send)
            if output.topic == ENRICHED:
                forwarded.append(CODEC.decode(output.value, reader="EnrichedReading"))
            else:
                assert output.topic == DLQ
                letters.append(CODEC.decode(output.value, reader="DeadLetter"))
        return forwarded, letters

    yield run
    logging.getLogger("processors").removeHandler(handler)


@given(fz.raw_reading)
def test_any_raw_reading_is_forwarded_or_dead_lettered_with_a_documented_reason(
    agent: Any, record: dict[str, Any]
) -> None:
    value = encode_raw_reading(record)
    forwarded, letters = agent(value)
    assert len(letters) <= 1
    assert forwarded or letters
    for letter in letters:
        assert letter["reason"] in set(Reason)
        assert letter["original"] == value
        assert all(m["reason"] in set(Reason) for m in letter["rejected_metrics"])
        assert len(letter["rejected_metrics"]) <= len(record["metrics"]) + 1  # + seq
    for reading in forwarded:
        assert reading["device_id"] == record["device_id"]
        assert reading["fields"] or reading["seq"] is not None
        for name, value_ in reading["fields"].items():
            assert math.isfinite(value_)
            assert unicodedata.is_normalized("NFC", name)
        assert reading["tags"] == TAGS


@given(st.binary(max_size=200))
def test_bytes_that_are_not_a_raw_reading_are_one_undecodable_record(
    agent: Any, data: bytes
) -> None:
    forwarded, letters = agent(data)
    if forwarded:  # rare, but these bytes can be a RawReading
        return
    [letter] = letters
    assert letter["reason"] in set(Reason)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.-", min_size=1, max_size=20)
_unknown_names = _names.map(lambda n: "x" + n)  # not in the unit catalog: passed unchanged


@given(st.dictionaries(_unknown_names, st.floats(allow_nan=False, allow_infinity=False),
                       min_size=1, max_size=8),
       st.integers(RECEIVED_AT_MS - 600_000_000, RECEIVED_AT_MS + 299_000),
       st.one_of(st.none(), fz.INT64))
def test_a_good_reading_keeps_its_values_its_time_and_its_seq(
    agent: Any, metrics: dict[str, float], ts: int, seq: int | None
) -> None:
    value = encode_raw_reading({
        "device_id": "dev-1", "ts": ts, "received_at_ms": RECEIVED_AT_MS, "seq": seq,
        "metrics": [{"name": n, "value": v, "unit": None} for n, v in metrics.items()]})
    [reading], letters = agent(value)
    assert letters == []
    assert reading["ts_us"] == ts * 1000 and reading["seq"] == seq
    assert {n: repr(v) for n, v in reading["fields"].items()} == {
        n: repr(v) for n, v in metrics.items()}


@given(st.floats(-45, 60), st.floats(0, 100, exclude_min=True))
def test_dew_point_is_added_only_where_it_is_finite_and_never_above_the_air(
    agent: Any, temperature: float, humidity: float
) -> None:
    value = encode_raw_reading({
        "device_id": "dev-1", "ts": RECEIVED_AT_MS, "received_at_ms": RECEIVED_AT_MS,
        "seq": None, "metrics": [{"name": "temperature", "value": temperature, "unit": "degC"},
                                 {"name": "humidity", "value": humidity, "unit": "percent"}]})
    [reading], letters = agent(value)
    assert letters == []
    dew = reading["fields"].get("dew_point")
    if dew is not None:
        assert math.isfinite(dew) and dew <= temperature + 1e-9
