"""`units=canonical`: the same fleet and values, every metric a bare number (the load
`--compare telegraf` sends, which Telegraf's json_v2 stores under our field names)."""

from __future__ import annotations

import json

import pytest

from loadtest.messages import MessageGenerator


def payloads(units: str, prebuilt: bool) -> list[dict]:
    gen = MessageGenerator(
        devices=12, prefix="u-", seed=7, rate=100.0, batch_share=0.0 if prebuilt else 0.25,
        ts_format="epoch_ms" if prebuilt else "mixed", metrics_per_reading=4, units=units,
        clock=lambda: 1_700_000_000.0,
    )  # fmt: skip
    out = []
    for _ in range(60):
        msg = gen.next_message()
        if msg.topic.endswith("/telemetry"):
            body = json.loads(msg.payload)
            out += body if isinstance(body, list) else [body]
    return out


@pytest.mark.parametrize("prebuilt", [True, False])
def test_canonical_units_send_bare_numbers_only(prebuilt: bool) -> None:
    readings = payloads("canonical", prebuilt)
    values = [v for r in readings for v in r["metrics"].values()]
    assert values and all(isinstance(v, int | float) for v in values)
    mixed = [v for r in payloads("mixed", prebuilt) for v in r["metrics"].values()]
    assert any(isinstance(v, dict) for v in mixed)  # the default does send unit objects


def test_an_unknown_units_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="units"):
        MessageGenerator(devices=1, prefix="u-", seed=1, rate=1.0, units="imperial")
