"""Options of `telemetry dlq` (all `TELEMETRY_DLQ_*`, plus the shared Kafka and MQTT ones)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from plumbing.settings import KafkaSettings, MqttTlsSettings
from plumbing.topics import DLQ


class DlqSettings(KafkaSettings, MqttTlsSettings):
    """Where `telemetry dlq` reads dead letters, and where replay sends them."""

    component: ClassVar[str] = "dlq"

    dlq_topic: str = DLQ
    """The dead-letter topic read by summary, show and replay."""
    dlq_replayed_topic: str = "telemetry.dlq.replayed"
    """Internal compacted topic recording each replayed dead letter (key
    `<topic>/<partition>/<offset>`), so a replay skips what an earlier one sent. Created by
    the first replay (1 partition, `cleanup.policy=compact`)."""
    dlq_replay_rate: float = Field(default=100.0, ge=0)
    """Records per second a replay sends, MQTT and Kafka together (`--rate` overrides it);
    0 = as fast as the broker confirms."""
    dlq_replay_chunk: int = Field(default=500, ge=1)
    """Records sent before waiting for the brokers to confirm them and recording them as
    replayed: a crash replays at most this many again (storage is idempotent)."""
    dlq_confirm_timeout_s: float = Field(default=60.0, gt=0)
    """How long a replay waits for Kafka or the MQTT broker to confirm a chunk."""
    dlq_replay_metadata_retained: bool = False
    """Publish replayed device metadata (`devices/<id>/metadata`) as retained. Off: the
    broker keeps the retained message it has (the device's newest), and ingest still takes
    the replayed one to `devices.metadata`."""

    mqtt_host: str = "127.0.0.1"
    """MQTT broker host (replay of ingest's rejects)."""
    mqtt_port: int = 1883
    """MQTT broker port."""
    dlq_mqtt_username: str | None = None
    """MQTT user name replay publishes as: one that may publish for every device it replays
    (the local stack's `fleet` user: `telemetry stack env`)."""
    dlq_mqtt_password: SecretStr | None = None
    """MQTT password (never logged)."""
