"""Options of `telemetry process`, the Faust worker (all `TELEMETRY_PROCESS_*`)."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from plumbing.settings import KafkaSettings, ObservabilitySettings

#: The contract's chain (DESIGN.md): each step is a file of processors/steps/.
DEFAULT_STEPS: tuple[str, ...] = ("validate", "normalize", "enrich", "dew_point")

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
    """Options of the Faust processors: the step chain, its agents and their Kafka use."""

    component: ClassVar[str] = "process"

    process_steps: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_STEPS)
    )
    """The step chain, in order (comma-separated or a JSON list): names registered under the
    entry-point group `telemetry.steps` by this or any installed package. It must include
    `validate`. An unknown name stops the worker at start."""
    process_agents: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Extra Faust agents to run (comma-separated or a JSON list), registered under the
    entry-point group `telemetry.agents`, e.g. `alerts`. The chain and the device tags
    table always run. An unknown name stops the worker at start."""
    process_alert_rules_file: str | None = None
    """The YAML rules file of the `alerts` agent (see processors/alert_rules.example.yaml);
    required when `process_agents` names `alerts`. A wrong file stops the worker at start
    with the file, the rule and what to fix. Read once at start: restart to change rules."""

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
    process_max_metric_name_bytes: int = Field(default=1024, ge=1)
    """Longest metric name in UTF-8 bytes (in Unicode NFC, as stored); a longer metric is
    refused alone by validate (`metric_name_too_long`), the rest of its reading goes on."""
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
    process_batch_size: int = Field(default=1_000, ge=1)
    """Most records an agent takes at once: decoded, processed and produced together, then
    acked together once Kafka confirmed all their output."""
    process_batch_wait_s: float = Field(default=0.05, gt=0)
    """How long an agent waits to fill a batch before processing what it has."""
    process_max_batches_in_flight: int = Field(default=8, ge=1)
    """Batches per agent produced but not yet confirmed by Kafka; at the limit the agent
    waits before taking the next batch (so memory stays bounded when Kafka is slow)."""
    process_commit_interval_s: float = Field(default=2.8, gt=0)
    """How often Faust commits the offsets of records whose output Kafka has confirmed."""
    process_linger_ms: int = Field(default=50, ge=0)
    """How long the producer waits to fill a batch. Acks are pipelined, so this adds latency
    per hop but lets each request carry many records (several times the throughput of 10).
    """
    process_fetch_min_bytes: int = Field(default=65_536, ge=1)
    """The broker answers the consumer's fetch once it holds this many bytes for it (or after
    `process_fetch_max_wait_ms`): one fetch per few records costs more CPU than the steps."""
    process_fetch_max_wait_ms: int = Field(default=100, ge=1)
    """Longest a fetch waits for `process_fetch_min_bytes`: the most latency it adds per hop."""
    process_producer_batch_bytes: int = Field(default=262_144, ge=1024)
    """Most bytes of records the producer sends to one partition in one batch."""
    process_fetcher_patch: bool = False
    """Use the pinned change of Faust's fetcher (processors/faust_patch.py: no task per
    message when a delivery does not wait). Off by default: with it, a worker SIGKILLed and
    restarted lost readings (`telemetry chaos --fault kill-process --times 2`: 143-368 of
    ~4,300 lost in 3 of 3 runs, 0 in 2 runs without it, 2026-12-03); not to be turned on
    until that is understood and fixed."""
    process_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    """Producer compression. zstd (as ingest): the same CPU here as gzip or none (measured),
    and about 4 µs less per reading for each sink to decompress than gzip. snappy, lz4 and
    zstd need the `cramjam` package (installed with the project), which is also what lets
    the processors read records compressed that way."""
    process_session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    """How long the group waits for a worker that went silent (crashed, SIGKILL) before its
    partitions go to the others, or to its own restart: Faust's 60 s default made one crash
    a minute of lag (issue 8). Heartbeats every third of it. The broker's
    `group.min.session.timeout.ms` (6 s by default) is the floor."""
    process_auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a new app id starts reading: `earliest` processes everything still in Kafka."""

    @field_validator("process_tag_allow_list", "process_steps", "process_agents", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
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
