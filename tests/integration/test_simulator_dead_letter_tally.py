"""The benchmark's dead-letter count on the real telemetry.dlq: only its own devices count."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Producer

from loadtest.dead_letter_tally import UNDECODABLE, DeadLetterTally
from plumbing.dead_letters import dead_letter, encode_dead_letter
from plumbing.reasons import Reason


def test_counts_this_runs_dead_letters_by_reason_from_the_start_point(
    stack_env: dict[str, str],
) -> None:
    prefix = f"dl-{uuid.uuid4().hex[:10]}-"
    conf = {"bootstrap.servers": stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]}
    producer = Producer(conf)

    def send(reason: Reason, device_id: str | None, topic: str, original: bytes) -> None:
        record = dead_letter(reason, "test", "ingest", original, "json", device_id=device_id,
                             source_topic=topic)  # fmt: skip
        dlq, key, value = encode_dead_letter(record)
        producer.produce(dlq, value, key)

    # before the tally starts: must not be counted
    send(Reason.INVALID_JSON, f"{prefix}env-0001", f"devices/{prefix}env-0001/telemetry", b"{")
    producer.flush(10)
    tally = DeadLetterTally(conf, prefix).start()
    try:
        send(Reason.INVALID_JSON, f"{prefix}env-0001", f"devices/{prefix}env-0001/telemetry", b"{")
        send(Reason.UNKNOWN_UNIT, f"{prefix}pwr-0002", f"devices/{prefix}pwr-0002/telemetry", b"")
        # an invalid device id: no device_id, recognised by its topic
        too_long = prefix + "x" * 130
        send(Reason.INVALID_DEVICE_ID, None, f"devices/{too_long}/telemetry", b"{}")
        # other people's traffic
        send(Reason.INVALID_JSON, "someone-else", "devices/someone-else/telemetry", b"{")
        send(Reason.INVALID_SHAPE, None, "devices//telemetry", b"42")
        # junk on the topic: counted (as undecodable) when keyed by one of this run's devices
        producer.produce("telemetry.dlq", b"\x00junk, not avro", f"{prefix}veh-0003".encode())
        producer.produce("telemetry.dlq", b"\x00junk, not avro", b"someone-else")
        producer.flush(10)
        expected = {
            "invalid_json": 1,
            "unknown_unit": 1,
            "invalid_device_id": 1,
            UNDECODABLE: 1,
        }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and tally.snapshot() != expected:
            time.sleep(0.2)
        time.sleep(1.0)  # anything more would be a wrong count: give it time to show
        assert tally.snapshot() == expected
    finally:
        tally.close()
