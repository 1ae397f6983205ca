"""The device tags table: a Faust GlobalTable fed from the compacted topic devices.metadata.

Why a GlobalTable and not a regular table co-partitioned with telemetry.raw: a
co-partitioned lookup only works when every producer of both topics uses the same
partitioner. Ingest does (murmur2, as Java clients and Faust), but devices.metadata is also
written by whatever tools a user points at it (librdkafka's default is CRC32), and one
device in partition 2 of one topic and 5 of the other would silently lose its tags. A
GlobalTable keeps every device on every worker (small: a few hundred bytes per device) and
needs no partitioning agreement.

Every worker reads every changelog partition as a standby
(`synchronize_all_active_partitions`), so a change written by the worker that owns the
metadata partition reaches all the others. Tags are kept whole; the allow-list is applied
when a reading is enriched, so changing it needs no republishing of metadata.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust

from plumbing.topics import CONTRACT_TOPICS, METADATA

TABLE_NAME = "device_tags"


class DeviceTags:
    """Device id (UTF-8 key bytes) -> that device's tags, as last published."""

    def __init__(self, app: faust.App) -> None:
        self.table = app.GlobalTable(
            TABLE_NAME,
            key_type=bytes,
            partitions=CONTRACT_TOPICS[METADATA][0],
            synchronize_all_active_partitions=True,
            # Every worker holds every changelog partition as active *and* standby, so Faust
            # files changes that arrive while running under "active": it applies those in
            # batches of recovery_buffer_size and, after recovery, flushes an incomplete
            # batch never. With the default of 1000, another worker's tag change would wait
            # for 999 more. 1 applies each change as it arrives (what Faust's GlobalTable
            # docstring advises for more than one worker).
            recovery_buffer_size=1,
            help="Tags of each device from devices.metadata, for the enrich agent.",
        )

    def get(self, device_key: bytes) -> dict[str, str] | None:
        tags = self.table.get(device_key)
        return cast("dict[str, str] | None", tags)

    def get_for(self, device_id: str) -> dict[str, str] | None:
        """The tags of a device by its id (what the `enrich` step asks)."""
        return self.get(device_id.encode())

    # The two writes below are what `table[key] = tags` and `del table[key]` do, except that
    # they return the changelog delivery future: the metadata agent acks its input only
    # once that write is in Kafka (processors/delivery.py).

    def remember(self, device_key: bytes, tags: dict[str, str], partition: int) -> Any:
        self.table.data[device_key] = tags
        return self.table.send_changelog(partition, device_key, tags)

    def forget(self, device_key: bytes, partition: int) -> asyncio.Future[Any]:
        self.table.data.pop(device_key, None)
        fut = self.table.send_changelog(partition, device_key, None, value_serializer="raw")
        return cast("asyncio.Future[Any]", fut)
