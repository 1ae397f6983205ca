"""A cheaper `Properties` for the packets paho-mqtt 2.x decodes; installed by MqttConnection.

paho builds a new `Properties` for every PUBLISH it reads: each instance builds its own two
tables of the 27 MQTT v5 property names and types, and `unpack` then deletes the attributes a
fresh instance does not have, one name at a time. That is most of paho's cost per message.
`SharedTableProperties` is the same class with those constant tables built once and shared
(nothing writes to them), and with nothing to delete when the packet carries no properties
(the usual case). Packets with properties are parsed by paho's own code, unchanged.

`install()` puts it in `paho.mqtt._packet` (where paho's decoders look `Properties` up) only if
paho's Properties still holds exactly the tables this was written for; otherwise paho is left
alone. The unit tests compare both classes on packets with every kind of property. Worth
proposing upstream: build the tables once, at class level.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt._packet as paho_packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

#: The instance attributes paho's Properties.__init__ sets (2.1, 2.2).
_TABLE_ATTRS = ("packetType", "types", "names", "properties")
_TABLES = Properties(PacketTypes.PUBLISH)


class SharedTableProperties(Properties):
    """paho's Properties, built without rebuilding its constant tables each time."""

    def __init__(self, packetType: int) -> None:  # paho names it so
        set_attr = object.__setattr__
        set_attr(self, "packetType", packetType)
        set_attr(self, "types", _TABLES.types)
        set_attr(self, "names", _TABLES.names)
        set_attr(self, "properties", _TABLES.properties)

    def unpack(self, buffer: Any) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00" and len(vars(self)) == len(_TABLE_ATTRS):
            return self, 1  # property length 0 on a fresh instance: nothing to read or clear
        result: tuple[Properties, int] = super().unpack(buffer)
        return result


def install() -> bool:
    """Makes paho's packet decoders use SharedTableProperties; False when paho has changed."""
    if paho_packet.Properties is SharedTableProperties:
        return True
    if paho_packet.Properties is not Properties or tuple(vars(_TABLES)) != _TABLE_ATTRS:
        return False
    paho_packet.Properties = SharedTableProperties  # type: ignore[misc]
    return True
