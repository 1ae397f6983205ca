"""The local Kafka is real and usable by both client libraries the pipeline uses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka.admin import AdminClient

from plumbing.topics import CONTRACT_TOPICS
from stack.local_stack import LocalStack
from tests.support.kafka_helpers import consume_until, create_topic, produce

REPO = Path(__file__).resolve().parents[2]


def test_contract_topics_exist_with_partitions_and_compaction(local_stack: LocalStack) -> None:
    admin = AdminClient({"bootstrap.servers": local_stack.kafka.address})
    topics = admin.list_topics(timeout=10).topics
    for name, (partitions, _) in CONTRACT_TOPICS.items():
        assert name in topics, name
        assert len(topics[name].partitions) == partitions, name
    from confluent_kafka.admin import ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, "devices.metadata")
    config = admin.describe_configs([res])[res].result(30)
    assert config["cleanup.policy"].value == "compact"


def test_confluent_kafka_round_trip_keeps_key_order(local_stack: LocalStack) -> None:
    bootstrap = local_stack.kafka.address
    topic = create_topic(bootstrap, partitions=3)
    records = [(f"dev-{i % 4}".encode(), f"{i}".encode()) for i in range(200)]
    produce(bootstrap, topic, records)
    got = consume_until(bootstrap, [topic], lambda ms: len(ms) >= 200)
    assert len(got) == 200
    per_key: dict[bytes | None, list[int]] = {}
    for m in got:
        per_key.setdefault(m.key(), []).append(int(m.value() or b"-1"))
    # One device's readings stay in order because the key picks one partition.
    for values in per_key.values():
        assert values == sorted(values)
    assert sum(len(v) for v in per_key.values()) == 200


def test_aiokafka_round_trip_with_consumer_group_commit(local_stack: LocalStack) -> None:
    bootstrap = local_stack.kafka.address
    topic = create_topic(bootstrap, partitions=3)
    group = f"aiokafka-{uuid.uuid4().hex}"

    async def scenario() -> tuple[list[bytes], int]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            while len(values) < 20:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 60)
                for msgs in batch.values():
                    values.extend(m.value for m in msgs if m.value is not None)
            await consumer.commit()
            committed = [await consumer.committed(tp) for tp in consumer.assignment()]
        finally:
            await consumer.stop()
        return values, sum(c or 0 for c in committed)

    values, committed = asyncio.run(scenario())
    assert values == [f"m{i}".encode() for i in range(20)]
    assert committed == 20


def test_faust_worker_creates_its_topics_and_processes(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A real Faust worker: creates its changelog topic, keeps a table, forwards messages."""
    bootstrap = local_stack.kafka.address
    suffix = uuid.uuid4().hex[:10]
    source = create_topic(bootstrap, partitions=6, prefix="faustprobe.in")
    sink = f"faustprobe.out.{suffix}"
    app_id = f"faustprobe-{suffix}"
    env = {
        **os.environ,
        "PROBE_APP_ID": app_id,
        "PROBE_BROKER": f"kafka://{bootstrap}",
        "PROBE_SOURCE": source,
        "PROBE_SINK": sink,
        "PROBE_DATADIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "tests.support.faust_probe_app",
            "worker",
            "-l",
            "info",
            "--without-web",
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        produce(bootstrap, source, [(b"dev-a", b"1"), (b"dev-b", b"2"), (b"dev-a", b"3")])
        got = consume_until(bootstrap, [sink], lambda ms: len(ms) >= 3, timeout=120)
        assert sorted((m.key(), m.value()) for m in got) == [
            (b"dev-a", b"count=1"),
            (b"dev-a", b"count=2"),
            (b"dev-b", b"count=1"),
        ], (tmp_path / "worker.log").read_text()[-3000:]
        topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
        changelog = f"{app_id}-counts-changelog"
        assert changelog in topics
        assert len(topics[changelog].partitions) == 6
    finally:
        os.killpg(worker.pid, 15)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, 9)
            worker.wait(10)
        log.close()
