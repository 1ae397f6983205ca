"""The two ways a replayed original goes back: a Kafka producer and a QoS 1 MQTT client.

Both send a chunk, then `confirm` waits until the broker acknowledged each record (Kafka's
delivery report, MQTT's PUBACK): only confirmed records are recorded as replayed.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from confluent_kafka import Producer

from dlq.destinations import Destination
from dlq.settings import DlqSettings

Headers = list[tuple[str, bytes]]
#: The type confluent-kafka's stubs ask for (headers are bytes here).
_KafkaHeaders = list[tuple[str, str | bytes | None]]


class KafkaSender:
    def __init__(self, settings: DlqSettings) -> None:
        self.producer = Producer({
            **settings.confluent_config(),
            "client.id": f"telemetry-dlq-replay-{uuid.uuid4().hex[:8]}",
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 20,
            # The Java clients' (and Faust's) key hash, as ingest uses: a device's records
            # sit in the same partition number of every topic.
            "partitioner": "murmur2_random",
        })
        self._results: dict[int, bool] = {}
        self._next = 0

    def send(self, dest: Destination, headers: Headers) -> int:
        """Queues one record; returns the handle `confirm` answers for."""
        handle = self._next
        self._next += 1

        def delivered(err: Any, _msg: Any) -> None:
            self._results[handle] = err is None

        while True:
            try:
                kafka_headers: _KafkaHeaders = list(headers)
                self.producer.produce(dest.topic, dest.payload, dest.key, headers=kafka_headers,
                                      on_delivery=delivered)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)
        return handle

    def confirm(self, handles: list[int], timeout_s: float) -> list[bool]:
        """Whether Kafka confirmed each handle (unconfirmed after `timeout_s`: False)."""
        self.producer.flush(timeout_s)
        return [self._results.pop(h, False) for h in handles]

    def close(self) -> None:
        self.producer.flush(10)


class MqttSender:
    def __init__(self, settings: DlqSettings, connect_timeout_s: float = 10.0) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"telemetry-dlq-replay-{uuid.uuid4().hex[:8]}")
        if settings.dlq_mqtt_username:
            password = settings.dlq_mqtt_password
            self.client.username_pw_set(settings.dlq_mqtt_username,
                                        password.get_secret_value() if password else None)
        tls = settings.mqtt_tls_context()
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()
        deadline = time.monotonic() + connect_timeout_s
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                self.close()
                raise ConnectionError(
                    f"MQTT broker {settings.mqtt_host}:{settings.mqtt_port} did not accept the "
                    f"connection in {connect_timeout_s:.0f} s (check TELEMETRY_DLQ_MQTT_USERNAME "
                    "and TELEMETRY_DLQ_MQTT_PASSWORD)")
            time.sleep(0.05)
        self._infos: dict[int, mqtt.MQTTMessageInfo | None] = {}
        self._next = 0

    def send(self, dest: Destination, headers: Headers) -> int:
        """Publishes at QoS 1 (MQTT 3.1.1 has no headers: the trace id is not carried)."""
        handle = self._next
        self._next += 1
        try:
            self._infos[handle] = self.client.publish(dest.topic, dest.payload, qos=1,
                                                      retain=dest.retain)
        except ValueError:  # a topic paho refuses to publish to: fails in `confirm`
            self._infos[handle] = None
        return handle

    def confirm(self, handles: list[int], timeout_s: float) -> list[bool]:
        deadline = time.monotonic() + timeout_s
        out = []
        for h in handles:
            info = self._infos.pop(h)
            if info is None:
                out.append(False)
                continue
            if info.rc == mqtt.MQTT_ERR_SUCCESS and not info.is_published():
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            out.append(info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
