"""The local Mosquitto is real: QoS 1 round trip with the password, refusal without it, and a
persistent session left subscribed for a client that connects later."""

from __future__ import annotations

import queue
import uuid

import paho.mqtt.client as mqtt

from stack.local_stack import LocalStack
from stack.mosquitto import connack_code, open_persistent_session


def _client(username: str, password: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    c.username_pw_set(username, password)
    return c


def test_qos1_round_trip_from_the_fleet_to_ingest(local_stack: LocalStack) -> None:
    creds = local_stack.creds
    topic = f"devices/test-{uuid.uuid4().hex[:8]}/telemetry"
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    sub = _client(creds.mqtt_ingest_username, creds.mqtt_ingest_password)
    sub.on_message = lambda c, u, m: received.put(m)
    sub.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(True)
    sub.connect("127.0.0.1", local_stack.mosquitto.port)
    sub.loop_start()
    try:
        sub.subscribe(topic, qos=1)
        assert subscribed.get(timeout=10)
        pub = _client(creds.mqtt_fleet_username, creds.mqtt_fleet_password)
        pub.connect("127.0.0.1", local_stack.mosquitto.port)
        pub.loop_start()
        info = pub.publish(topic, b'{"metrics": {"temperature": 21.5}}', qos=1)
        info.wait_for_publish(10)
        assert info.is_published()  # the broker sent PUBACK
        pub.loop_stop()
        pub.disconnect()
        msg = received.get(timeout=10)
        assert msg.payload == b'{"metrics": {"temperature": 21.5}}'
        assert msg.qos == 1
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_wrong_password_and_anonymous_are_refused(local_stack: LocalStack) -> None:
    port = local_stack.mosquitto.port
    creds = local_stack.creds
    # CONNACK "not authorized": 5 in MQTT 3.1.1, which paho 2 reports as reason code 135.
    refused = {5, 135}
    for user, password in (
        (creds.mqtt_ingest_username, creds.mqtt_ingest_password),
        (creds.mqtt_fleet_username, creds.mqtt_fleet_password),
        (creds.mqtt_admin_username, creds.mqtt_admin_password),
    ):
        assert connack_code(port, user, password) == 0, user
        assert connack_code(port, user, "not-the-password") in refused, user
    assert connack_code(port, "telemetry", "anything") in refused  # the old shared user is gone
    assert connack_code(port, None, None) in refused


def test_a_session_left_subscribed_delivers_from_connack_without_a_subscribe(
    local_stack: LocalStack,
) -> None:
    """What the benchmark starts Telegraf on: published after the session was left and
    before its client connects, a message is delivered to a client that never subscribes."""
    port, creds = local_stack.mosquitto.port, local_stack.creds
    client_id = f"test-session-{uuid.uuid4().hex[:8]}"
    topic = f"devices/test-{uuid.uuid4().hex[:8]}/telemetry"
    user, password = creds.mqtt_ingest_username, creds.mqtt_ingest_password  # as Telegraf
    assert open_persistent_session(port, user, password, client_id, "devices/+/telemetry", qos=1)
    pub = _client(creds.mqtt_fleet_username, creds.mqtt_fleet_password)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    info = pub.publish(topic, b'{"seq": 1}', qos=1)
    info.wait_for_publish(10)
    assert info.is_published()
    pub.loop_stop()
    pub.disconnect()
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    late = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv311, clean_session=False)  # fmt: skip
    late.username_pw_set(user, password)
    late.on_message = lambda c, u, m: received.put(m)
    late.connect("127.0.0.1", port)
    late.loop_start()
    try:
        msg = received.get(timeout=10)
        assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"seq": 1}', 1)
    finally:
        late.loop_stop()
        late.disconnect()
        assert connack_code(port, user, password, client_id=client_id) == 0  # ends the session
