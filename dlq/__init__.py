"""`telemetry dlq`: see what is in the dead-letter topic and send records back once fixed.

summary (counts), show (records with their decoded original) and replay (back to where each
record entered: MQTT for ingest's rejects, Kafka for the processors' and sinks'), with a
record of what was replayed so nothing is sent twice by accident.
"""
