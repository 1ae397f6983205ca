"""Options of `telemetry process`, the Faust worker (all `TELEMETRY_PROCESS_*`)."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from plumbing.settings import KafkaSettings, ObservabilitySettings

#: Tags that describe where a device is and what it is: few distinct values per tag, so they
#: keep InfluxDB's series count sane. Anything else (serial numbers, free text) stays out
#: unless the allow-list names it.
DEFAULT_TAG_ALLOW_LIST: tuple[str, ...] = (
    "site",
    "building",
    "area",
    "line",
    "zone",
    "room",
    "model",
    "vendor",
    "firmware",
    "kind",
    "location",
)


class ProcessorSettings(KafkaSettings, ObservabilitySettings):
    """Options of the Faust processors: validate, normalize, enrich and derived metrics."""

    component: ClassVar[str] = "process"

    process_app_id: str = "telemetry-processors"
    """Faust application id: the Kafka consumer group and the prefix of Faust's own topics.
    A new id starts over from the earliest offsets of every input topic."""
    process_max_future_seconds: float = Field(default=300.0, ge=0)
    """A reading whose `ts` is more than this ahead of its ingest receive time is rejected
    (`timestamp_in_future`)."""
    process_max_age_seconds: float = Field(default=604_800.0, ge=0)
    """A reading whose `ts` is more than this before its ingest receive time is rejected
    (`timestamp_too_old`). Measured against the receive time, not the clock, so replaying a
    backlog validates exactly as the first time."""
    process_tag_allow_list: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_TAG_ALLOW_LIST)
    )
    """Device metadata tags copied onto readings (comma-separated or a JSON list); `*` copies
    every tag. Each distinct tag value makes new InfluxDB series, so keep it short."""
    process_unit_catalog_file: str | None = None
    """A unit catalog (YAML or JSON) replacing the built-in `processors/unit_catalog.yaml`."""
    process_data_dir: str = "processors-data"
    """Faust's data directory (per app id); tables live in memory and are rebuilt from Kafka."""
    process_health_port: int = 9102
    """Port of /metrics, /healthz and /readyz (env TELEMETRY_PROCESS_HEALTH_PORT)."""
    process_max_in_flight: int = Field(default=5_000, ge=1)
    """Records per agent forwarded but not yet confirmed by Kafka; at the limit the agent
    waits before taking the next record."""
    process_commit_interval_s: float = Field(default=2.8, gt=0)
    """How often Faust commits the offsets of records whose output Kafka has confirmed."""
    process_linger_ms: int = Field(default=50, ge=0)
    """How long the producer waits to fill a batch. Acks are pipelined, so this adds latency
    per hop but lets each request carry many records (several times the throughput of 10).
    """
    process_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip"
    """Producer compression. gzip needs nothing else; snappy, lz4 and zstd need the `cramjam`
    package, which is also what lets the processors read records compressed that way."""
    process_auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a new app id starts reading: `earliest` processes everything still in Kafka."""

    @field_validator("process_tag_allow_list", mode="before")
    @classmethod
    def _split_allow_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("process_tag_allow_list")
    @classmethod
    def _no_empty_tag_names(cls, value: list[str]) -> list[str]:
        if any(not name for name in value):
            raise ValueError("tag names in the allow-list must not be empty")
        return value
