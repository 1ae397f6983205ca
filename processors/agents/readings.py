"""readings: telemetry.raw -> the step chain -> telemetry.enriched, in one hop.

One decode and one encode per reading; every reject of the chain goes to telemetry.dlq
naming the step that made it (processors/chain.py has the route itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plumbing.reasons import Reason
from plumbing.topics import ENRICHED, RAW
from processors.forwarder import Send
from processors.steps import Reject

if TYPE_CHECKING:
    import faust

    from processors.agents import AgentContext
    from processors.chain import Chain
    from processors.forwarder import Forwarder, Handler, Incoming, Output

AGENT = "readings"
READS = "RawReading"
WRITES = "EnrichedReading"


def chain_handler(forwarder: Forwarder, chain: Chain) -> Handler:
    """One decoded RawReading -> its EnrichedReading records and dead letters."""
    codec = forwarder.codec

    def handle(incoming: Incoming) -> list[Output]:
        assert incoming.record is not None
        result = chain.run(incoming.record)
        outputs: list[Output] = []
        for record in result.records:
            try:
                value = codec.encode(WRITES, record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A step (most likely a user's) returned something that is not a reading.
                outputs.append(forwarder.dead_letter(incoming, chain.names[-1], Reject(
                    Reason.UNDECODABLE_RECORD,
                    f"the chain {','.join(chain.names)} returned a record that is not an "
                    f"{WRITES}: {exc!r}")))
                continue
            # The contract's key is the device id, whatever came in.
            outputs.append(Send(ENRICHED, record["device_id"].encode(), value))
        outputs.extend(
            forwarder.dead_letter(incoming, stage, reject) for stage, reject in result.rejects
        )
        return outputs

    return handle


def register(context: AgentContext, chain: Chain) -> None:
    forwarder = context.forwarder
    handle = chain_handler(forwarder, chain)

    @context.app.agent(forwarder.source(RAW), name=AGENT)
    async def readings(stream: faust.StreamT[bytes]) -> None:
        await forwarder.run(stream, agent=AGENT, stage=chain.names[0], reads=READS, handle=handle)
