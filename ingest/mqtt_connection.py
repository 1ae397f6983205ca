"""One connection to the MQTT broker: a persistent v5 session and manual, in-order PUBACKs.

aiomqtt drives paho on the event loop; paho would acknowledge a QoS 1 message as soon as it
is read, so it is switched to manual acknowledgement and the PUBACK goes out through
`InOrderAcks` only once Kafka has the message. A new connection is a new `MqttConnection`:
acknowledgements left over from a dropped one are never sent (the broker delivers those
messages again, with the same session, and they are produced again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.acks import InOrderAcks
from ingest.metrics import MESSAGES_ACKED
from ingest.settings import IngestSettings

log = logging.getLogger("ingest.mqtt")


@dataclass(frozen=True, slots=True)
class Inbound:
    """A PUBLISH as received. `topic` keeps bytes that are not UTF-8 as surrogate escapes
    (the broker should never send such a topic; if it does, it is rejected, not crashed on)."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool


class SubscribeRefused(aiomqtt.MqttError):
    """The broker did not grant a subscription (check its ACL)."""


class MqttConnection:
    def __init__(self, settings: IngestSettings) -> None:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = settings.mqtt_session_expiry_s
        props.ReceiveMaximum = settings.mqtt_receive_maximum
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self._client = aiomqtt.Client(
            settings.mqtt_host,
            settings.mqtt_port,
            username=settings.mqtt_username,
            password=password,
            identifier=settings.mqtt_client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            keepalive=settings.mqtt_keepalive_s,
            properties=props,
            tls_params=aiomqtt.TLSParameters(ca_certs=settings.mqtt_tls_ca_file)
            if settings.mqtt_tls
            else None,
            logger=logging.getLogger("ingest.mqtt.paho"),
        )
        self._paho: paho.Client = self._client._client
        self._paho.manual_ack_set(True)
        self._paho.on_message = self._on_message
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self._open = False
        self.acks = InOrderAcks(self._send_puback)

    async def __aenter__(self) -> MqttConnection:
        await self._client.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        await self._client.__aexit__(exc_type, exc, tb)

    async def end_session(self, timeout: float = 10.0) -> None:
        """Disconnects with Session Expiry 0: the broker forgets this session, so it stops
        routing this pod's share of the shared subscription to a session nobody reads."""
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self._open = False
        if self._paho.disconnect(properties=props) != paho.MQTT_ERR_SUCCESS:
            return
        with contextlib.suppress(asyncio.TimeoutError, aiomqtt.MqttError):
            await asyncio.wait_for(asyncio.shield(self._client._disconnected), timeout)

    @property
    def connected(self) -> bool:
        return self._open and not self._client._disconnected.done()

    async def subscribe(self, shared_telemetry_filter: str, metadata_filter: str) -> None:
        """QoS 1 on both; retained metadata only when the subscription is new to the session,
        so a reconnect does not replay every device's tags."""
        granted = await self._client.subscribe(shared_telemetry_filter, qos=1)
        _check_granted(shared_telemetry_filter, granted)
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        granted = await self._client.subscribe(metadata_filter, options=options)
        _check_granted(metadata_filter, granted)

    async def unsubscribe(self, *topic_filters: str) -> None:
        """Stops new deliveries; everything sent before the UNSUBACK is in the inbox after."""
        await self._client.unsubscribe(list(topic_filters))

    def inbox_empty(self) -> bool:
        return self._inbox.empty()

    async def next_message(self) -> Inbound:
        """The next PUBLISH; raises aiomqtt.MqttError when the connection is lost."""
        get = asyncio.ensure_future(self._inbox.get())
        try:
            await asyncio.wait(
                (get, self._client._disconnected), return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            get.cancel()
            raise
        if get.done():
            return get.result()
        get.cancel()
        raise aiomqtt.MqttError("disconnected from the broker") from (
            self._client._disconnected.exception()
        )

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "surrogateescape")
        inbound = Inbound(topic, bytes(message.payload), message.qos, message.mid, message.retain)
        self._loop.call_soon_threadsafe(self._inbox.put_nowait, inbound)

    def _send_puback(self, mid: int, qos: int) -> None:
        if qos == 0:
            return
        if not self.connected:
            log.debug("connection gone; the broker will deliver this message again",
                      extra={"mid": mid})
            return
        self._paho.ack(mid, qos)
        MESSAGES_ACKED.inc()


def _check_granted(topic_filter: str, granted: Any) -> None:
    codes = list(granted)
    for code in codes:
        value = code.value if isinstance(code, ReasonCode) else int(code)
        if value >= 0x80:
            raise SubscribeRefused(f"broker refused the subscription to {topic_filter!r}: "
                                   f"{code}; check the broker's ACL for this user")
        if value < 1:
            log.warning("broker granted only QoS 0: messages may be lost in transit",
                        extra={"filter": topic_filter})
