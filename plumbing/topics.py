"""Kafka topic names from the data contract (DESIGN.md, "Data contract v1")."""

RAW = "telemetry.raw"
ENRICHED = "telemetry.enriched"
DLQ = "telemetry.dlq"
METADATA = "devices.metadata"
#: Written by the alerts agent (processors/agents/alerts.py) when it runs.
ALERTS = "telemetry.alerts"

#: name -> (partitions, extra topic config). All share one partition count so Faust can
#: co-partition streams and tables by device_id. `devices.metadata` is compacted so the
#: latest tags of every device survive forever while old versions are cleaned.
CONTRACT_TOPICS: dict[str, tuple[int, dict[str, str]]] = {
    RAW: (6, {}),
    ENRICHED: (6, {}),
    DLQ: (6, {}),
    METADATA: (6, {"cleanup.policy": "compact"}),
    ALERTS: (6, {}),
}

#: Kafka header names carried on every record.
HEADER_TRACE_ID = "trace_id"
HEADER_INGEST_TIME = "ingest_time_ms"
