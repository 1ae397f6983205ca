"""readings: telemetry.raw -> the step chain -> telemetry.enriched, in one hop.

One decode and one encode per reading; what the chain refused in a reading goes to
telemetry.dlq as one dead letter naming the step that made it, every metric refused alone
listed in it (processors/chain.py has the route itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plumbing.dead_letters import RejectedMetric
from plumbing.reasons import Reason
from plumbing.topics import ENRICHED, RAW
from processors.forwarder import Send
from processors.hand_avro import EnrichedReadingWriter
from processors.steps import Reject
from processors.timestamps import short_repr

if TYPE_CHECKING:
    import faust

    from processors.agents import AgentContext
    from processors.chain import Chain
    from processors.forwarder import Forwarder, Handler, Incoming, Output

AGENT = "readings"
READS = "RawReading"
WRITES = "EnrichedReading"


def chain_handler(forwarder: Forwarder, chain: Chain) -> Handler:
    """One decoded RawReading -> its EnrichedReading records and at most one dead letter."""
    encode = EnrichedReadingWriter(forwarder.codec).encode

    def handle(incoming: Incoming) -> list[Output]:
        assert incoming.record is not None
        result = chain.run(incoming.record)
        outputs: list[Output] = []
        for record in result.records:
            try:
                value = encode(record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A step (most likely a user's) returned something that is not a reading.
                result.rejects.append((chain.names[-1], Reject(
                    Reason.UNDECODABLE_RECORD,
                    f"the chain {','.join(chain.names)} returned a record that is not an "
                    f"{WRITES}: {exc!r}")))
                continue
            # The contract's key is the device id, whatever came in.
            outputs.append(Send(ENRICHED, record["device_id"].encode(), value))
        if result.rejects:
            outputs.append(
                reading_dead_letter(forwarder, incoming, result.rejects, bool(outputs)))
        return outputs

    return handle


def reading_dead_letter(
    forwarder: Forwarder,
    incoming: Incoming,
    rejects: Sequence[tuple[str, Reject]],
    forwarded: bool,
) -> Send:
    """The one dead letter of everything the chain refused in one reading, not one per
    metric: a reading of 1,000 bad metrics carries its bytes once.

    A reading refused as a whole names that reason (and step), the metrics refused alone
    before are listed. With only metrics (or `seq`) refused alone, they are listed, and the
    first one's reason sums them up. A metric refused by another step than the letter's has
    that step in its detail. Every reject is counted under its own step and reason.
    """
    whole = [(step, r) for step, r in rejects if r.metric is None]
    alone = [(step, r) for step, r in rejects if r.metric is not None]
    stage, first = (whole or alone)[0]
    listed = [
        RejectedMetric(r.metric or "", r.reason,
                       r.detail if step == stage else f"{step}: {r.detail}")
        for step, r in alone
    ]
    counted = [(step, r.reason) for step, r in rejects]
    if whole:
        detail = first.detail
        if len(whole) > 1:  # a step that split the reading refused more than one part
            detail += (f" (and {len(whole) - 1} more parts of the reading refused: "
                       f"{_by_reason(whole[1:])})")
        if listed:
            detail += f" ({len(listed)} metrics were refused alone before, listed)"
        summary = Reject(first.reason, detail)
    elif len(alone) == 1:
        summary = first
    else:
        rest = ("the rest of the reading went on" if forwarded
                else "nothing was left to store, so the reading went no further")
        summary = Reject(first.reason, (
            f"{len(alone)} metrics refused alone ({_by_reason(alone)}), each listed with its "
            f"reason; {rest}. First: {short_repr(first.metric)}: {first.detail}"))
    return forwarder.dead_letter(incoming, stage, summary, listed, counted)


def _by_reason(rejects: Sequence[tuple[str, Reject]]) -> str:
    """`reason x n` for each reason, the most frequent first."""
    tally = Counter(r.reason.value for _, r in rejects)
    return ", ".join(f"{reason} x{n}" for reason, n in tally.most_common())


def register(context: AgentContext, chain: Chain) -> None:
    forwarder = context.forwarder
    handle = chain_handler(forwarder, chain)

    @context.app.agent(forwarder.source(RAW), name=AGENT)
    async def readings(stream: faust.StreamT[bytes]) -> None:
        await forwarder.run(stream, agent=AGENT, stage=chain.names[0], reads=READS, handle=handle)
