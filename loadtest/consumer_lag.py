"""Consumer-group lag (end offset minus committed offset) from the Kafka admin API."""

from __future__ import annotations

import fnmatch
import logging
from typing import Any

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

log = logging.getLogger("loadtest.lag")

#: Groups in these states have no members; their lag is history, not the running pipeline.
_IDLE = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}


def start_group_at_end(
    kafka_config: dict[str, Any], group: str, topics: list[str], timeout: float = 10.0
) -> None:
    """Commits the current end offsets for a new group, so it reads only what comes next."""
    admin = AdminClient(kafka_config)
    meta = admin.list_topics(timeout=timeout)
    partitions = [
        KafkaTopicPartition(t, p)
        for t in topics
        if t in meta.topics
        for p in meta.topics[t].partitions
    ]
    if not partitions:
        raise KafkaException(f"none of the topics {topics} exists")
    ends = admin.list_offsets(
        {tp: OffsetSpec.latest() for tp in partitions}, request_timeout=timeout
    )
    committed = [
        KafkaTopicPartition(tp.topic, tp.partition, f.result(timeout).offset)
        for tp, f in ends.items()
    ]
    futures = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, committed)], request_timeout=timeout
    )
    futures[group].result(timeout)


class ConsumerLag:
    def __init__(self, kafka_config: dict[str, Any], patterns: list[str]) -> None:
        self.admin = AdminClient(kafka_config)
        self.patterns = patterns

    def groups(self, timeout: float = 5.0) -> list[str]:
        """Active groups whose id matches one of the glob patterns."""
        result = self.admin.list_consumer_groups(request_timeout=timeout).result(timeout)
        return sorted(
            g.group_id
            for g in result.valid
            if g.state not in _IDLE and any(fnmatch.fnmatch(g.group_id, p) for p in self.patterns)
        )

    def lag(self, group: str, timeout: float = 5.0) -> int | None:
        """Total lag of one group over the partitions it has committed; None on error."""
        try:
            futures = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
            )
            committed = futures[group].result(timeout).topic_partitions or []
            committed = [tp for tp in committed if tp.offset >= 0 and not tp.error]
            if not committed:
                return 0
            ends = self.admin.list_offsets(
                {
                    KafkaTopicPartition(tp.topic, tp.partition): OffsetSpec.latest()
                    for tp in committed
                },
                request_timeout=timeout,
            )
            end_by_tp = {
                (tp.topic, tp.partition): f.result(timeout).offset for tp, f in ends.items()
            }
        except (KafkaException, TimeoutError, ValueError) as exc:
            log.debug("lag unavailable", extra={"group": group, "error": str(exc)})
            return None
        return sum(max(0, end_by_tp[(tp.topic, tp.partition)] - tp.offset) for tp in committed)

    def snapshot(self) -> dict[str, int | None]:
        """group -> lag for every matching active group; empty when Kafka does not answer."""
        try:
            groups = self.groups()
        except (KafkaException, TimeoutError) as exc:
            log.debug("cannot list consumer groups", extra={"error": str(exc)})
            return {}
        return {g: self.lag(g) for g in groups}
