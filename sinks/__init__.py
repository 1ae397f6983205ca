"""Batched sinks: Kafka EnrichedReadings into InfluxDB and TDengine (see sinks/README.md)."""
