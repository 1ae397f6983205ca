"""Good single readings from pre-rendered bytes, for rates a per-message JSON encoder cannot reach.

Building a reading the ordinary way (random walk, unit conversion, `json.dumps`) costs about
40 µs; a simulator meant to load a pipeline at 20,000 msg/s cannot spend that. So each device
renders a ring of readings once, at start: its drift over `size` steps, as JSON bytes with
holes for `ts` and `seq` (and for an energy counter, which must only grow). A message is then
one `bytes % (ts, seq)`. The ring is walked forth and back (0, 1, ... size-1, size-2, ... 1,
0, ...), so values still drift smoothly and never jump at a wrap.

Only the comparable load uses it: one reading per message, epoch-millisecond `ts`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from loadtest.devices import SimulatedDevice
from loadtest.units import from_canonical

#: readings rendered per device, all devices together (memory: about 200 bytes each)
RING_BUDGET = 50_000
MAX_RING = 256
MIN_RING = 4
_HOLE = "\x00energy\x00"


def ring_size(devices: int) -> int:
    """Readings rendered per device for a fleet of `devices`."""
    return max(MIN_RING, min(MAX_RING, RING_BUDGET // max(1, devices)))


@dataclass
class _Ring:
    #: `b'{"ts":%d,"seq":%d,"metrics":{...}}'`, plus a `%s` for the energy counter if any
    templates: list[bytes]
    #: canonical increase of the energy counter at each step (0.0 without one)
    energy_steps: list[float]
    #: the device's energy unit (None: bare kWh), and its decimals in the payload
    energy_unit: str | None
    energy_decimals: int
    has_energy: bool
    step: int = 0


class PrebuiltReadings:
    """Pre-rendered readings of a set of devices; `render` fills in one reading's holes."""

    def __init__(
        self, devices: list[SimulatedDevice], rng: random.Random, interval_s: float
    ) -> None:
        size = ring_size(len(devices))
        self.rings: dict[str, _Ring] = {d.device_id: _render(d, rng, interval_s, size)
                                        for d in devices}

    def render(self, device: SimulatedDevice, ts_ms: int, seq: int) -> bytes:
        """The payload of the device's next reading (advances its ring and energy counter)."""
        ring = self.rings[device.device_id]
        period = 2 * len(ring.templates) - 2 if len(ring.templates) > 1 else 1
        i = ring.step % period
        ring.step += 1
        if i >= len(ring.templates):
            i = period - i
        template = ring.templates[i]
        if not ring.has_energy:
            return template % (ts_ms, seq)
        energy = device.state["energy"] + ring.energy_steps[i]
        device.state["energy"] = energy
        shown = energy if ring.energy_unit is None else from_canonical(energy, ring.energy_unit)
        return template % (ts_ms, seq, repr(round(shown, ring.energy_decimals)).encode())


def _render(device: SimulatedDevice, rng: random.Random, interval_s: float, size: int) -> _Ring:
    reported = {s.name: s for s in device.specs}
    energy_spec = reported.get("energy")
    templates, steps = [], []
    energy_before = device.state.get("energy", 0.0)
    for _ in range(size):
        previous = device.state.get("energy", 0.0)
        values = device.advance(rng, interval_s)
        steps.append(values.get("energy", 0.0) - previous)
        metrics = device.render(values)
        if energy_spec is not None:
            if isinstance(metrics["energy"], dict):
                metrics["energy"]["value"] = _HOLE
            else:
                metrics["energy"] = _HOLE
        body = json.dumps(metrics, separators=(",", ":"), allow_nan=False).encode()
        body = body.replace(b"%", b"%%").replace(json.dumps(_HOLE).encode(), b"%s")
        templates.append(b'{"ts":%%d,"seq":%%d,"metrics":%s}' % body)
    # the ring only borrowed the counter's steps; it grows again as readings are sent
    if "energy" in device.state:
        device.state["energy"] = energy_before
    unit = device.units.get("energy") if energy_spec is not None else None
    decimals = 0
    if energy_spec is not None:
        decimals = energy_spec.decimals + (0 if unit is None else 1)
    return _Ring(templates, steps, unit, decimals, energy_spec is not None)
