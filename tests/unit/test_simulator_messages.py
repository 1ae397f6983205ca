"""The simulator's messages, checked against an independent reading of the data contract.

The oracle below re-implements the contract's accept/reject rules from DESIGN.md without using
the simulator's own tables, so a wrong expectation in the generator cannot cancel itself out.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import pytest

from loadtest.messages import BAD_CYCLE, METADATA, MessageGenerator, OutboundMessage
from loadtest.send_tally import SendTally

NOW_S = 1_763_701_200.0
LIMIT_BYTES = 256 * 1024
DAY_MS = 86_400_000

# unit -> (dimension, to canonical)
UNITS: dict[str, tuple[str, Any]] = {
    "degC": ("temperature", lambda v: v),
    "degF": ("temperature", lambda v: (v - 32) / 1.8),
    "K": ("temperature", lambda v: v - 273.15),
    "percent": ("humidity", lambda v: v),
    "kPa": ("pressure", lambda v: v),
    "Pa": ("pressure", lambda v: v / 1000),
    "hPa": ("pressure", lambda v: v / 10),
    "bar": ("pressure", lambda v: v * 100),
    "psi": ("pressure", lambda v: v * 6.894757),
    "V": ("voltage", lambda v: v),
    "mV": ("voltage", lambda v: v / 1000),
    "A": ("current", lambda v: v),
    "mA": ("current", lambda v: v / 1000),
    "W": ("power", lambda v: v),
    "kW": ("power", lambda v: v * 1000),
    "kWh": ("energy", lambda v: v),
    "Wh": ("energy", lambda v: v / 1000),
    "m/s": ("speed", lambda v: v),
    "km/h": ("speed", lambda v: v / 3.6),
    "mph": ("speed", lambda v: v * 0.44704),
}
CATALOG = {"temperature", "humidity", "pressure", "voltage", "current", "power", "energy", "speed"}


class FakeClock:
    """Advances 3 ms per reading of the clock: deterministic, and time still moves."""

    def __init__(self) -> None:
        self.t = NOW_S

    def __call__(self) -> float:
        self.t += 0.003
        return self.t


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def ts_problem(ts: Any, now_ms: int) -> str | None:
    if isinstance(ts, bool):
        return "invalid_timestamp"
    if isinstance(ts, int):
        ms = ts
    elif isinstance(ts, str):
        try:
            ms = int(datetime.fromisoformat(ts).timestamp() * 1000)
        except ValueError:
            return "invalid_timestamp"
        if datetime.fromisoformat(ts).tzinfo is None:
            return "invalid_timestamp"
    else:
        return "invalid_timestamp"
    if ms > now_ms + 5 * 60_000:
        return "timestamp_in_future"
    if ms < now_ms - 7 * DAY_MS:
        return "timestamp_too_old"
    return None


def metric_problem(name: str, value: Any) -> str | None:
    unit = None
    if isinstance(value, dict):
        unit, value = value.get("unit"), value.get("value")
    if not is_number(value):
        return "value_not_a_number"
    if unit is None:
        canonical = float(value)
    else:
        if unit not in UNITS:
            return "unknown_unit"
        dimension, convert = UNITS[unit]
        if name in CATALOG and dimension != name:
            return "wrong_dimension"
        canonical = convert(float(value))
    if name == "temperature" and canonical < -273.15:
        return "physically_impossible"
    if name == "humidity" and not 0 <= canonical <= 100:
        return "physically_impossible"
    return None


def oracle(topic: str, payload: bytes, now_ms: int) -> tuple[list[str], int, list[int]]:
    """(reject reasons, readings stored, seqs stored) per the contract."""
    _, device_id, leaf = topic.split("/")
    if leaf == "metadata":
        try:
            tags = json.loads(payload)
        except ValueError:
            return ["invalid_metadata"], 0, []
        ok = isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
        return ([] if ok else ["invalid_metadata"]), 0, []
    raw_id = device_id.encode()
    if not 1 <= len(raw_id) <= 128 or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in device_id):
        return ["invalid_device_id"], 0, []
    if len(payload) > LIMIT_BYTES:
        return ["payload_too_large"], 0, []
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ["invalid_json"], 0, []
    readings = doc if isinstance(doc, list) else [doc]
    if not readings or not all(isinstance(r, dict) for r in readings):
        return ["invalid_shape"], 0, []
    if any("metrics" in r and not isinstance(r["metrics"], dict) for r in readings):
        return ["invalid_shape"], 0, []
    reasons: list[str] = []
    stored, seqs = 0, []
    for r in readings:
        if "ts" in r:
            problem = ts_problem(r["ts"], now_ms)
            if problem:
                reasons.append(problem)
                continue
        metrics = r.get("metrics") or {}
        if not metrics:
            reasons.append("no_metrics")
            continue
        seq = r.get("seq")
        seq_ok = "seq" not in r or (isinstance(seq, int) and not isinstance(seq, bool))
        if not seq_ok:
            reasons.append("invalid_seq")
        good = 0
        for name, value in metrics.items():
            problem = metric_problem(name, value)
            if problem:
                reasons.append(problem)
            else:
                good += 1
        if good:
            stored += 1
            if seq_ok and isinstance(seq, int):
                seqs.append(seq)
    return reasons, stored, seqs


def generate(seed: int, n: int, bad_ratio: float, devices: int = 9) -> list[OutboundMessage]:
    gen = MessageGenerator(devices, "t-", seed, rate=200, bad_ratio=bad_ratio, clock=FakeClock())
    return gen.metadata_messages() + [gen.next_message() for _ in range(n)]


def test_same_seed_same_messages_and_another_seed_differs() -> None:
    a = generate(7, 600, 0.2)
    b = generate(7, 600, 0.2)
    c = generate(8, 600, 0.2)
    assert [(m.topic, m.payload) for m in a] == [(m.topic, m.payload) for m in b]
    assert [m.payload for m in a] != [m.payload for m in c]


def test_every_message_gets_the_outcome_the_contract_predicts() -> None:
    msgs = generate(3, 3000, 0.25)
    now_ms = int(NOW_S * 1000)
    seen_reasons: Counter[str] = Counter()
    for msg in msgs:
        reasons, stored, seqs = oracle(msg.topic, msg.payload, now_ms)
        expected = [msg.bad_reason.value] if msg.bad_reason else []
        assert reasons == expected, (msg.topic, msg.payload[:200])
        assert stored == msg.good_points, (msg.topic, msg.payload[:200])
        assert tuple(seqs) == msg.seqs
        seen_reasons.update(reasons)
    assert set(seen_reasons) == {r.value for r in BAD_CYCLE}


def test_bad_ratio_is_exact_and_cycles_through_every_reason() -> None:
    msgs = [m for m in generate(1, 1400, 0.1) if not (m.shape == METADATA and m.retain)]
    bad = Counter(m.bad_reason.value for m in msgs if m.bad_reason)
    assert sum(bad.values()) == 140
    assert bad == {r.value: 10 for r in BAD_CYCLE}
    assert not any(m.bad_reason for m in generate(1, 500, 0.0))


def test_seq_counts_each_device_stored_readings_from_one_without_gaps() -> None:
    per_device: dict[str, list[int]] = defaultdict(list)
    for msg in generate(5, 2000, 0.3):
        _, _, seqs = oracle(msg.topic, msg.payload, int(NOW_S * 1000))
        if seqs:
            per_device[msg.device_id].extend(seqs)
    assert sorted(per_device) == sorted(
        d.device_id for d in MessageGenerator(9, "t-", 5, 200).devices
    )
    for seqs in per_device.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_tally_matches_the_messages_it_counted() -> None:
    gen = MessageGenerator(6, "t-", 11, rate=100, bad_ratio=0.3, clock=FakeClock())
    tally = SendTally(gen.devices)
    msgs = gen.metadata_messages() + [gen.next_message() for _ in range(1500)]
    for m in msgs:
        tally.record(m)
    now_ms = int(NOW_S * 1000)
    stored = sum(oracle(m.topic, m.payload, now_ms)[1] for m in msgs)
    telemetry = [m for m in msgs if m.shape != METADATA]
    summary = tally.as_dict()
    assert summary["expected_good_points"] == stored
    assert summary["messages_sent"] == len(telemetry)
    assert summary["metadata_sent"] == len(msgs) - len(telemetry) >= 6
    assert summary["bad_messages"] == sum(1 for m in msgs if m.bad_reason)
    with_seq = sum(summary["max_seq_by_device"].values())
    assert with_seq + summary["expected_points_without_seq"] == stored
    assert (
        summary["expected_points_without_seq"] == summary["bad_messages_by_reason"]["invalid_seq"]
    )
    kinds = summary["messages_by_kind"]
    assert sum(sum(v.values()) for v in kinds.values()) == len(telemetry)
    assert set(kinds) == {"environment", "power_meter", "vehicle"}


def test_good_payloads_use_every_form_of_the_contract() -> None:
    msgs = generate(2, 4000, 0.0, devices=60)
    shapes: Counter[str] = Counter()
    ts_forms: Counter[str] = Counter()
    units: set[str] = set()
    bare = 0
    for msg in msgs:
        if msg.shape == METADATA:
            continue
        doc = json.loads(msg.payload)
        if isinstance(doc, list):
            assert 2 <= len(doc) <= 10
            shapes["batch"] += 1
        else:
            shapes["single"] += 1
            doc = [doc]
        for r in doc:
            ts = r.get("ts")
            ts_forms["missing" if ts is None else type(ts).__name__] += 1
            for v in r["metrics"].values():
                if isinstance(v, dict):
                    units.add(v["unit"])
                else:
                    bare += 1
    assert shapes["single"] > shapes["batch"] > 0
    assert ts_forms["int"] > ts_forms["str"] > ts_forms["missing"] > 0
    assert bare > 0
    assert {"degF", "degC", "Pa", "hPa", "kPa", "mV", "mA", "kW", "Wh", "km/h", "mph"} <= units


def test_values_stay_plausible_and_drift_smoothly() -> None:
    last: dict[tuple[str, str], float] = {}
    big_jumps = 0
    for msg in generate(4, 3000, 0.0, devices=6):
        if msg.shape == METADATA:
            continue
        doc = json.loads(msg.payload)
        for r in doc if isinstance(doc, list) else [doc]:
            for name, v in r["metrics"].items():
                value = float(v["value"]) if isinstance(v, dict) else float(v)
                if isinstance(v, dict):
                    value = UNITS[v["unit"]][1](value)
                if name == "temperature":
                    assert 12 <= value <= 32
                if name == "humidity":
                    assert 20 <= value <= 80
                if name == "pressure":
                    assert 98 <= value <= 104
                if name == "speed":
                    assert 0 <= value <= 33
                key = (msg.device_id, name)
                if key in last and name in {"temperature", "humidity", "pressure", "voltage"}:
                    big_jumps += abs(value - last[key]) > 2.0
                if key in last and name == "energy":
                    assert value >= last[key] - 1e-3  # an energy counter never goes back
                last[key] = value
    assert big_jumps == 0


def test_timestamps_strictly_increase_per_device() -> None:
    last: dict[str, int] = {}
    for msg in generate(9, 3000, 0.0):
        if msg.shape == METADATA:
            continue
        doc = json.loads(msg.payload)
        for r in doc if isinstance(doc, list) else [doc]:
            if "ts" not in r:
                continue
            ts = r["ts"]
            ms = ts if isinstance(ts, int) else round(datetime.fromisoformat(ts).timestamp() * 1000)
            assert ms > last.get(msg.device_id, 0)
            last[msg.device_id] = ms


def test_metadata_is_retained_string_tags_per_device() -> None:
    gen = MessageGenerator(5, "t-", 1, rate=10)
    meta = gen.metadata_messages()
    assert [m.topic for m in meta] == [f"devices/{d.device_id}/metadata" for d in gen.devices]
    for m in meta:
        assert m.retain
        tags = json.loads(m.payload)
        assert set(tags) == {"site", "line", "model", "firmware", "kind"}
        assert all(isinstance(v, str) and v for v in tags.values())


def test_bad_device_ids_and_sizes_cross_the_limits_and_good_ones_do_not() -> None:
    for msg in generate(6, 2000, 0.2):
        segment = msg.topic.split("/")[1]
        if msg.bad_reason and msg.bad_reason.value == "invalid_device_id":
            assert len(segment.encode()) > 128
            assert segment.startswith("t-")  # still attributable to the run
        else:
            assert len(segment.encode()) <= 128
        if msg.bad_reason and msg.bad_reason.value == "payload_too_large":
            assert len(msg.payload) > LIMIT_BYTES
        else:
            assert len(msg.payload) <= LIMIT_BYTES


def test_boundary_variants_are_exactly_one_over_the_limits() -> None:
    msgs = generate(1, 1400, 0.1)
    sizes = [
        len(m.payload) for m in msgs if m.bad_reason and m.bad_reason.value == "payload_too_large"
    ]
    assert LIMIT_BYTES + 1 in sizes
    ids = [
        m.topic.split("/")[1]
        for m in msgs
        if m.bad_reason and m.bad_reason.value == "invalid_device_id"
    ]
    assert any(len(i) <= 128 < len(i.encode()) for i in ids)  # multi-byte: counts bytes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"devices": 0}, "device"),
        ({"bad_ratio": 1.5}, "bad_ratio"),
        ({"rate": 0}, "rate"),
    ],
)
def test_invalid_options_are_refused_with_a_reason(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"devices": 3, "prefix": "t-", "seed": 1, "rate": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        MessageGenerator(**args)
