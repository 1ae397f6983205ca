"""PUBACKs held back until Kafka has every record of a message, then sent in arrival order.

MQTT 3.1.1 and 5.0 (section 4.6) require a client to acknowledge QoS 1 messages in the order
they arrived. Kafka confirms records out of that order (different partitions), so a finished
message waits here until every message before it has finished too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class PendingAck:
    """One QoS 1 message waiting for `parts` Kafka confirmations."""

    __slots__ = ("mid", "parts", "qos")

    def __init__(self, mid: int, qos: int, parts: int) -> None:
        self.mid = mid
        self.qos = qos
        self.parts = parts

    @property
    def finished(self) -> bool:
        return self.parts <= 0


class InOrderAcks:
    """The acknowledgements of one MQTT connection; `send(mid, qos)` writes a PUBACK."""

    def __init__(self, send: Callable[[int, int], None]) -> None:
        self._send = send
        self._waiting: deque[PendingAck] = deque()

    def track(self, mid: int, qos: int, parts: int) -> PendingAck:
        """Registers a message in arrival order; it is acknowledged after `parts` confirmations."""
        pending = PendingAck(mid, qos, parts)
        self._waiting.append(pending)
        self._release()
        return pending

    def part_done(self, pending: PendingAck) -> None:
        pending.parts -= 1
        if pending.finished:
            self._release()

    def __len__(self) -> int:
        """Messages received and not yet acknowledged."""
        return len(self._waiting)

    def _release(self) -> None:
        while self._waiting and self._waiting[0].finished:
            done = self._waiting.popleft()
            self._send(done.mid, done.qos)
