"""The comparable load (one reading of N metrics, epoch-ms ts) from pre-rendered payloads, and a
fleet split over several sending processes."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

import pytest

from loadtest.devices import KINDS, MAX_METRICS_PER_READING
from loadtest.messages import TS_EPOCH_MS, MessageGenerator
from loadtest.prebuilt import MAX_RING, ring_size
from loadtest.units import CANONICAL_UNITS, FROM_CANONICAL, to_canonical

NOW_MS = 1_796_000_000_000


class Clock:
    """Advances 1 ms per call, so every reading gets a new time."""

    def __init__(self) -> None:
        self.ms = NOW_MS

    def __call__(self) -> float:
        self.ms += 1
        return self.ms / 1000


def uniform(devices: int = 9, per_reading: int = 4, **kw: Any) -> MessageGenerator:
    return MessageGenerator(
        devices=devices, prefix="p-", seed=5, rate=100.0, batch_share=0.0, ts_format=TS_EPOCH_MS,
        metrics_per_reading=per_reading, clock=Clock(), **kw,
    )  # fmt: skip


def canonical(value: Any) -> float:
    if isinstance(value, dict):
        return to_canonical(value["value"], value["unit"])
    return float(value)


def test_every_reading_is_one_object_with_exactly_n_metrics_and_an_epoch_ms_ts() -> None:
    for n in range(1, MAX_METRICS_PER_READING + 1):
        gen = uniform(per_reading=n)
        assert gen.prebuilt is not None
        for _ in range(300):
            msg = gen.next_message()
            doc = json.loads(msg.payload)
            assert isinstance(doc, dict) and set(doc) == {"ts", "seq", "metrics"}
            assert isinstance(doc["ts"], int) and abs(doc["ts"] - NOW_MS) < 10_000
            assert len(doc["metrics"]) == n, (msg.device_kind, doc)
            for name, value in doc["metrics"].items():
                if isinstance(value, dict):
                    assert set(value) == {"value", "unit"} and value["unit"] in FROM_CANONICAL
                    assert name in CANONICAL_UNITS
                else:
                    assert isinstance(value, int | float) and not isinstance(value, bool)
            assert (msg.readings, msg.good_points, msg.seqs) == (1, 1, (doc["seq"],))


def test_the_kinds_own_metrics_come_first() -> None:
    gen = uniform(per_reading=4)
    seen = {}
    for _ in range(30):
        msg = gen.next_message()
        seen[msg.device_kind] = list(json.loads(msg.payload)["metrics"])
    for kind, names in seen.items():
        own = [s.name for s in KINDS[kind]][:4]
        assert names[: len(own)] == own


def test_seq_counts_from_one_and_ts_strictly_increases_per_device() -> None:
    gen = uniform()
    seqs: dict[str, list[int]] = defaultdict(list)
    last_ts: dict[str, int] = {}
    for _ in range(2000):
        msg = gen.next_message()
        doc = json.loads(msg.payload)
        seqs[msg.device_id].append(doc["seq"])
        assert doc["ts"] > last_ts.get(msg.device_id, 0)
        last_ts[msg.device_id] = doc["ts"]
    for got in seqs.values():
        assert got == list(range(1, len(got) + 1))


def test_values_drift_smoothly_across_the_ring_and_energy_only_grows() -> None:
    gen = uniform(devices=3)  # one device per kind
    size = ring_size(3)
    assert size == MAX_RING
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(3 * size * 3):  # every device walks its ring forth and back more than once
        msg = gen.next_message()
        for name, value in json.loads(msg.payload)["metrics"].items():
            series[(msg.device_id, name)].append(canonical(value))
    for (device, name), values in series.items():
        steps = [abs(b - a) for a, b in itertools.pairwise(values)]
        if name == "energy":
            assert all(b >= a for a, b in itertools.pairwise(values)), device
            assert values[-1] > values[0]
        elif name != "heading":  # heading wraps at 360
            spread = max(values) - min(values)
            assert max(steps) <= max(0.2 * spread, 1e-6), (device, name)
        assert len(set(values)) > 3  # it does drift


def test_a_fleet_split_into_shares_is_the_same_fleet_each_device_in_one_share() -> None:
    whole = MessageGenerator(devices=10, prefix="p-", seed=5, rate=100.0)
    parts = [MessageGenerator(devices=10, prefix="p-", seed=5, rate=33.3, share=(k, 3))
             for k in range(3)]
    ids = [d.device_id for part in parts for d in part.devices]
    assert ids == [d.device_id for d in whole.devices]  # contiguous blocks, in order, disjoint
    by_id = {d.device_id: d for d in whole.devices}
    for part in parts:
        for d in part.devices:
            assert (d.kind, d.tags, d.units) == (by_id[d.device_id].kind,
                                                 by_id[d.device_id].tags,
                                                 by_id[d.device_id].units)
        kinds = {d.kind for d in part.devices}
        assert len(kinds) == 3  # a block of 3+ devices holds every kind
    assert [len(p.devices) for p in parts] == [3, 3, 4]


def test_each_share_counts_seq_for_its_own_devices_only() -> None:
    parts = [uniform(devices=6, share=(k, 2)) for k in range(2)]
    seen: dict[str, list[int]] = defaultdict(list)
    for part in parts:
        for _ in range(300):
            msg = part.next_message()
            seen[msg.device_id].extend(msg.seqs)
    assert len(seen) == 6
    for got in seen.values():
        assert got == list(range(1, len(got) + 1))


def test_a_tiny_share_without_an_environment_device_still_sends_every_reason() -> None:
    gen = MessageGenerator(devices=2, prefix="p-", seed=5, rate=10.0, bad_ratio=1.0,
                           share=(1, 2))
    assert [d.kind for d in gen.devices] == ["power_meter"]
    reasons = {gen.next_message().bad_reason for _ in range(28)}
    assert len(reasons) == 14


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ts_format": "rfc"}, "ts_format"),
        ({"share": (2, 2)}, "share"),
        ({"share": (0, 20)}, "share"),
        ({"metrics_per_reading": MAX_METRICS_PER_READING + 1}, "metrics per reading"),
    ],
)
def test_invalid_load_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MessageGenerator(devices=10, prefix="p-", seed=1, rate=10.0, **kwargs)
