"""The worst messages a device may send, through the real ingest and processors: dead
letters stay one per rejected reading and bounded per input byte, and the processors' memory
stays far under the chart's limit.

Within ingest's caps (256 KiB, 1,000 metrics per reading, 10,000 readings per message) the
worst cases are: one reading whose 1,000 metrics are all refused (one dead letter listing
them, not 1,000 copies of the reading), a batch of thousands of readings each refused whole
(one small dead letter each), and a batch over the readings cap (one dead letter at the edge).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing.topics import DLQ
from schemas.codec import default_codec
from stack.local_stack import LocalStack
from tests.support.kafka_helpers import consume_until, end_offsets
from tests.support.pipeline import Publisher, RunningPipeline

pytestmark = pytest.mark.timeout(300)
MAX_PAYLOAD = 256 * 1024
#: The chart's memory limit of a processors pod (helm/telemetry-pipeline/values.yaml).
PROCESSORS_MEMORY_LIMIT_MIB = 1024
#: Dead-letter bytes allowed per input byte: each letter carries its reading's raw record
#: and a reason; what matters is that it does not grow with the number of refused metrics.
MAX_LETTER_BYTES_PER_INPUT_BYTE = 16


@pytest.fixture(scope="module")
def pipeline(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPipeline]:
    p = RunningPipeline(local_stack, stack_env, tmp_path_factory.mktemp("worst")).start()
    yield p
    p.stop()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_worst_messages_give_bounded_dead_letters_and_bounded_memory(
    pipeline: RunningPipeline, local_stack: LocalStack
) -> None:
    prefix = f"worst{uuid.uuid4().hex[:8]}"
    name = "m" * 200
    many_metrics = ("{" + ", ".join(f'"{name}{i:04d}": NaN' for i in range(1000))
                    + "}").encode()
    many_metrics = b'{"metrics": ' + many_metrics + b"}"
    readings = 8000
    giant_batch = ("[" + ", ".join('{"metrics": {"a": NaN}}' for _ in range(readings))
                   + "]").encode()
    over_cap = ("[" + ", ".join('{"metrics": {"a": 1}}' for _ in range(10_001)) + "]").encode()
    sent = {
        f"{prefix}-metrics": many_metrics,
        f"{prefix}-batch": giant_batch,
        f"{prefix}-overcap": over_cap,
    }
    assert all(len(p) <= MAX_PAYLOAD for p in sent.values()), [len(p) for p in sent.values()]
    input_bytes = sum(len(p) for p in sent.values())

    start = end_offsets(local_stack.kafka.address, [DLQ])
    publisher = Publisher(local_stack)
    try:
        for device, payload in sent.items():
            publisher.publish(f"devices/{device}/telemetry", payload)
    finally:
        publisher.close()

    codec = default_codec()
    expected = 1 + readings + 1

    def mine(m: object) -> bool:
        return (m.key() or b"").startswith(prefix.encode())  # type: ignore[attr-defined]

    got = consume_until(local_stack.kafka.address, [DLQ], lambda ms: len(ms) >= expected,
                        timeout=180, keep=mine, start=start)
    letters = [codec.decode(m.value() or b"") for m in got]
    by_device: dict[str, list[dict[str, object]]] = {}
    for letter in letters:
        by_device.setdefault(str(letter["device_id"]), []).append(letter)
    assert {d: len(v) for d, v in by_device.items()} == {
        f"{prefix}-metrics": 1, f"{prefix}-batch": readings, f"{prefix}-overcap": 1,
    }, pipeline.logs()

    [listing] = by_device[f"{prefix}-metrics"]
    assert listing["stage"] == "validate" and listing["reason"] == "value_not_a_number"
    assert len(listing["rejected_metrics"]) == 1000  # type: ignore[arg-type]
    assert "went no further" in str(listing["detail"])
    [refused] = by_device[f"{prefix}-overcap"]
    assert (refused["stage"], refused["reason"]) == ("ingest", "too_many_readings")
    assert {str(letter["reason"]) for letter in by_device[f"{prefix}-batch"]} == {
        "value_not_a_number"}

    letter_bytes = sum(len(m.value() or b"") for m in got)
    assert letter_bytes <= MAX_LETTER_BYTES_PER_INPUT_BYTE * input_bytes, (
        letter_bytes, input_bytes)
    proc = pipeline.process.proc
    assert proc is not None
    peak = peak_rss_mib(proc.pid)
    assert peak < PROCESSORS_MEMORY_LIMIT_MIB / 4, f"processors peaked at {peak:.0f} MiB"
    print(f"worst messages: {input_bytes} bytes in, {len(got)} dead letters of "
          f"{letter_bytes} bytes ({letter_bytes / input_bytes:.1f} per input byte); "
          f"processors peak RSS {peak:.0f} MiB")
