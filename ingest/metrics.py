"""Prometheus metrics of the ingest pods (rejects are counted by plumbing.dead_letters)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_RECEIVED = Counter(
    "telemetry_ingest_messages_received",
    "MQTT messages received, by kind (telemetry or metadata).",
    ["kind"],
)
MESSAGES_ACKED = Counter(
    "telemetry_ingest_messages_acked",
    "QoS 1 MQTT messages acknowledged after Kafka confirmed all their records.",
)
READINGS_PRODUCED = Counter(
    "telemetry_ingest_readings_produced",
    "Readings Kafka confirmed on telemetry.raw.",
)
METADATA_PRODUCED = Counter(
    "telemetry_ingest_metadata_produced",
    "Device metadata records (tombstones included) Kafka confirmed on devices.metadata.",
)
RECORDS_IN_FLIGHT = Gauge(
    "telemetry_ingest_records_in_flight",
    "Kafka records produced and not yet confirmed.",
)
DELIVERY_LATENCY = Histogram(
    "telemetry_ingest_delivery_latency_seconds",
    "From produce() to Kafka's delivery confirmation of one record.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DELIVERY_RETRIES = Counter(
    "telemetry_ingest_delivery_retries",
    "Records produced again after Kafka reported a failed delivery.",
)
MQTT_CONNECTS = Counter(
    "telemetry_ingest_mqtt_connects",
    "MQTT connection attempts, by outcome (subscribed or failed).",
    ["outcome"],
)
