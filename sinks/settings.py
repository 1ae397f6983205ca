"""Options of `telemetry sink influxdb` and `telemetry sink tdengine` (all `TELEMETRY_*`).

`SINK_*` options are shared by both sinks; each destination adds its connection options and
its own consumer group and health port, so both can run side by side from one environment.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from plumbing.settings import KafkaSettings, ObservabilitySettings
from plumbing.topics import ENRICHED

_SQL_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class SinkSettings(KafkaSettings, ObservabilitySettings):
    """What every batching sink shares: topics, batching, retries, shutdown."""

    sink_topics: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [ENRICHED])
    """Topics of EnrichedReading records to store (comma-separated in the environment)."""
    sink_batch_max_points: int = Field(default=5000, ge=1)
    """Records per batch: a batch is written when it holds this many."""
    sink_batch_max_age_ms: int = Field(default=500, ge=1)
    """A batch is written at the latest this long after its first record arrived."""
    sink_retry_initial_s: float = Field(default=0.5, gt=0)
    """First wait before writing a batch again after a retryable failure; doubles each time."""
    sink_retry_max_s: float = Field(default=30.0, gt=0)
    """Cap of the wait between retries of a batch; each wait is drawn between half the current
    cap and the cap, which doubles from sink_retry_initial_s up to this."""
    sink_session_timeout_ms: int = Field(default=10_000, ge=1000)
    """How long the consumer group waits for a sink that went silent (crashed, SIGKILL)
    before its partitions go to the others (librdkafka `session.timeout.ms`; the broker's
    group.min.session.timeout.ms is the floor, 6 s by default)."""
    sink_shutdown_timeout_s: float = Field(default=20.0, ge=0)
    """On SIGTERM, how long to keep retrying the last batch before exiting without committing
    it (it is then read again by the next consumer, nothing is lost)."""

    @field_validator("sink_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        if isinstance(value, str):
            value = [t.strip() for t in value.split(",") if t.strip()]
        if isinstance(value, list) and not value:
            raise ValueError("name at least one topic to consume")
        return value

    def group_id(self) -> str:
        raise NotImplementedError

    def health_port(self) -> int:
        raise NotImplementedError


class InfluxDBSinkSettings(SinkSettings):
    """Options of `telemetry sink influxdb`."""

    component = "sink-influxdb"

    influxdb_url: str = "http://127.0.0.1:8086"
    """InfluxDB 2.x base URL."""
    influxdb_org: str = "telemetry"
    """Organization that owns the bucket."""
    influxdb_bucket: str = "telemetry"
    """Bucket the points go to."""
    influxdb_token: SecretStr = SecretStr("")
    """API token with write access to the bucket (never logged)."""
    influxdb_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of one write request; a timed-out write is retried."""
    influxdb_gzip: bool = False
    """Compress request bodies with gzip (worth it when InfluxDB is across a slow link)."""
    influxdb_ssl_ca_file: str | None = None
    """With an https URL: the CA bundle (PEM) that signed InfluxDB's certificate; the system
    store when unset."""
    influxdb_ssl_cert_file: str | None = None
    """With an https URL: this client's certificate (PEM), for a proxy or server that
    requires one (mutual TLS)."""
    influxdb_ssl_key_file: str | None = None
    """The private key (PEM) of `influxdb_ssl_cert_file`."""
    influxdb_ssl_key_password: SecretStr | None = None
    """Password of `influxdb_ssl_key_file` when it is encrypted (never logged)."""

    def influxdb_tls_options(self) -> dict[str, Any]:
        """influxdb-client's TLS keyword arguments for the options set."""
        options: dict[str, Any] = {}
        if self.influxdb_ssl_ca_file:
            options["ssl_ca_cert"] = self.influxdb_ssl_ca_file
        if self.influxdb_ssl_cert_file:
            options["cert_file"] = self.influxdb_ssl_cert_file
        if self.influxdb_ssl_key_file:
            options["cert_key_file"] = self.influxdb_ssl_key_file
        if self.influxdb_ssl_key_password:
            options["cert_key_password"] = self.influxdb_ssl_key_password.get_secret_value()
        return options
    sink_influxdb_group_id: str = "telemetry-sink-influxdb"
    """Kafka consumer group; pods of one group split the partitions between them."""
    sink_influxdb_health_port: int = 9103
    """Port of /metrics, /healthz and /readyz (env TELEMETRY_SINK_INFLUXDB_HEALTH_PORT)."""

    def group_id(self) -> str:
        return self.sink_influxdb_group_id

    def health_port(self) -> int:
        return self.sink_influxdb_health_port


class TDengineSinkSettings(SinkSettings):
    """Options of `telemetry sink tdengine`."""

    component = "sink-tdengine"

    tdengine_url: str = "http://127.0.0.1:6041"
    """taosAdapter base URL (it serves /influxdb/v1/write and /rest/sql)."""
    tdengine_database: str = "telemetry"
    """Database of the `telemetry` super table; created (PRECISION 'us') when missing. A
    plain identifier (letters, digits, `_`; at most 64)."""
    tdengine_username: str = "root"
    """TDengine user (HTTP basic authentication)."""
    tdengine_password: SecretStr = SecretStr("taosdata")
    """TDengine password (never logged). The default is TDengine's out-of-the-box one:
    change it."""
    tdengine_token: SecretStr | None = None
    """TDengine Cloud token, sent as the `token` query parameter instead of basic auth."""
    tdengine_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of one HTTP request to taosAdapter; a timed-out write is retried."""
    sink_tdengine_group_id: str = "telemetry-sink-tdengine"
    """Kafka consumer group; pods of one group split the partitions between them."""
    sink_tdengine_health_port: int = 9104
    """Port of /metrics, /healthz and /readyz (env TELEMETRY_SINK_TDENGINE_HEALTH_PORT)."""

    @field_validator("tdengine_database")
    @classmethod
    def _database_is_identifier(cls, value: str) -> str:
        if not _SQL_IDENTIFIER.match(value):
            raise ValueError(
                "a TDengine database name is a letter or '_' then letters, digits or '_' "
                "(at most 64); it goes into CREATE DATABASE unquoted"
            )
        return value

    def group_id(self) -> str:
        return self.sink_tdengine_group_id

    def health_port(self) -> int:
        return self.sink_tdengine_health_port
