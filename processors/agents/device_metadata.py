"""device_metadata: devices.metadata (DeviceMetadata, compacted) -> the device tags table.

Part of the enrich stage: a record sets a device's tags, a tombstone (null value) forgets
them. Records that are not DeviceMetadata, or whose key is not their device_id, are
dead-lettered (stage `enrich`) and change nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plumbing.reasons import Reason
from plumbing.topics import METADATA
from processors.steps import Reject

if TYPE_CHECKING:
    import faust

    from processors.device_tags import DeviceTags
    from processors.pipeline import Incoming, Output, Pipeline

STAGE = "enrich"
AGENT = "device_metadata"


def metadata_problem(key: bytes | None, record: dict[str, object] | None) -> Reject | None:
    """Why a devices.metadata record cannot update the table, or None when it can."""
    if not key:
        return Reject(
            Reason.INVALID_METADATA,
            "devices.metadata record without a key; the key must be the device_id (UTF-8), "
            "or compaction cannot keep the latest tags per device",
        )
    if record is not None and record.get("device_id") != key.decode("utf-8", "replace"):
        return Reject(
            Reason.INVALID_METADATA,
            f"devices.metadata record for device {record.get('device_id')!r} has key "
            f"{key.decode('utf-8', 'replace')!r}; key and device_id must be equal",
        )
    return None


def register(pipeline: Pipeline, device_tags: DeviceTags) -> None:
    def handle(incoming: Incoming) -> list[Output]:
        problem = metadata_problem(incoming.key, incoming.record)
        if problem is not None:
            return [pipeline.dead_letter(incoming, STAGE, problem)]
        assert incoming.key is not None
        if incoming.record is None:
            return [device_tags.forget(incoming.key, incoming.partition)]
        tags = dict(incoming.record["tags"])
        return [device_tags.remember(incoming.key, tags, incoming.partition)]

    @pipeline.app.agent(pipeline.source(METADATA), name=AGENT)
    async def device_metadata(stream: faust.StreamT[bytes]) -> None:
        await pipeline.run_handler(
            stream,
            stage=STAGE,
            agent=AGENT,
            reads="DeviceMetadata",
            handle=handle,
            tombstones=True,
        )
