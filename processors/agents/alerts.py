"""alerts: telemetry.enriched -> threshold rules -> telemetry.alerts (the worked example of
an agent, for what a step cannot do: state across readings and an output topic of its own).

Enable with `TELEMETRY_PROCESS_AGENTS=alerts` and `TELEMETRY_PROCESS_ALERT_RULES_FILE`
(processors/alert_rules.py reads it). For each rule and selected device, the reading's own
`ts_us` drives a small state machine: ok -> pending (the condition holds) -> firing (it held
for the rule's `for`) -> ok. One Alert record is sent when a device's rule starts firing and
one when it resolves; nothing in between.

State lives in a Faust table (`alert_state`, device id -> rule name -> RuleState),
co-partitioned with telemetry.enriched, so a restart recovers it from its changelog. A
reading's outputs are its alert records and its changelog write; the forwarder acks it only
once Kafka confirmed all of them. One more rule makes a crash unable to forget an alert: a
state write is sent only after the alert of the same transition is confirmed (and after
every earlier write of that device). A state in Kafka therefore always has its alert in
Kafka; a replayed reading at or before the newest transition in the table changes nothing,
and one after it is evaluated again, so a crash may send an alert twice, never zero times.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from prometheus_client import Counter

from plumbing.topics import ALERTS, CONTRACT_TOPICS, ENRICHED
from processors.alert_rules import AlertRule, AlertRulesError, load_rules
from processors.forwarder import HEADER_PROCESSOR

if TYPE_CHECKING:
    import faust

    from processors.agents import AgentContext
    from processors.forwarder import Incoming, Output

log = logging.getLogger(__name__)

AGENT = "alerts"
#: Names the agent in the dead letters of records on telemetry.enriched it cannot read.
STAGE = "alerts"
READS = "EnrichedReading"
WRITES = "Alert"
TABLE_NAME = "alert_state"

# A rule's status for one device.
OK = "ok"
PENDING = "pending"
FIRING = "firing"
# An alert's state (schemas/alert.v1.avsc).
RESOLVED = "resolved"

ALERTS_SENT = Counter(
    "telemetry_alerts_total",
    "Alert records sent to telemetry.alerts (again after a crash, see the README).",
    ["rule", "state"],
)
LATE_READINGS = Counter(
    "telemetry_alert_late_readings_total",
    "Readings a rule ignored because they were not newer than the newest one it had seen "
    "for the device (out of order, or replayed after a restart).",
)


class RuleState(NamedTuple):
    """Where one rule stands for one device.

    `since_us`: time of the first reading of the current run that met the condition (None
    when ok). `changed_us`: time of the reading that made this state, so older readings
    cannot undo it.
    """

    status: str
    since_us: int | None
    changed_us: int

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "since_us": self.since_us, "changed_us": self.changed_us}

    @classmethod
    def of(cls, stored: Any) -> RuleState:
        """From the table: ours as written, or the JSON dict its changelog recovered."""
        if isinstance(stored, RuleState):
            return stored
        return cls(str(stored["status"]), stored["since_us"], int(stored["changed_us"]))


@dataclass(frozen=True)
class Alert:
    """A rule started (firing) or stopped (resolved) holding, and the reading that did it."""

    rule: AlertRule
    state: str
    value: float
    ts_us: int
    since_us: int

    def record(self, device_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
        """The io.telemetry.Alert record: only the rule and the reading, no clock, so a
        copy sent again after a crash is identical."""
        rule = self.rule
        return {
            "rule": rule.name,
            "device_id": device_id,
            "state": self.state,
            "metric": rule.metric,
            "condition": rule.condition,
            "threshold": rule.threshold,
            "for_us": rule.for_us,
            "value": self.value,
            "ts_us": self.ts_us,
            "since_us": self.since_us,
            "tags": dict(tags),
        }


def next_state(
    rule: AlertRule, state: RuleState | None, ts_us: int, value: float
) -> tuple[RuleState | None, Alert | None]:
    """One reading (newer than `state`) through the rule: the new state (None: unchanged)
    and the alert to send, if any."""
    holds = rule.holds(value)
    status = state.status if state is not None else OK
    if status == OK:
        if not holds:
            return None, None
        if rule.for_us == 0:
            return RuleState(FIRING, ts_us, ts_us), Alert(rule, FIRING, value, ts_us, ts_us)
        return RuleState(PENDING, ts_us, ts_us), None
    assert state is not None and state.since_us is not None
    if status == PENDING:
        if not holds:
            return RuleState(OK, None, ts_us), None
        if ts_us - state.since_us >= rule.for_us:
            return (RuleState(FIRING, state.since_us, ts_us),
                    Alert(rule, FIRING, value, ts_us, state.since_us))
        return None, None
    if holds:  # firing, and still holding
        return None, None
    return RuleState(OK, None, ts_us), Alert(rule, RESOLVED, value, ts_us, state.since_us)


class Evaluator:
    """The rules over readings, given each device's stored states (pure: no Kafka).

    It also remembers, in memory only, the newest reading time each rule saw per device, so
    a late reading between two transitions is ignored too. After a restart that memory
    starts from the stored `changed_us`; it holds one number per device and rule in use,
    like the table.
    """

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rules = list(rules)
        self.names = frozenset(rule.name for rule in rules)
        self._newest: dict[str, dict[str, int]] = {}

    def evaluate(
        self, reading: Mapping[str, Any], stored: Mapping[str, Any] | None
    ) -> tuple[dict[str, RuleState], list[Alert]]:
        """The changed states (rule name -> state) and the alerts of one reading."""
        changes: dict[str, RuleState] = {}
        alerts: list[Alert] = []
        fields: Mapping[str, float] = reading["fields"]
        device_id: str = reading["device_id"]
        tags: Mapping[str, str] = reading["tags"]
        ts_us: int = reading["ts_us"]
        newest: dict[str, int] | None = None
        for rule in self.rules:
            value = fields.get(rule.metric)
            if value is None or not rule.selects(device_id, tags):
                continue  # a reading without the metric leaves the rule as it is
            if newest is None:
                newest = self._newest.setdefault(device_id, {})
            entry = stored.get(rule.name) if stored else None
            state = RuleState.of(entry) if entry is not None else None
            seen = newest.get(rule.name)
            if state is not None and (seen is None or state.changed_us > seen):
                seen = state.changed_us
            if seen is not None and ts_us <= seen:
                LATE_READINGS.inc()
                continue
            newest[rule.name] = ts_us
            new, alert = next_state(rule, state, ts_us, value)
            if new is not None:
                changes[rule.name] = new
            if alert is not None:
                alerts.append(alert)
        return changes, alerts

    def merged(
        self, stored: Mapping[str, Any] | None, changes: Mapping[str, RuleState]
    ) -> tuple[dict[str, RuleState], dict[str, Any]]:
        """The device's new table value (in memory, and as JSON for the changelog); states
        of rules no longer in the file are dropped."""
        states = {
            name: RuleState.of(entry)
            for name, entry in (stored or {}).items()
            if name in self.names and name not in changes
        }
        states.update(changes)
        return states, {name: state.to_json() for name, state in states.items()}


def _failure(fut: asyncio.Future[Any]) -> BaseException | None:
    if fut.cancelled():
        return asyncio.CancelledError("an alert send was cancelled")
    return fut.exception()


class OrderedStateWrites:
    """Changelog writes of the state table, each sent only once the alerts it depends on are
    confirmed, and in order per device.

    `send(partition, key, value)` starts a changelog write and returns its delivery future.
    A write with nothing to wait for, and no earlier write of its device still waiting, is
    sent at once (the usual case: a reading that only changed ok <-> pending).
    """

    def __init__(self, send: Callable[[int, bytes, Any], asyncio.Future[Any]]) -> None:
        self._send = send
        self._waiting: dict[bytes, deque[tuple[int, Any, tuple[asyncio.Future[Any], ...],
                                               asyncio.Future[Any]]]] = {}

    def __len__(self) -> int:
        """Writes not sent yet (for tests and the curious)."""
        return sum(len(queue) for queue in self._waiting.values())

    def write(
        self, partition: int, key: bytes, value: Any, after: Iterable[asyncio.Future[Any]] = ()
    ) -> asyncio.Future[Any]:
        """A future that resolves once the write is in Kafka (after every `after` is)."""
        gates = tuple(after)
        if not gates and key not in self._waiting:
            return self._send(partition, key, value)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append((partition, value, gates, done))
        for gate in gates:
            gate.add_done_callback(lambda _f, k=key: self._flush(k))  # type: ignore[misc]
        self._flush(key)
        return done

    def _flush(self, key: bytes) -> None:
        queue = self._waiting.get(key)
        while queue:
            partition, value, gates, done = queue[0]
            if not all(gate.done() for gate in gates):
                return
            queue.popleft()
            failed = next((e for e in map(_failure, gates) if e is not None), None)
            if failed is not None:
                # The alert did not reach Kafka: the state must not either. The forwarder
                # stops the worker on the alert's failure; this write fails the same way.
                if not done.done():
                    done.set_exception(failed)
                continue
            _copy_outcome(self._send(partition, key, value), done)
        self._waiting.pop(key, None)


def _copy_outcome(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    def copy(fut: asyncio.Future[Any]) -> None:
        if target.done():
            return
        failed = _failure(fut)
        if failed is not None:
            target.set_exception(failed)
        else:
            target.set_result(fut.result())

    source.add_done_callback(copy)


def register(context: AgentContext) -> None:
    """Adds the alerts agent and its state table; AlertRulesError (a PluginError) when the
    rules file is missing or wrong."""
    settings, forwarder, app = context.settings, context.forwarder, context.app
    if not settings.process_alert_rules_file:
        raise AlertRulesError(
            "TELEMETRY_PROCESS_AGENTS names 'alerts', but TELEMETRY_PROCESS_ALERT_RULES_FILE "
            "is not set: point it at a rules file (processors/alert_rules.example.yaml shows "
            "the format)"
        )
    rules = load_rules(settings.process_alert_rules_file)
    evaluator = Evaluator(rules)
    codec = forwarder.codec
    table = app.Table(
        TABLE_NAME,
        key_type=bytes,
        partitions=CONTRACT_TOPICS[ENRICHED][0],
        help="Alert rule states per device (processors/agents/alerts.py).",
    )
    writes = OrderedStateWrites(table.send_changelog)
    alerts_topic = app.topic(ALERTS, key_serializer="raw", value_serializer="raw")
    headers = [(HEADER_PROCESSOR, f"{app.conf.id}/{AGENT}".encode())]
    log.info("alert rules", extra={"file": settings.process_alert_rules_file,
                                   "rules": [rule.name for rule in rules]})

    def handle(incoming: Incoming) -> list[Output]:
        reading = incoming.record
        assert reading is not None
        device_id: str = reading["device_id"]
        key = device_id.encode()
        stored = table.data.get(key)
        changes, alerts = evaluator.evaluate(reading, stored)
        if not changes:
            return []
        sent: list[asyncio.Future[Any]] = []
        for alert in alerts:
            value = codec.encode(WRITES, alert.record(device_id, reading["tags"]))
            sent.append(alerts_topic.send_soon(key=key, value=value, headers=headers))
            ALERTS_SENT.labels(rule=alert.rule.name, state=alert.state).inc()
        states, as_json = evaluator.merged(stored, changes)
        table.data[key] = states  # what the next reading of the device sees
        return [*sent, writes.write(incoming.partition, key, as_json, after=sent)]

    @app.agent(forwarder.source(ENRICHED), name=AGENT)
    async def alerts(stream: faust.StreamT[bytes]) -> None:
        await forwarder.run(stream, agent=AGENT, stage=STAGE, reads=READS, handle=handle)
