"""The alerts agent's logic without Kafka: the state machine, late and replayed readings,
and the order of state writes behind their alerts."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from processors.agents.alerts import (
    FIRING,
    OK,
    PENDING,
    RESOLVED,
    WRITES,
    Alert,
    Evaluator,
    OrderedStateWrites,
    RuleState,
    next_state,
)
from processors.alert_rules import AlertRule, AlertRulesError, parse_rules
from processors.app import create_app, run_worker
from processors.settings import ProcessorSettings
from schemas.codec import default_codec

S = 1_000_000  # µs
T0 = 1_763_701_200 * S
HOT = AlertRule("hot", "temperature", "above", 50.0, 30 * S)


def reading(ts_s: float, device: str = "dev-1", tags: dict[str, str] | None = None,
            **fields: float) -> dict[str, Any]:
    return {"device_id": device, "ts_us": T0 + int(ts_s * S), "received_at_ms": 0,
            "seq": None, "fields": fields, "units": {}, "tags": tags or {}}


class Device:
    """One device's table entry, updated like the agent does."""

    def __init__(self, evaluator: Evaluator, stored: dict[str, Any] | None = None) -> None:
        self.evaluator = evaluator
        self.stored = stored

    def feed(self, r: dict[str, Any]) -> list[tuple[str, str, float, int]]:
        changes, alerts = self.evaluator.evaluate(r, self.stored)
        if changes:
            self.stored, _ = self.evaluator.merged(self.stored, changes)
        return [(a.rule.name, a.state, a.value, a.ts_us) for a in alerts]


def test_raise_hold_clear() -> None:
    dev = Device(Evaluator([HOT]))
    assert dev.feed(reading(0, temperature=60)) == []  # pending
    assert dev.stored == {"hot": RuleState(PENDING, T0, T0)}
    assert dev.feed(reading(10, temperature=61)) == []
    assert dev.feed(reading(29.999, temperature=62)) == []  # not yet 30 s
    assert dev.feed(reading(30, temperature=63)) == [("hot", FIRING, 63, T0 + 30 * S)]
    assert dev.stored == {"hot": RuleState(FIRING, T0, T0 + 30 * S)}
    for t in (40, 50, 300):  # holds: nothing more
        assert dev.feed(reading(t, temperature=99)) == []
    assert dev.feed(reading(301, temperature=50)) == [("hot", RESOLVED, 50, T0 + 301 * S)]
    assert dev.stored == {"hot": RuleState(OK, None, T0 + 301 * S)}
    assert dev.feed(reading(302, temperature=10)) == []


def test_the_condition_must_hold_in_every_reading_of_the_for() -> None:
    dev = Device(Evaluator([HOT]))
    dev.feed(reading(0, temperature=60))
    assert dev.feed(reading(20, temperature=40)) == []  # broken: back to ok
    assert dev.stored == {"hot": RuleState(OK, None, T0 + 20 * S)}
    assert dev.feed(reading(25, temperature=60)) == []  # a new run from 25 s
    assert dev.feed(reading(50, temperature=60)) == []
    assert dev.feed(reading(55, temperature=60)) == [("hot", FIRING, 60, T0 + 55 * S)]


def test_for_zero_fires_on_the_first_reading_and_the_alert_says_since() -> None:
    rule = AlertRule("cold", "temperature", "below", 0.0, 0)
    state, alert = next_state(rule, None, T0, -1.0)
    assert state == RuleState(FIRING, T0, T0)
    assert alert == Alert(rule, FIRING, -1.0, T0, T0)
    state, alert = next_state(rule, state, T0 + S, 0.0)
    assert state == RuleState(OK, None, T0 + S)
    assert alert == Alert(rule, RESOLVED, 0.0, T0 + S, T0)


def test_the_resolved_alert_carries_the_start_of_the_run_it_ends() -> None:
    dev = Device(Evaluator([HOT]))
    dev.feed(reading(0, temperature=60))
    dev.feed(reading(30, temperature=60))
    _, [alert] = dev.evaluator.evaluate(reading(40, temperature=0), dev.stored)
    assert (alert.state, alert.since_us, alert.ts_us) == (RESOLVED, T0, T0 + 40 * S)


def test_late_readings_do_not_flip_the_state_backwards() -> None:
    dev = Device(Evaluator([HOT]))
    dev.feed(reading(0, temperature=60))
    dev.feed(reading(30, temperature=60))  # firing
    dev.feed(reading(40, temperature=70))
    # older than the transition, and older than the newest seen reading: ignored
    assert dev.feed(reading(20, temperature=0)) == []
    assert dev.feed(reading(35, temperature=0)) == []
    assert dev.feed(reading(40, temperature=0)) == []  # as old as the newest: ignored too
    assert dev.stored == {"hot": RuleState(FIRING, T0, T0 + 30 * S)}
    assert dev.feed(reading(41, temperature=0)) == [("hot", RESOLVED, 0, T0 + 41 * S)]
    # a late reading that meets the condition does not start a run before the resolve
    assert dev.feed(reading(39, temperature=99)) == []
    assert dev.stored == {"hot": RuleState(OK, None, T0 + 41 * S)}


def test_a_reading_without_the_metric_or_not_selected_changes_nothing() -> None:
    [site_rule] = parse_rules({"rules": [
        {"name": "site", "metric": "temperature", "above": 50, "for": 30,
         "select": {"tags": {"site": "p1"}}}]}, "mem")
    dev = Device(Evaluator([site_rule]))
    tags = {"site": "p1"}
    dev.feed(reading(0, tags=tags, temperature=60))
    assert dev.feed(reading(10, tags=tags, humidity=10)) == []  # no temperature
    assert dev.feed(reading(15, tags={"site": "p2"}, temperature=0)) == []  # not selected
    assert dev.feed(reading(16, temperature=0)) == []  # no tags: not selected
    assert dev.stored == {"site": RuleState(PENDING, T0, T0)}
    assert dev.feed(reading(30, tags=tags, temperature=60, humidity=1)) == [
        ("site", FIRING, 60, T0 + 30 * S)]


def test_rules_of_one_device_are_independent() -> None:
    low = AlertRule("low", "voltage", "below", 3.3, 0)
    dev = Device(Evaluator([HOT, low]))
    assert dev.feed(reading(0, temperature=60, voltage=3.0)) == [("low", FIRING, 3.0, T0)]
    assert dev.feed(reading(30, temperature=60)) == [("hot", FIRING, 60, T0 + 30 * S)]
    assert dev.feed(reading(31, voltage=3.0)) == []
    assert dev.feed(reading(32, voltage=3.4, temperature=0)) == [
        ("hot", RESOLVED, 0, T0 + 32 * S), ("low", RESOLVED, 3.4, T0 + 32 * S)]


def test_a_replay_after_restart_changes_nothing_up_to_the_stored_state() -> None:
    """A new worker: the table came back from its changelog (JSON), memory starts empty."""
    first = Device(Evaluator([HOT]))
    first.feed(reading(0, temperature=60))
    first.feed(reading(10, temperature=60))
    assert first.feed(reading(30, temperature=60))  # firing, state written
    recovered = {name: state.to_json() for name, state in (first.stored or {}).items()}

    second = Device(Evaluator([HOT]), recovered)
    # the records since the last commit come again: nothing repeats
    for t in (0, 10, 30):
        assert second.feed(reading(t, temperature=60)) == []
    assert second.stored == recovered
    # a reading after the stored transition is evaluated as usual
    assert second.feed(reading(31, temperature=60)) == []
    assert second.feed(reading(32, temperature=1)) == [("hot", RESOLVED, 1, T0 + 32 * S)]


def test_a_transition_whose_state_write_was_lost_is_evaluated_again() -> None:
    """Crash after the alert but before its state was written: the alert comes again (a
    duplicate, never a loss)."""
    dev = Device(Evaluator([HOT]), {"hot": RuleState(PENDING, T0, T0).to_json()})
    assert dev.feed(reading(30, temperature=60)) == [("hot", FIRING, 60, T0 + 30 * S)]


def test_rules_removed_from_the_file_are_dropped_from_the_table_value() -> None:
    evaluator = Evaluator([HOT])
    stored = {"gone": {"status": FIRING, "since_us": T0, "changed_us": T0},
              "hot": {"status": PENDING, "since_us": T0, "changed_us": T0}}
    changes, _ = evaluator.evaluate(reading(30, temperature=60), stored)
    states, as_json = evaluator.merged(stored, changes)
    assert states == {"hot": RuleState(FIRING, T0, T0 + 30 * S)}
    assert as_json == {"hot": {"status": FIRING, "since_us": T0, "changed_us": T0 + 30 * S}}


def test_the_alert_record_is_an_avro_alert_made_of_rule_and_reading_only() -> None:
    alert = Alert(HOT, FIRING, 63.5, T0 + 30 * S, T0)
    record = alert.record("dev-1", {"site": "p1"})
    codec = default_codec()
    assert codec.decode(codec.encode(WRITES, record), reader=WRITES) == {
        "rule": "hot", "device_id": "dev-1", "state": "firing", "metric": "temperature",
        "condition": "above", "threshold": 50.0, "for_us": 30 * S, "value": 63.5,
        "ts_us": T0 + 30 * S, "since_us": T0, "tags": {"site": "p1"}}
    assert alert.record("dev-1", {"site": "p1"}) == record  # a resend is identical


class FakeChangelog:
    """Records what was sent, in order; each send's future is resolved by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, Any]] = []
        self.futures: list[asyncio.Future[Any]] = []

    def send(self, partition: int, key: bytes, value: Any) -> asyncio.Future[Any]:
        self.sent.append((partition, key, value))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_state_writes_wait_for_their_alert_and_stay_in_order_per_device() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        log = FakeChangelog()
        writes = OrderedStateWrites(log.send)
        free = writes.write(0, b"a", "a0")  # nothing to wait for: sent at once
        assert log.sent == [(0, b"a", "a0")] and free is log.futures[0]

        alert = loop.create_future()
        gated = writes.write(1, b"b", "b1", after=[alert])
        behind = writes.write(1, b"b", "b2")  # no alert, but an earlier write of b waits
        other = writes.write(2, b"c", "c1")  # another device is not held up
        assert [value for _, _, value in log.sent] == ["a0", "c1"]
        assert len(writes) == 2

        alert.set_result("confirmed")
        await settle()
        assert [value for _, _, value in log.sent] == ["a0", "c1", "b1", "b2"]
        assert len(writes) == 0 and not gated.done()
        for fut in log.futures:
            fut.set_result("ok")
        await settle()
        assert gated.result() == "ok" and behind.result() == "ok" and other.done()
        # b's queue is gone: its next free write goes straight out
        writes.write(1, b"b", "b3")
        assert log.sent[-1] == (1, b"b", "b3")

    asyncio.run(scenario())


def test_a_write_waits_for_every_alert_of_its_reading() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        log = FakeChangelog()
        writes = OrderedStateWrites(log.send)
        first, second = loop.create_future(), loop.create_future()
        done = writes.write(0, b"a", "v", after=[first, second])
        second.set_result(None)
        await settle()
        assert log.sent == []
        first.set_result(None)
        await settle()
        assert log.sent == [(0, b"a", "v")]
        log.futures[0].set_exception(RuntimeError("changelog refused"))
        await settle()
        with pytest.raises(RuntimeError, match="changelog refused"):
            done.result()

    asyncio.run(scenario())


def test_a_failed_alert_never_lets_its_state_reach_kafka() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        log = FakeChangelog()
        writes = OrderedStateWrites(log.send)
        alert = loop.create_future()
        done = writes.write(0, b"a", "firing", after=[alert])
        alert.set_exception(RuntimeError("alert refused"))
        await settle()
        assert log.sent == []
        with pytest.raises(RuntimeError, match="alert refused"):
            done.result()

    asyncio.run(scenario())


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TELEMETRY_"):
            monkeypatch.delenv(name)


def never(agent: str, exc: BaseException) -> None:
    raise AssertionError("no delivery in unit tests")


@pytest.mark.usefixtures("clean_env")
def test_the_agent_is_loaded_by_name_with_its_table(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: hot, metric: temperature, above: 50, for: 30s}\n")
    context = create_app(ProcessorSettings(
        process_data_dir=str(tmp_path), process_app_id="unit-alerts",
        process_agents=["alerts"], process_alert_rules_file=str(rules)), never)
    app = context.app
    sources = {agent.name.rsplit(".", 1)[-1]: sorted(agent.get_topic_names())
               for agent in app.agents.values()}
    assert sources["alerts"] == ["telemetry.enriched"]
    table = app.tables["alert_state"]
    assert not table.is_global  # co-partitioned with telemetry.enriched
    assert table.changelog_topic.get_topic_name() == "unit-alerts-alert_state-changelog"
    assert table.partitions == 6


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(("text", "says"), [
    (None, "TELEMETRY_PROCESS_ALERT_RULES_FILE is not set"),
    ("rules:\n  - {name: hot, metric: temperature, abvoe: 50}\n", r"rules\[0\] \('hot'\)"),
])
def test_no_or_a_wrong_rules_file_stops_the_worker_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, says: str
) -> None:
    rules = tmp_path / "rules.yaml"
    if text is not None:
        rules.write_text(text)
    settings = ProcessorSettings(
        process_data_dir=str(tmp_path), process_agents=["alerts"],
        process_alert_rules_file=str(rules) if text is not None else None,
        process_health_port=0, log_format="json")
    with pytest.raises(AlertRulesError, match=says):
        create_app(settings, never)
    assert run_worker(settings) == 2
    assert re.search(says, capsys.readouterr().err.replace('\\"', '"'))
