"""Options of `telemetry ingest` and `telemetry devices load` (all `TELEMETRY_*`)."""

from __future__ import annotations

import socket
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ingest.metadata import MAX_TAG_KEY_BYTES, MAX_TAG_VALUE_BYTES, MAX_TAGS, TagLimits
from plumbing.settings import KafkaSettings, MqttTlsSettings, ObservabilitySettings

#: Room a dead letter needs beside the original payload: the MQTT topic (at most 64 KiB by the
#: MQTT spec), the detail text and the Avro framing.
DEAD_LETTER_OVERHEAD_BYTES = 70_000


def _default_client_id() -> str:
    return f"telemetry-ingest-{socket.gethostname()}"


class IngestSettings(KafkaSettings, MqttTlsSettings, ObservabilitySettings):
    """Options of the MQTT-to-Kafka ingest pods."""

    component = "ingest"

    mqtt_host: str = "127.0.0.1"
    """MQTT broker host."""
    mqtt_port: int = 1883
    """MQTT broker port."""
    mqtt_username: str | None = None
    """MQTT user name; none for an anonymous connection."""
    mqtt_password: SecretStr | None = None
    """MQTT password (never logged)."""
    mqtt_client_id: str = Field(default_factory=_default_client_id)
    """Fixed MQTT client id of this pod. The broker keeps the session (subscriptions and
    messages not yet acknowledged) under this id, so a restarted pod must reuse it: run ingest
    as a StatefulSet, where the hostname (the default `telemetry-ingest-<hostname>`) is stable."""
    mqtt_shared_group: str = "telemetry-ingest"
    """Shared-subscription group: the pods of one group split the telemetry between them."""
    mqtt_telemetry_filter: str = "devices/+/telemetry"
    """Telemetry topic filter; its first `+` level is the device id. Subscribed as
    `$share/<group>/<filter>`."""
    mqtt_metadata_filter: str = "devices/+/metadata"
    """Device metadata topic filter (retained tags); its first `+` level is the device id.
    Not shared, so every pod receives the retained tags once when its session is new."""
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=65535)
    """MQTT keep-alive interval in seconds."""
    mqtt_session_expiry_s: int = Field(default=3600, ge=0, le=0xFFFFFFFF)
    """How long the broker keeps this pod's session (and its unacknowledged messages) after a
    disconnect; a pod that restarts within this time loses nothing."""
    mqtt_end_session_on_shutdown: bool = True
    """On SIGTERM, unsubscribe, handle what the broker had already sent, and once all of it
    is delivered and acknowledged end the MQTT session instead of keeping it for
    `mqtt_session_expiry_s`. With several pods this is what you want: the broker stops
    routing this pod's share of the shared subscription to a session nobody reads (Mosquitto
    does that, and drops those messages when the session expires: lost on a scale-down). With
    a single pod, set false so messages published while it restarts wait in its session. A
    crash never ends the session."""
    mqtt_receive_maximum: int = Field(default=1000, ge=1, le=65535)
    """QoS 1 messages the broker may send before this pod acknowledges them (MQTT v5 Receive
    Maximum); unacknowledged messages wait for Kafka, so this bounds messages held in memory."""
    mqtt_reconnect_max_s: float = Field(default=30.0, gt=0)
    """Longest wait between MQTT reconnect attempts (exponential backoff with jitter)."""

    ingest_max_payload_bytes: int = Field(default=256 * 1024, ge=1)
    """Largest MQTT payload accepted; larger ones are dead-lettered as `payload_too_large`."""
    ingest_max_readings_per_message: int = Field(default=10_000, ge=1)
    """Most readings (batch items) in one MQTT message; a larger batch is dead-lettered whole
    as `too_many_readings` (one dead letter, not one per reading)."""
    ingest_max_metrics_per_reading: int = Field(default=1_000, ge=1)
    """Most metrics in one reading; a message with a reading over it is dead-lettered whole as
    `too_many_metrics`."""
    ingest_max_tags_per_device: int = Field(default=MAX_TAGS, ge=1)
    """Most metadata tags of one device; more is `too_many_tags` (the message is refused)."""
    ingest_max_tag_key_bytes: int = Field(default=MAX_TAG_KEY_BYTES, ge=1)
    """Longest tag key in UTF-8 bytes; a longer tag is refused alone (`tag_too_long`)."""
    ingest_max_tag_value_bytes: int = Field(default=MAX_TAG_VALUE_BYTES, ge=1)
    """Longest tag value in UTF-8 bytes; a longer tag is refused alone (`tag_too_long`)."""
    ingest_max_in_flight: int = Field(default=10_000, ge=1)
    """Kafka records produced but not yet confirmed; at the limit ingest takes no new message
    (what the broker already sent waits, in order) until Kafka confirms more."""
    ingest_health_port: int = 9101
    """Port of /metrics, /healthz and /readyz (env TELEMETRY_INGEST_HEALTH_PORT)."""
    ingest_shutdown_timeout_s: float = Field(default=30.0, ge=0)
    """The whole SIGTERM shutdown budget: finish what the broker sent, wait for Kafka, send the
    PUBACKs. Anything unconfirmed by then stays unacknowledged and is delivered again. Also
    the flush timeout of `devices load`."""

    kafka_linger_ms: int = Field(default=20, ge=0)
    """How long the producer waits to fill a batch (librdkafka `linger.ms`)."""
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    """Producer compression codec."""
    kafka_message_timeout_ms: int = Field(default=120_000, ge=1000)
    """How long librdkafka retries one record before reporting it failed; ingest then
    produces it again after a backoff, so nothing is given up while the process lives."""
    kafka_max_record_bytes: int = Field(default=1_000_000, ge=1024)
    """Largest Kafka record (librdkafka `message.max.bytes`); must stay within the broker's
    and topic's `max.message.bytes`. A reading that encodes larger is `payload_too_large`."""
    kafka_probe_interval_s: float = Field(default=10.0, gt=0)
    """How often /readyz re-checks that Kafka answers metadata requests."""

    @field_validator("mqtt_telemetry_filter", "mqtt_metadata_filter")
    @classmethod
    def _filter_has_device_level(cls, value: str) -> str:
        levels = value.split("/")
        if value.startswith("$share/"):
            raise ValueError("give the filter without `$share/<group>/`; set the group in "
                             "mqtt_shared_group")
        if "+" not in levels:
            raise ValueError("the filter needs a `+` level: it holds the device id")
        if any(("+" in lv or "#" in lv) and len(lv) > 1 for lv in levels) or (
            "#" in levels and levels.index("#") != len(levels) - 1
        ):
            raise ValueError("not a valid MQTT topic filter")
        return value

    @field_validator("mqtt_shared_group")
    @classmethod
    def _group_is_one_level(cls, value: str) -> str:
        if not value or any(c in value for c in "/+#"):
            raise ValueError("a shared-subscription group is non-empty and has no '/', '+', '#'")
        return value

    @field_validator("mqtt_client_id")
    @classmethod
    def _client_id_not_empty(cls, value: str) -> str:
        if not value or len(value.encode()) > 65535:
            raise ValueError("a fixed, non-empty MQTT client id is needed for a persistent "
                             "session")
        return value

    @model_validator(mode="after")
    def _dead_letters_fit_in_kafka(self) -> IngestSettings:
        need = self.ingest_max_payload_bytes + DEAD_LETTER_OVERHEAD_BYTES
        if need > self.kafka_max_record_bytes:
            raise ValueError(
                f"ingest_max_payload_bytes ({self.ingest_max_payload_bytes}) + "
                f"{DEAD_LETTER_OVERHEAD_BYTES} must fit in kafka_max_record_bytes "
                f"({self.kafka_max_record_bytes}): a rejected payload travels whole to the DLQ"
            )
        return self

    def producer_config(self) -> dict[str, Any]:
        """librdkafka options of the ingest producers: nothing lost, nothing doubled by retries."""
        return {
            **self.confluent_config(),
            "client.id": self.mqtt_client_id,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": self.kafka_compression,
            "linger.ms": self.kafka_linger_ms,
            "message.timeout.ms": self.kafka_message_timeout_ms,
            "message.max.bytes": self.kafka_max_record_bytes,
            # The Java clients' (and Faust's) key hash, so a device sits in the same partition
            # number of every topic whoever produced it; librdkafka's default is CRC32.
            "partitioner": "murmur2_random",
        }

    @property
    def tag_limits(self) -> TagLimits:
        return TagLimits(self.ingest_max_tags_per_device, self.ingest_max_tag_key_bytes,
                         self.ingest_max_tag_value_bytes)

    @property
    def shared_telemetry_filter(self) -> str:
        return f"$share/{self.mqtt_shared_group}/{self.mqtt_telemetry_filter}"
