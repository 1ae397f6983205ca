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

    from processors.agents import AgentContext
    from processors.forwarder import Incoming, Output

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


def register(context: AgentContext) -> None:
    forwarder, device_tags = context.forwarder, context.device_tags

    def handle(incoming: Incoming) -> list[Output]:
        problem = metadata_problem(incoming.key, incoming.record)
        if problem is not None:
            return [forwarder.dead_letter(incoming, STAGE, problem)]
        assert incoming.key is not None
        if incoming.record is None:
            return [device_tags.forget(incoming.key, incoming.partition)]
        tags = dict(incoming.record["tags"])
        return [device_tags.remember(incoming.key, tags, incoming.partition)]

    @context.app.agent(forwarder.source(METADATA), name=AGENT)
    async def device_metadata(stream: faust.StreamT[bytes]) -> None:
        await forwarder.run(
            stream,
            agent=AGENT,
            stage=STAGE,
            reads="DeviceMetadata",
            handle=handle,
            tombstones=True,
        )
