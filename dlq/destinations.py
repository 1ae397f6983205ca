"""Where a dead letter goes back to: the place its original entered the stage that refused it.

- `json` originals (ingest's and the metadata path's rejects) are MQTT payloads: published
  again to their MQTT topic, so they go through ingest like a device's message.
- `avro` originals (the processors' and the sinks' rejects) are Kafka records of ours:
  produced again to their Kafka topic with the device id as key (the contract's key, so the
  record lands in the partition its device always uses).
- `line-protocol` originals are points the database refused after the pipeline had done its
  work: there is nothing upstream to send them to.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from dlq.letters import StoredLetter

#: What plumbing.dead_letters adds to the detail when the original was too large to keep.
_CUT = re.compile(r"\(original cut to \d+ of \d+ bytes\)")


class Destination(NamedTuple):
    transport: Literal["mqtt", "kafka"]
    topic: str
    key: bytes | None
    payload: bytes
    retain: bool = False

    @property
    def label(self) -> str:
        """`kafka:telemetry.raw`, `mqtt:devices/+/telemetry`: the kind of place, for counts."""
        if self.transport == "kafka":
            return f"kafka:{self.topic}"
        levels = self.topic.split("/")
        if len(levels) == 3:
            levels[1] = "+"
        return "mqtt:" + "/".join(levels)


class NotReplayable(NamedTuple):
    why: str


def destination_of(
    letter: StoredLetter, metadata_retained: bool = False
) -> Destination | NotReplayable:
    """Where to send the letter's original, or why it cannot be sent anywhere."""
    record = letter.record
    if record is None:
        return NotReplayable("unreadable dead letter")
    topic = record.get("source_topic")
    original: bytes = record["original"]
    fmt = record["original_format"]
    if not topic:
        return NotReplayable("no source topic")
    if _CUT.search(record["detail"]):
        return NotReplayable("original cut to fit the dead-letter topic")
    if fmt == "json":
        if any(c in topic for c in "+#\x00") or "\\x" in topic:
            return NotReplayable("the MQTT topic is not one a client can publish to")
        retain = metadata_retained and record["stage"] == "metadata"
        return Destination("mqtt", topic, None, original, retain)
    if fmt == "avro":
        if not original:
            return NotReplayable("empty original (a record without a value)")
        device = record.get("device_id")
        key = letter.key if letter.key is not None else (device.encode() if device else None)
        return Destination("kafka", topic, key, original)
    if fmt == "line-protocol":
        return NotReplayable("a point the database refused (line protocol): fix the database "
                             "side and write it there")
    return NotReplayable(f"unknown original format {fmt!r}")
