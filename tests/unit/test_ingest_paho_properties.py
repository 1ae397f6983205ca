"""ingest's shared-table Properties decodes every packet exactly as paho's own class does."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import paho.mqtt._packet as paho_packet
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.paho_properties import SharedTableProperties, install

V5 = MQTTProtocolVersion.MQTTv5


@pytest.fixture
def upstream() -> Iterator[None]:
    """paho's own Properties in its decoders for the duration of a block."""
    before = paho_packet.Properties
    paho_packet.Properties = Properties  # type: ignore[misc]
    yield
    paho_packet.Properties = before  # type: ignore[misc]


def publish_body(props: Properties | None, payload: bytes = b'{"metrics": {"a": 1}}') -> bytes:
    packed = props.pack() if props is not None else b"\x00"
    topic = b"devices/d1/telemetry"
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7) + packed + payload


def property_sets() -> list[Properties | None]:
    none = None
    expiry = Properties(PacketTypes.PUBLISH)
    expiry.MessageExpiryInterval = 3600
    full = Properties(PacketTypes.PUBLISH)
    full.PayloadFormatIndicator = 1
    full.ContentType = "application/json"
    full.ResponseTopic = "replies/d1"
    full.CorrelationData = b"\x00\x01\xff"
    full.UserProperty = [("site", "berlin"), ("site", "paris"), ("ü", "🙂")]
    full.SubscriptionIdentifier = [5, 300000]
    full.TopicAlias = 3
    return [none, expiry, full]


def decoded(body: bytes) -> tuple[object, ...]:
    packet = paho_packet.decode_publish(0x32, bytearray(body), V5)
    props = packet.properties
    assert props is not None
    return (packet.topic, packet.mid, packet.qos, packet.payload, props.json(), str(props),
            props.pack())


def test_install_applies_to_the_installed_paho() -> None:
    """If this fails, paho's Properties changed: check SharedTableProperties against it."""
    assert install()
    assert paho_packet.Properties is SharedTableProperties


@pytest.mark.parametrize("props", property_sets())
def test_publish_packets_decode_the_same(props: Properties | None, upstream: None) -> None:
    body = publish_body(props)
    want = decoded(body)
    paho_packet.Properties = SharedTableProperties  # type: ignore[misc]
    assert decoded(body) == want


def test_bad_property_blocks_fail_the_same_way(upstream: None) -> None:
    topic = b"t"
    for props in (b"\x05\x02\x00", b"\x02\x23\x00\x01\x23", b"\xff\xff\xff\xff\x7f", b""):
        body = struct.pack("!H", len(topic)) + topic + b"\x00\x01" + props
        outcomes: list[tuple[object, ...]] = []
        for cls in (Properties, SharedTableProperties):
            paho_packet.Properties = cls  # type: ignore[misc]
            try:
                packet = paho_packet.decode_publish(0x32, bytearray(body), V5)
                outcomes.append(("ok", packet.payload, packet.properties.json()
                                 if packet.properties else None))
            except Exception as exc:  # paho raises MalformedPacket for these
                outcomes.append(("error", type(exc).__name__))
        assert outcomes[0] == outcomes[1], props


def test_instances_do_not_share_what_is_set_on_them() -> None:
    a = SharedTableProperties(PacketTypes.PUBLISH)
    b = SharedTableProperties(PacketTypes.PUBLISH)
    a.ContentType = "text/plain"
    assert not hasattr(b, "ContentType")
    assert a.json() == {"ContentType": "text/plain"}
    assert b.json() == {}
