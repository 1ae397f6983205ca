"""Settings of the load-test tools: the simulator (a component), `run`, `benchmark`, `query`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr

from plumbing.settings import ObservabilitySettings, TelemetrySettings


class SimulatorSettings(ObservabilitySettings):
    """`telemetry simulate` (command-line options override these)."""

    component: ClassVar[str] = "simulate"

    mqtt_host: str = "127.0.0.1"
    """MQTT broker host."""
    mqtt_port: int = 1883
    """MQTT broker port."""
    simulate_mqtt_username: str | None = None
    """MQTT user name of the simulated fleet: one that may publish for every device it
    simulates (the local stack's `fleet` user: `telemetry stack env`)."""
    simulate_mqtt_password: SecretStr | None = None
    """MQTT password (never logged)."""
    simulate_health_port: int = 9105
    """Port of /metrics, /healthz and /readyz; 0 picks a free one."""
    simulate_devices: int = 50
    """Number of simulated devices."""
    simulate_rate: float = 200.0
    """MQTT messages per second, all devices together."""
    simulate_bad_ratio: float = 0.0
    """Share of messages that are bad (0..1), cycling through every reject reason."""
    simulate_seed: int | None = None
    """Random seed; the summary records the one used, so a run can be repeated."""
    simulate_device_prefix: str = "sim-"
    """Device ids are `<prefix><kind>-<n>`; a unique prefix keeps runs apart in the database."""
    simulate_batch_share: float = 0.25
    """Share of good messages that are a batch (an array of 2..10 readings); 0 = one reading
    per message."""
    simulate_missing_ts_share: float = 0.05
    """Share of single readings sent without `ts` (ingest then uses its receive time); none
    with `simulate_ts_format=epoch_ms`."""
    simulate_metrics_per_reading: int = 0
    """Metrics in every reading, 1..4, the same for every device kind (a kind with fewer of its
    own adds pass-through ones: co2, battery_level, engine_rpm); 0 = each kind's own (2 to 4)."""
    simulate_ts_format: str = "mixed"
    """`ts` of good readings: `mixed` (epoch ms about 60%, RFC 3339 with offsets, or missing)
    or `epoch_ms` (always epoch milliseconds). `epoch_ms` with `simulate_batch_share=0`
    sends pre-rendered readings (loadtest/prebuilt.py), for rates of 10,000 msg/s and more."""
    simulate_units: str = "mixed"
    """Metric values of good readings: `mixed` (each device's own units, bare numbers or
    `{"value", "unit"}`) or `canonical` (bare numbers in the canonical unit only: the load
    `telemetry benchmark --compare telegraf` sends, which Telegraf's json_v2 stores under our
    field names)."""
    simulate_topic_prefix: str = "devices"
    """First level of the MQTT topics (`<prefix>/<id>/telemetry`, `<prefix>/<id>/metadata`).
    The contract's is `devices`; `telemetry benchmark --component ingest` uses a prefix of its
    own, so that no other ingest on a shared broker takes its messages."""
    simulate_processes: int = 0
    """Sending processes, each with its own block of devices and MQTT connection; 0 = as many
    as the rate needs (one per ~8,000 msg/s pre-rendered, ~4,000 otherwise), at most one per
    CPU."""
    simulate_max_inflight: int = 5000
    """QoS 1 publishes awaiting PUBACK, per sending process; at the limit it waits for the
    broker (1..30000)."""
    simulate_ack_timeout_s: float = 30.0
    """At the end, how long to wait for the broker to acknowledge what was sent."""


class InfluxQuerySettings(TelemetrySettings):
    """Where `telemetry query` and the run/benchmark tools read InfluxDB.

    Unset URL or token: the local stack's (`LocalStack().client_env()`).
    """

    influxdb_url: str | None = None
    """InfluxDB base URL, e.g. http://127.0.0.1:8086."""
    influxdb_org: str | None = None
    """InfluxDB organization."""
    influxdb_bucket: str | None = None
    """InfluxDB bucket (the contract's is `telemetry`)."""
    influxdb_token: SecretStr | None = None
    """InfluxDB API token (never logged)."""


class RunSettings(TelemetrySettings):
    """`telemetry run` and `telemetry benchmark`."""

    run_ingest_port: int = 9101
    """Health port of `telemetry ingest` (its default)."""
    run_process_port: int = 9102
    """Health port of `telemetry process` (its default)."""
    run_sink_port: int = 9103
    """Health port of `telemetry sink influxdb` (its default)."""
    run_simulate_port: int = 9105
    """Health port of the simulator."""
    run_ready_timeout_s: float = 180.0
    """How long a component may take to answer /readyz."""
    run_refresh_s: float = 2.0
    """Seconds between two refreshes of the live view."""
    run_stop_timeout_s: float = 30.0
    """After SIGTERM, how long before SIGKILL."""
    run_lag_groups: str = "telemetry-processors,telemetry-sink-influxdb"
    """Comma-separated glob patterns of the consumer groups whose lag the view shows."""
