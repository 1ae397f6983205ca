"""Generates the simulator's MQTT messages: good readings in every accepted form, and bad
messages cycling through every reject reason of the contract, each with its expected outcome.

Accounting rules (what `expected_good_points` and `seq` mean):
- `seq` counts a device's readings that should be stored, starting at 1, so the stored seq of
  a device must be exactly 1..max_seq; a gap is a lost reading, not a reject.
- A bad message carries exactly one fault, so it should produce exactly one dead letter with its
  reason. Readings rejected whole carry no seq; a reading with one bad metric keeps its seq and
  still has good metrics, so it is stored (without that metric).
- `ts` is strictly increasing per device, so no two stored readings share (device, time).
  Missing `ts` (the ingest time is used) only appears in single-reading messages.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from loadtest.devices import ENVIRONMENT, SimulatedDevice, make_devices
from loadtest.prebuilt import PrebuiltReadings
from loadtest.units import CANONICAL_UNITS
from plumbing.reasons import Reason

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_DEVICE_ID_BYTES = 128

#: The order bad messages cycle through: every reject reason a device can cause.
BAD_CYCLE: tuple[Reason, ...] = (
    Reason.INVALID_DEVICE_ID,
    Reason.PAYLOAD_TOO_LARGE,
    Reason.INVALID_JSON,
    Reason.INVALID_SHAPE,
    Reason.INVALID_TIMESTAMP,
    Reason.TIMESTAMP_IN_FUTURE,
    Reason.TIMESTAMP_TOO_OLD,
    Reason.NO_METRICS,
    Reason.INVALID_SEQ,
    Reason.VALUE_NOT_A_NUMBER,
    Reason.UNKNOWN_UNIT,
    Reason.WRONG_DIMENSION,
    Reason.PHYSICALLY_IMPOSSIBLE,
    Reason.INVALID_METADATA,
)

SINGLE, BATCH, METADATA = "single", "batch", "metadata"

#: `ts` of good readings: `mixed` = epoch ms, RFC 3339 with offsets, or missing; `epoch_ms` =
#: always epoch milliseconds (the comparable load, and what Telegraf's json_v2 can read).
TS_MIXED, TS_EPOCH_MS = "mixed", "epoch_ms"
TS_FORMATS = (TS_MIXED, TS_EPOCH_MS)
#: metric values: each device's own units (bare or {"value", "unit"}), or bare canonical only
UNITS_MIXED, UNITS_CANONICAL = "mixed", "canonical"
UNITS_CHOICES = (UNITS_MIXED, UNITS_CANONICAL)

_JUNK_JSON: tuple[bytes, ...] = (
    b"temperature=21.5,humidity=40",
    b"{'metrics': {'temperature': 21.5}}",
    b"",
    b'{"metrics": {"temperature": 21.5}}}',
)
_JUNK_SHAPES: tuple[bytes, ...] = (
    b"42",
    b'"temperature 21.5"',
    b"[1, 2, 3]",
    b"null",
    b"true",
    b"[" * 64 + b"]" * 64,
)
_BAD_TIMESTAMPS: tuple[Any, ...] = (
    "yesterday",
    "2025-13-45T25:61:00Z",
    True,
    {"epoch": 1763701200},
    "",
    [2025, 11, 21],
)
_BAD_SEQS: tuple[Any, ...] = ("seventh", 3.5, True, {"n": 1}, [7])
_NOT_NUMBERS: tuple[Any, ...] = (
    "NaN",
    "hot",
    True,
    None,
    "Infinity",
    [1, 2, 3],
)
_UNKNOWN_UNITS = ("furlong/fortnight", "parsec", "smoot")
_WRONG_UNITS = {
    "temperature": "kPa",
    "humidity": "degC",
    "pressure": "km/h",
    "voltage": "A",
    "current": "V",
    "power": "kWh",
    "energy": "W",
    "speed": "degF",
}
_IMPOSSIBLE: tuple[tuple[str, Any], ...] = (
    ("temperature", {"value": -300.0, "unit": "degC"}),
    ("humidity", 140.0),
    ("temperature", {"value": -5.0, "unit": "K"}),
    ("humidity", {"value": -3.5, "unit": "percent"}),
    ("temperature", {"value": -500.0, "unit": "degF"}),
    ("temperature", -274.0),
    ("humidity", 100.5),
)
#: Refused whole (`invalid_metadata`); a bad tag inside an object is refused alone with its own
#: reason (`invalid_tag` and others), which is not this variant.
_BAD_METADATA: tuple[bytes, ...] = (
    b'["site", "Lyon Plant"]',
    b'"site: Lyon"',
    b"site=Lyon",
    b"null",
)


@dataclass(slots=True)
class OutboundMessage:
    """One MQTT publish with what the pipeline should make of it (not frozen: a frozen
    dataclass costs a `object.__setattr__` per field, and one is built per message)."""

    topic: str
    payload: bytes
    #: the id in the topic (for an invalid_device_id message: the bad id)
    device_id: str
    device_kind: str
    #: single, batch or metadata
    shape: str
    #: readings ingest should forward to telemetry.raw (0 when it rejects the whole message)
    readings: int = 0
    #: readings that should end up stored in the database
    good_points: int = 0
    #: seq values of the stored readings that carry one
    seqs: tuple[int, ...] = ()
    bad_reason: Reason | None = None
    retain: bool = False


#: the contract's first topic level (devices/<device_id>/telemetry)
TOPIC_PREFIX = "devices"


def telemetry_topic(device_id: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{device_id}/telemetry"


def metadata_topic(device_id: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{device_id}/metadata"


def rfc3339(ts_ms: int, offset_hours: int = 0) -> str:
    """RFC 3339 with milliseconds; `Z` for UTC, else a numeric offset."""
    tz = UTC if offset_hours == 0 else timezone(timedelta(hours=offset_hours))
    text = datetime.fromtimestamp(ts_ms / 1000, tz=tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


class MessageGenerator:
    """Deterministic for a given seed and clock: same messages, same order, same bytes."""

    def __init__(
        self,
        devices: int,
        prefix: str,
        seed: int,
        rate: float,
        bad_ratio: float = 0.0,
        batch_share: float = 0.25,
        missing_ts_share: float = 0.05,
        clock: Callable[[], float] = time.time,
        metrics_per_reading: int = 0,
        ts_format: str = TS_MIXED,
        share: tuple[int, int] = (0, 1),
        topic_prefix: str = TOPIC_PREFIX,
        units: str = UNITS_MIXED,
    ) -> None:
        """`share` = (k, n): this generator sends for the k-th of n contiguous blocks of the
        fleet, at `rate` (its own part of the total), so n processes split one fleet and each
        device's seq lives in exactly one of them. The fleet itself depends on the seed only.

        `units` canonical: every metric a bare number in its canonical unit (the fleet's
        random draws stay the same, so the seed still gives the same devices and values)."""
        if devices < 1:
            raise ValueError("need at least one device")
        if not 0.0 <= bad_ratio <= 1.0:
            raise ValueError("bad_ratio must be between 0 and 1")
        if rate <= 0:
            raise ValueError("rate must be positive")
        if ts_format not in TS_FORMATS:
            raise ValueError(f"ts_format must be one of {TS_FORMATS}")
        if units not in UNITS_CHOICES:
            raise ValueError(f"units must be one of {UNITS_CHOICES}")
        index, parts = share
        if not 0 <= index < parts or parts > devices:
            raise ValueError("share (k, n) needs 0 <= k < n <= devices")
        self.rng = random.Random(seed)
        fleet = make_devices(devices, prefix, self.rng, metrics_per_reading)
        if units == UNITS_CANONICAL:
            for device in fleet:
                device.units = dict.fromkeys(device.units)
        if parts > 1:
            self.rng = random.Random(f"{seed}/{index}/{parts}")
        self.devices = fleet[devices * index // parts : devices * (index + 1) // parts]
        self.bad_ratio = bad_ratio
        self.batch_share = batch_share
        self.missing_ts_share = 0.0 if ts_format == TS_EPOCH_MS else missing_ts_share
        self.ts_format = ts_format
        self.topic_prefix = topic_prefix
        self.clock = clock
        #: seconds between two messages of one device
        self.device_interval_s = len(self.devices) / rate
        self.sent = 0
        self._turn = 0
        self._env_turn = 0
        self._bad_turn = 0
        self._variants: Counter[Reason] = Counter()
        #: pre-rendered good readings, for the comparable load (see loadtest/prebuilt.py)
        self.prebuilt: PrebuiltReadings | None = None
        if batch_share == 0 and ts_format == TS_EPOCH_MS:
            self.prebuilt = PrebuiltReadings(self.devices, self.rng, self.device_interval_s)

    def telemetry_topic(self, device_id: str) -> str:
        return telemetry_topic(device_id, self.topic_prefix)

    def metadata_topic(self, device_id: str) -> str:
        return metadata_topic(device_id, self.topic_prefix)

    # ---- the stream ----

    def metadata_messages(self) -> list[OutboundMessage]:
        """Every device's retained metadata, published once at start."""
        return [
            OutboundMessage(
                self.metadata_topic(d.device_id),
                _dumps(d.metadata()),
                d.device_id,
                d.kind,
                METADATA,
                retain=True,
            )
            for d in self.devices
        ]

    def next_message(self) -> OutboundMessage:
        """The next telemetry (or, for invalid_metadata, metadata) publish."""
        index = self.sent
        self.sent += 1
        device = self.devices[self._turn % len(self.devices)]
        self._turn += 1
        if int((index + 1) * self.bad_ratio) > int(index * self.bad_ratio):
            reason = BAD_CYCLE[self._bad_turn % len(BAD_CYCLE)]
            self._bad_turn += 1
            return self._bad(reason, device)
        return self._good(device)

    # ---- good readings ----

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _good(self, device: SimulatedDevice) -> OutboundMessage:
        if self.prebuilt is not None:
            ts_ms = max(self._now_ms(), device.last_ts_ms + 1)
            device.last_ts_ms = ts_ms
            device.seq += 1
            return OutboundMessage(
                self.telemetry_topic(device.device_id),
                self.prebuilt.render(device, ts_ms, device.seq),
                device.device_id,
                device.kind,
                SINGLE,
                readings=1,
                good_points=1,
                seqs=(device.seq,),
            )
        batch = self.rng.random() < self.batch_share
        count = self.rng.randint(2, 10) if batch else 1
        readings = self._good_readings(device, count, allow_missing_ts=not batch)
        payload: Any = readings if batch else readings[0]
        return OutboundMessage(
            self.telemetry_topic(device.device_id),
            _dumps(payload),
            device.device_id,
            device.kind,
            BATCH if batch else SINGLE,
            readings=count,
            good_points=count,
            seqs=tuple(r["seq"] for r in readings),
        )

    def _good_readings(
        self, device: SimulatedDevice, count: int, allow_missing_ts: bool
    ) -> list[dict[str, Any]]:
        now_ms = self._now_ms()
        gap_ms = max(1, int(self.device_interval_s * 1000 / count))
        out = []
        for i in range(count):
            reading = self._reading(device, now_ms - (count - 1 - i) * gap_ms, allow_missing_ts)
            device.seq += 1
            reading["seq"] = device.seq
            out.append(reading)
        return out

    def _reading(
        self, device: SimulatedDevice, ts_ms: int, allow_missing_ts: bool = False
    ) -> dict[str, Any]:
        """A good reading without seq; advances the device's values and clock."""
        values = device.advance(self.rng, self.device_interval_s)
        reading: dict[str, Any] = {}
        form = self.rng.random()
        if allow_missing_ts and form < self.missing_ts_share:
            device.last_ts_ms = max(device.last_ts_ms, ts_ms)
        else:
            ts_ms = max(ts_ms, device.last_ts_ms + 1)
            device.last_ts_ms = ts_ms
            if form < 0.35 and self.ts_format == TS_MIXED:
                reading["ts"] = rfc3339(ts_ms, self.rng.choice((0, 0, 2, -5)))
            else:
                reading["ts"] = ts_ms
        reading["metrics"] = device.render(values)
        return reading

    def _frozen_reading(self, device: SimulatedDevice, ts: Any) -> dict[str, Any]:
        """A reading of the device's current values that does not advance it (for rejects)."""
        return {"ts": ts, "metrics": device.render(device.state)}

    # ---- bad messages ----

    def _bad(self, reason: Reason, device: SimulatedDevice) -> OutboundMessage:
        variant = self._variants[reason]
        self._variants[reason] += 1
        if reason is Reason.PHYSICALLY_IMPOSSIBLE:
            device = self._next_environment_device()
        build = getattr(self, f"_bad_{reason.value}")
        msg: OutboundMessage = build(device, variant)
        return msg

    def _next_environment_device(self) -> SimulatedDevice:
        # a share of one or two devices may hold no environment device: the impossible
        # temperature or humidity is then sent by another kind, and rejected all the same
        envs = [d for d in self.devices if d.kind == ENVIRONMENT] or self.devices
        device = envs[self._env_turn % len(envs)]
        self._env_turn += 1
        return device

    def _whole(self, device: SimulatedDevice, payload: bytes, reason: Reason) -> OutboundMessage:
        """A message ingest rejects as a whole."""
        return OutboundMessage(
            self.telemetry_topic(device.device_id),
            payload,
            device.device_id,
            device.kind,
            SINGLE,
            bad_reason=reason,
        )

    def _bad_invalid_device_id(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        # Mosquitto disconnects a client that publishes a topic with a control character, so
        # the ids that reach ingest are the too-long ones: ASCII, and multi-byte UTF-8 that is
        # under 128 characters but over 128 bytes (ingest must count bytes).
        if variant % 2 == 0:
            bad_id = device.device_id + "-" + "x" * MAX_DEVICE_ID_BYTES
        else:
            bad_id = (
                device.device_id + "-" + "é" * (MAX_DEVICE_ID_BYTES - len(device.device_id) - 1)
            )
        payload = _dumps(self._frozen_reading(device, self._now_ms()))
        return OutboundMessage(
            self.telemetry_topic(bad_id),
            payload,
            bad_id,
            device.kind,
            SINGLE,
            bad_reason=Reason.INVALID_DEVICE_ID,
        )

    def _bad_payload_too_large(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        reading = self._frozen_reading(device, self._now_ms())
        if variant % 3 == 0:  # one byte over the limit
            base = len(_dumps({**reading, "blob": ""}))
            reading["blob"] = "A" * (MAX_PAYLOAD_BYTES + 1 - base)
            payload = _dumps(reading)
        elif variant % 3 == 1:  # a plain big object
            reading["blob"] = "A" * (300 * 1024)
            payload = _dumps(reading)
        else:  # a batch of valid readings that together exceed the limit
            one = len(_dumps(reading)) + 1
            payload = _dumps([reading] * (MAX_PAYLOAD_BYTES // one + 2))
        return self._whole(device, payload, Reason.PAYLOAD_TOO_LARGE)

    def _bad_invalid_json(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        choice = variant % (len(_JUNK_JSON) + 2)
        if choice == 0:  # truncated in the middle
            text = _dumps(self._frozen_reading(device, self._now_ms()))
            payload = text[: len(text) // 2]
        elif choice == 1:  # not UTF-8
            payload = b'{"metrics": {"temperature": 21.5, "note": "\xff\xfe\xc3\x28"}}'
        else:
            payload = _JUNK_JSON[choice - 2]
        return self._whole(device, payload, Reason.INVALID_JSON)

    def _bad_invalid_shape(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        choice = variant % (len(_JUNK_SHAPES) + 3)
        now = self._now_ms()
        if choice == 0:  # an array with one object and one junk item
            payload = _dumps([self._frozen_reading(device, now), "junk"])
        elif choice == 1:
            payload = _dumps({"ts": now, "metrics": [21.5, 40]})
        elif choice == 2:
            payload = _dumps({"ts": now, "metrics": "temperature=21.5"})
        else:
            payload = _JUNK_SHAPES[choice - 3]
        return self._whole(device, payload, Reason.INVALID_SHAPE)

    def _with_bad_reading(
        self, device: SimulatedDevice, variant: int, bad: dict[str, Any], reason: Reason
    ) -> OutboundMessage:
        """A reading rejected whole by validation, alone or in a batch with good readings."""
        readings: list[dict[str, Any]] = []
        if self.rng.random() < 0.5:
            readings = self._good_readings(device, self.rng.randint(1, 4), allow_missing_ts=False)
        seqs = tuple(r["seq"] for r in readings)
        good = len(readings)
        readings.insert(self.rng.randint(0, len(readings)), bad)
        payload: Any = readings if len(readings) > 1 else readings[0]
        return OutboundMessage(
            self.telemetry_topic(device.device_id),
            _dumps(payload),
            device.device_id,
            device.kind,
            BATCH if len(readings) > 1 else SINGLE,
            readings=len(readings),
            good_points=good,
            seqs=seqs,
            bad_reason=reason,
        )

    def _bad_invalid_timestamp(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        ts = _BAD_TIMESTAMPS[variant % len(_BAD_TIMESTAMPS)]
        bad = self._frozen_reading(device, ts)
        return self._with_bad_reading(device, variant, bad, Reason.INVALID_TIMESTAMP)

    def _bad_timestamp_in_future(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        now = self._now_ms()
        ts: Any = (
            now + 3_600_000,
            rfc3339(now + 2 * 86_400_000),
            now + 10 * 60_000,
        )[variant % 3]
        bad = self._frozen_reading(device, ts)
        return self._with_bad_reading(device, variant, bad, Reason.TIMESTAMP_IN_FUTURE)

    def _bad_timestamp_too_old(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        now = self._now_ms()
        ts: Any = (now - 30 * 86_400_000, rfc3339(now - 8 * 86_400_000, 2), 0)[variant % 3]
        bad = self._frozen_reading(device, ts)
        return self._with_bad_reading(device, variant, bad, Reason.TIMESTAMP_TOO_OLD)

    def _bad_no_metrics(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        bad: dict[str, Any] = {"ts": self._now_ms()}
        if variant % 4 < 2:
            bad["metrics"] = {}
        return self._with_bad_reading(device, variant, bad, Reason.NO_METRICS)

    def _bad_invalid_seq(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        reading = self._reading(device, self._now_ms())
        reading["seq"] = _BAD_SEQS[variant % len(_BAD_SEQS)]
        return OutboundMessage(
            self.telemetry_topic(device.device_id),
            _dumps(reading),
            device.device_id,
            device.kind,
            SINGLE,
            readings=1,
            good_points=1,
            bad_reason=Reason.INVALID_SEQ,
        )

    def _with_bad_metric(
        self, device: SimulatedDevice, variant: int, metric: str, bad_value: Any, reason: Reason
    ) -> OutboundMessage:
        """One metric is rejected; its reading (and any batch-mates) is still stored."""
        count = 1 if self.rng.random() < 0.5 else self.rng.randint(2, 5)
        readings = self._good_readings(device, count, allow_missing_ts=False)
        target = readings[self.rng.randrange(count)]
        target["metrics"][metric] = bad_value
        payload: Any = readings if count > 1 else readings[0]
        return OutboundMessage(
            self.telemetry_topic(device.device_id),
            _dumps(payload),
            device.device_id,
            device.kind,
            BATCH if count > 1 else SINGLE,
            readings=count,
            good_points=count,
            seqs=tuple(r["seq"] for r in readings),
            bad_reason=reason,
        )

    def _catalog_metric(self, device: SimulatedDevice) -> str:
        return self.rng.choice([s.name for s in device.specs if s.name in CANONICAL_UNITS])

    def _bad_value_not_a_number(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        metric = self._catalog_metric(device)
        value = _NOT_NUMBERS[variant % len(_NOT_NUMBERS)]
        if variant % 3 == 2:  # the object form with a junk value
            value = {"value": value, "unit": CANONICAL_UNITS[metric]}
        return self._with_bad_metric(device, variant, metric, value, Reason.VALUE_NOT_A_NUMBER)

    def _bad_unknown_unit(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        metric = self._catalog_metric(device)
        value = {"value": 1.0, "unit": _UNKNOWN_UNITS[variant % len(_UNKNOWN_UNITS)]}
        return self._with_bad_metric(device, variant, metric, value, Reason.UNKNOWN_UNIT)

    def _bad_wrong_dimension(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        metric = self._catalog_metric(device)
        value = {"value": 1.0, "unit": _WRONG_UNITS[metric]}
        return self._with_bad_metric(device, variant, metric, value, Reason.WRONG_DIMENSION)

    def _bad_physically_impossible(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        metric, value = _IMPOSSIBLE[variant % len(_IMPOSSIBLE)]
        return self._with_bad_metric(device, variant, metric, value, Reason.PHYSICALLY_IMPOSSIBLE)

    def _bad_invalid_metadata(self, device: SimulatedDevice, variant: int) -> OutboundMessage:
        # A device id of its own, so a lenient ingest cannot spoil a real device's tags; not
        # retained, so it is rejected once rather than on every ingest restart.
        ghost = f"{device.device_id}-ghost"
        return OutboundMessage(
            self.metadata_topic(ghost),
            _BAD_METADATA[variant % len(_BAD_METADATA)],
            ghost,
            device.kind,
            METADATA,
            bad_reason=Reason.INVALID_METADATA,
        )
