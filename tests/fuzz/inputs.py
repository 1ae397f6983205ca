"""Fuzz inputs (MQTT topic and payload) from one seed: the simulator's hostile mix as it
sends it, the same messages mutated (bytes and JSON nodes), generated JSON, random bytes.

Deterministic for a seed, so a crash found by `make fuzz` can be replayed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from loadtest.messages import MessageGenerator
from plumbing.topics import ENRICHED
from schemas.codec import default_codec
from tests.fuzz.pipeline import RECEIVED_AT_MS

#: Strings that have broken or could break a stage: line-protocol separators and escapes,
#: JSON escapes, invisible and unpaired characters, reserved names, NFC pairs, long names.
HOSTILE_TEXT: tuple[str, ...] = (
    "", " ", ",", "=", '"', "\\", "\\\\", "\\ ", "\\,", "\\=", '\\"', "a\\", "a\\\\", "\t",
    "\tx", "\x00", "\x00x", "\n", "\r", "#", "#x", "x y", "x,y=z", 'x"y', "x\\y", "x\\\\ y",
    "x\\\\,y", "x\\\\=y", "seq", "time", "_field", "_x", "device_id", "caf\u00e9",
    "cafe\u0301", "\u202e", "x\u200b", "\ufeffx", "\ud800", "\udfff", "\U0001f680",
    "\u0000\u0001", "\x7f", "\x85", "temperature", "humidity", "pressure", "voltage",
    "x" * 1025, "\u00e9" * 600, "\U0001f680" * 300, "degC", "K", "percent", "degF",
)
HOSTILE_NUMBERS: tuple[Any, ...] = (
    0, -0.0, 1, -1, 2**63 - 1, -(2**63), 2**63, 10**30, 1e308, -1e308, 5e-324, 1e-300,
    float("nan"), float("inf"), float("-inf"), 21.5, 40.0, 100.0, 100.5, -273.15, -274.0,
    1.7976931348623157e308, 0.1, 3.5, True, False, None,
)
#: JSON fragments spliced into payloads as bytes.
HOSTILE_TOKENS: tuple[bytes, ...] = (
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"1" * 30, b"\\ud800", b"\\u0000",
    b'"\\\\"', b'"\\""', b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"null", b"true",
    b"[" * 40, b"{\"a\":" * 40, b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00",
    b'"metrics"', b'"ts"', b'"seq"', b'"unit"', b'"value"', b'{"value":1,"unit":"K"}',
    b"1763701199000", b'"2025-11-21T05:00:00Z"', b'"2025-11-21T05:00:00.123456789+14:00"',
)
TOPICS: tuple[str, ...] = (
    "devices/dev-1/telemetry", "devices/dev-2/telemetry", "devices/dev-1/metadata",
    "devices/dev-2/metadata", "devices/caf\u00e9/telemetry", "devices/cafe\u0301/telemetry",
    "devices/a b,c=d\\/telemetry", "devices/x\u202e/telemetry", "devices//telemetry",
    "devices/" + "x" * 200 + "/telemetry", "devices/dev-1/other", "other/dev-1/telemetry",
    "devices/\udcff/telemetry", "devices/a\\ b/metadata", "devices/a\\ b/telemetry",
)


_CODEC = default_codec()


class Inputs:
    """An endless stream of (kind, topic, payload); kind names where the input came from."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.simulator = MessageGenerator(
            devices=20, prefix=f"fz{seed % 1000}-", seed=seed, rate=1000.0, bad_ratio=0.5,
            clock=lambda: RECEIVED_AT_MS / 1000 - 1.0)
        self.corpus: list[tuple[str, bytes]] = [
            (m.topic, m.payload) for m in self.simulator.metadata_messages()]

    def __iter__(self) -> Iterator[tuple[str, str, bytes]]:
        for topic, payload in self.corpus:
            yield "simulator", topic, payload
        while True:
            yield self.next()

    def next(self) -> tuple[str, str, bytes]:
        roll = self.rng.random()
        if roll < 0.15:
            message = self.simulator.next_message()
            if len(self.corpus) < 2000 or self.rng.random() < 0.05:
                self._remember(message.topic, message.payload)
            return "simulator", message.topic, message.payload
        if roll < 0.45:
            topic, payload = self.rng.choice(self.corpus)
            return "json-mutated", self._topic(topic), self.mutate_json(payload)
        if roll < 0.70:
            topic, payload = self.rng.choice(self.corpus)
            return "byte-mutated", self._topic(topic), self.mutate_bytes(payload)
        if roll < 0.85:
            return "generated", *self.generated()
        if roll < 0.92:
            return "enriched", ENRICHED, self.enriched()
        return "random-bytes", self.rng.choice(TOPICS), self.rng.randbytes(
            self.rng.choice((0, 1, 2, 8, 64, 512)))

    def _remember(self, topic: str, payload: bytes) -> None:
        if len(payload) > 64 * 1024:
            return  # the too-large ones stay in the simulator's share, not in every mutation
        if len(self.corpus) < 2000:
            self.corpus.append((topic, payload))
        else:
            self.corpus[self.rng.randrange(len(self.corpus))] = (topic, payload)

    def _topic(self, topic: str) -> str:
        return self.rng.choice(TOPICS) if self.rng.random() < 0.1 else topic

    # ---- byte mutations ----

    def mutate_bytes(self, payload: bytes) -> bytes:
        data = bytearray(payload)
        for _ in range(self.rng.choice((1, 1, 2, 3, 8))):
            op = self.rng.randrange(6)
            at = self.rng.randrange(len(data) + 1)
            if op == 0 and data:  # flip a bit
                i = self.rng.randrange(len(data))
                data[i] ^= 1 << self.rng.randrange(8)
            elif op == 1:  # a random byte in
                data[at:at] = bytes([self.rng.randrange(256)])
            elif op == 2 and data:  # a run out
                del data[at:at + self.rng.randrange(1, 16)]
            elif op == 3:  # a hostile token in
                data[at:at] = self.rng.choice(HOSTILE_TOKENS)
            elif op == 4 and data:  # a run copied elsewhere
                i = self.rng.randrange(len(data))
                chunk = data[i:i + self.rng.randrange(1, 32)]
                data[at:at] = chunk
            else:  # cut
                del data[at:]
        return bytes(data)

    # ---- JSON mutations ----

    def mutate_json(self, payload: bytes) -> bytes:
        try:
            document = json.loads(payload)
        except ValueError:
            return self.mutate_bytes(payload)
        for _ in range(self.rng.choice((1, 1, 2, 4))):
            document = self._mutate_node(document, 0)
        return self._dumps(document)

    def _mutate_node(self, node: Any, depth: int) -> Any:
        rng = self.rng
        if isinstance(node, dict) and node and rng.random() < 0.8:
            key = rng.choice(list(node))
            op = rng.randrange(4)
            if op == 0:  # rename the key
                node[self.hostile_text()] = node.pop(key)
            elif op == 1:  # a hostile key added
                node[self.hostile_text()] = self.hostile_value(depth)
            elif op == 2:
                del node[key]
            else:
                node[key] = self._mutate_node(node[key], depth + 1)
            return node
        if isinstance(node, list) and node and rng.random() < 0.8:
            i = rng.randrange(len(node))
            op = rng.randrange(3)
            if op == 0:
                node[i] = self._mutate_node(node[i], depth + 1)
            elif op == 1:
                node.insert(i, rng.choice(node) if rng.random() < 0.7 else self.hostile_value(
                    depth))
            else:
                del node[i]
            return node
        return self.hostile_value(depth)

    def hostile_text(self) -> str:
        rng = self.rng
        parts = [rng.choice(HOSTILE_TEXT) for _ in range(rng.choice((1, 1, 2, 3)))]
        if rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), "m")
        return "".join(parts)

    def hostile_value(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return rng.choice(HOSTILE_NUMBERS)
        if roll < 0.7:
            return self.hostile_text()
        if roll < 0.85 or depth > 3:
            return {"value": rng.choice(HOSTILE_NUMBERS),
                    "unit": rng.choice(("degC", "K", "percent", "kPa", None,
                                        self.hostile_text()))}
        if roll < 0.93:
            return [self.hostile_value(depth + 1) for _ in range(rng.randrange(3))]
        return {self.hostile_text(): self.hostile_value(depth + 1)
                for _ in range(rng.randrange(3))}

    # ---- generated ----

    def generated(self) -> tuple[str, bytes]:
        """A reading or batch (or metadata) in the contract's shape, every part drawn from
        the hostile values, so most of it gets past JSON to the later stages."""
        rng = self.rng
        device = rng.choice(("dev-1", "dev-2", "caf\u00e9", "a\\ b", "x,y=z"))
        if rng.random() < 0.01:  # over a cap: one dead letter for the whole message
            return rng.choice((
                (f"devices/{device}/metadata",
                 self._dumps({f"k{i}": "v" for i in range(65 + rng.randrange(3))})),
                (f"devices/{device}/telemetry",
                 self._dumps({"metrics": {f"m{i}": 1.0 for i in range(1001)}})),
                (f"devices/{device}/telemetry",
                 self._dumps([{"metrics": {"m": 1}}] * (10_001 + rng.randrange(3)))),
            ))
        if rng.random() < 0.2:
            tags = {self.hostile_text(): self.hostile_text() for _ in range(rng.randrange(5))}
            if rng.random() < 0.5:
                tags["site"] = self.hostile_text()
            return f"devices/{device}/metadata", self._dumps(tags)
        readings = [self._generated_reading() for _ in range(rng.choice((1, 1, 1, 2, 5)))]
        document: Any = readings[0] if len(readings) == 1 and rng.random() < 0.7 else readings
        return f"devices/{device}/telemetry", self._dumps(document)

    def _generated_reading(self) -> dict[str, Any]:
        rng = self.rng
        reading: dict[str, Any] = {}
        if rng.random() < 0.9:
            reading["ts"] = rng.choice((
                RECEIVED_AT_MS - rng.randrange(0, 600_000), RECEIVED_AT_MS + 200_000,
                "2025-11-21T05:00:00Z", "2025-11-21 04:59:59.999999999+00:00",
                rng.choice(HOSTILE_NUMBERS), self.hostile_text()))
        if rng.random() < 0.7:
            reading["seq"] = rng.choice((1, 2**63 - 1, -1, rng.choice(HOSTILE_NUMBERS)))
        metrics = {}
        for _ in range(rng.choice((0, 1, 2, 4, 8))):
            name = rng.choice(("temperature", "humidity", "pressure", "voltage", "speed")) \
                if rng.random() < 0.3 else self.hostile_text()
            metrics[name] = self.hostile_value()
        reading["metrics"] = metrics
        return reading

    def enriched(self) -> bytes:
        """An EnrichedReading with hostile device id, tags and field names, as Avro: what the
        sink's line encoder alone must refuse or write exactly."""
        rng = self.rng
        for _ in range(10):
            fields = {self.hostile_text(): float(rng.choice(HOSTILE_NUMBERS[:24]))
                      for _ in range(rng.choice((0, 1, 2, 3, 6)))}
            record: dict[str, Any] = {
                "device_id": rng.choice(("dev-1", self.hostile_text())),
                "ts_us": rng.choice((RECEIVED_AT_MS * 1000, 0, -1, 2**63 - 1, -(2**63),
                                     9223372036854775, -9223372036854775)),
                "received_at_ms": RECEIVED_AT_MS,
                "seq": rng.choice((None, 0, -1, 2**63 - 1, -(2**63))),
                "fields": fields,
                "units": {},
                "tags": {self.hostile_text(): self.hostile_text()
                         for _ in range(rng.choice((0, 1, 2, 4)))},
            }
            try:
                value = _CODEC.encode("EnrichedReading", record)
            except (ValueError, TypeError, OverflowError):
                continue  # a lone surrogate, or an int Avro's long cannot hold
            if rng.random() < 0.1:
                value = self.mutate_bytes(value)
            return value
        return b"\xc3\x01"

    def _dumps(self, document: Any) -> bytes:
        """JSON as devices write it: sometimes not ASCII-escaped; NaN literals allowed; a
        lone surrogate written as its escape."""
        text = json.dumps(document, ensure_ascii=self.rng.random() < 0.5)
        return text.encode("utf-8", "surrogatepass" if self.rng.random() < 0.1 else
                           "backslashreplace")
