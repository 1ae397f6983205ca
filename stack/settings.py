"""Where the local stack keeps its caches and data, which ports and versions it uses."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from plumbing.settings import TelemetrySettings


def _xdg(var: str, fallback: str) -> Path:
    import os

    return Path(os.environ.get(var) or Path.home() / fallback)


class StackSettings(TelemetrySettings):
    """Options of the local stack (all `TELEMETRY_STACK_*`)."""

    stack_cache_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "telemetry-pipeline"
    )
    """Built and downloaded servers, keyed by version; survives checkouts."""
    stack_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "telemetry-pipeline"
    )
    """Data, logs, PID files and credentials of the running stack."""
    stack_mqtt_port: int = 1883
    """Mosquitto listener on 127.0.0.1."""
    stack_kafka_port: int = 9092
    """Kafka client listener on 127.0.0.1."""
    stack_kafka_controller_port: int = 9093
    """Kafka KRaft controller listener on 127.0.0.1."""
    stack_influxdb_port: int = 8086
    """InfluxDB HTTP API on 127.0.0.1."""
    stack_prometheus_port: int = 9090
    """Prometheus on 127.0.0.1."""
    stack_kafka_version: str = "4.3.1"
    """Apache Kafka broker version resolved from Maven Central."""
    stack_influxdb_version: str = "v2.9.1"
    """InfluxDB OSS module version built from the Go module proxy."""
    stack_kafka_heap: str = "768m"
    """JVM heap of the Kafka broker."""
    stack_telegraf_version: str = "1.37.2"
    """Telegraf built from its Go module (optional: `stack up --with telegraf`, and
    `telemetry benchmark --compare telegraf`)."""
    stack_telegraf_bucket: str = "telegraf"
    """InfluxDB bucket Telegraf writes into (same org and InfluxDB as the pipeline's)."""
    stack_telegraf_client_id: str = "telemetry-telegraf"
    """MQTT client id of Telegraf's persistent session."""
    stack_telegraf_batch_size: int = 1000
    """Telegraf's metric_batch_size and its mqtt_consumer max_undelivered_messages (one
    reading per message: a full batch is written at once); at most Mosquitto's 1,000 in flight."""
    stack_telegraf_flush_interval_s: float = 1.0
    """Telegraf's flush_interval: the longest a reading waits for a batch that does not fill."""

    @property
    def logs_dir(self) -> Path:
        return self.stack_dir / "logs"
