"""Consumer-group helpers of the benchmark against the real Kafka: a fresh group that starts at
the end of its topics, and lag = end offset - committed offset."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from loadtest.consumer_lag import ConsumerLag, start_group_at_end


def test_a_fresh_group_reads_only_what_comes_next_and_its_lag_counts_it(
    stack_env: dict[str, str],
) -> None:
    conf: dict[str, Any] = {"bootstrap.servers": stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]}
    topic = f"loadtest-groups-{uuid.uuid4().hex[:10]}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    try:
        producer = Producer(conf)
        for i in range(5):  # history the fresh group must skip
            producer.produce(topic, b"old", partition=i % 2)
        producer.flush(10)

        group = f"lt-fresh-{uuid.uuid4().hex[:10]}"
        start_group_at_end(conf, group, [topic, "no.such.topic"])
        lag = ConsumerLag(conf, [group])
        assert lag.lag(group) == 0

        for i in range(3):
            producer.produce(topic, b"new", partition=i % 2)
        producer.flush(10)
        assert lag.lag(group) == 3

        consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
        consumer.subscribe([topic])
        seen: list[bytes] = []
        try:
            for _ in range(30):
                msg = consumer.poll(1.0)
                if msg is not None and not msg.error():
                    seen.append(msg.value() or b"")
                if len(seen) == 3:
                    break
            extra = consumer.poll(2.0)
        finally:
            consumer.close()
        assert seen == [b"new"] * 3
        assert extra is None
    finally:
        admin.delete_topics([topic])[topic].result(30)
