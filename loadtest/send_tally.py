"""What the simulator sent and what the pipeline should therefore store and reject.

The tally is the simulator's side of the loss account: the benchmark compares it with what
InfluxDB and telemetry.dlq hold.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from loadtest.devices import SimulatedDevice
from loadtest.messages import BAD_CYCLE, METADATA, OutboundMessage


class SendTally:
    def __init__(self, devices: list[SimulatedDevice]) -> None:
        self.messages_sent = 0
        self.metadata_sent = 0
        self.readings_sent = 0
        self.expected_good_points = 0
        self.expected_points_without_seq = 0
        self.messages_by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.bad_messages_by_reason: dict[str, int] = {r.value: 0 for r in BAD_CYCLE}
        self.max_seq_by_device: dict[str, int] = {d.device_id: 0 for d in devices}
        self.device_kinds = {d.device_id: d.kind for d in devices}

    def record(self, msg: OutboundMessage) -> None:
        """Counts one message that was handed to the MQTT client."""
        if msg.shape == METADATA:
            self.metadata_sent += 1
        else:
            self.messages_sent += 1
            self.messages_by_kind[msg.device_kind][msg.shape] += 1
        if msg.bad_reason is not None:
            self.bad_messages_by_reason[msg.bad_reason.value] += 1
        self.readings_sent += msg.readings
        self.expected_good_points += msg.good_points
        self.expected_points_without_seq += msg.good_points - len(msg.seqs)
        if msg.seqs:
            current = self.max_seq_by_device.get(msg.device_id, 0)
            self.max_seq_by_device[msg.device_id] = max(current, *msg.seqs)

    @property
    def bad_messages(self) -> int:
        return sum(self.bad_messages_by_reason.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages_sent": self.messages_sent,
            "metadata_sent": self.metadata_sent,
            "readings_sent": self.readings_sent,
            "expected_good_points": self.expected_good_points,
            "expected_points_without_seq": self.expected_points_without_seq,
            "bad_messages": self.bad_messages,
            "bad_messages_by_reason": dict(self.bad_messages_by_reason),
            "messages_by_kind": {k: dict(v) for k, v in sorted(self.messages_by_kind.items())},
            "max_seq_by_device": dict(self.max_seq_by_device),
            "device_kinds": dict(self.device_kinds),
        }
