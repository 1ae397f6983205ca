"""Faust agents of the processors, one per file.

`readings` (the step chain, telemetry.raw -> telemetry.enriched) and `device_metadata` (the
device tags table) always run. More agents, for what a step cannot do (state, windows,
outputs of their own), are registered under the entry-point group `telemetry.agents` and
named in `TELEMETRY_PROCESS_AGENTS`; each entry point is a `register(context)` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust

    from processors.device_tags import DeviceTags
    from processors.forwarder import Forwarder
    from processors.settings import ProcessorSettings

#: The entry-point group extra agents are registered under.
ENTRY_POINT_GROUP = "telemetry.agents"


@dataclass(frozen=True)
class AgentContext:
    """What an agent's `register` gets: the app to add its agent (and tables) to, the
    settings, the shared loop that acks only after Kafka confirmed, and the device tags."""

    app: faust.App
    settings: ProcessorSettings
    forwarder: Forwarder
    device_tags: DeviceTags


#: What an entry point of `telemetry.agents` names.
AgentRegister = Callable[[AgentContext], None]
