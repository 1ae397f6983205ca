"""Machine-readable reject reasons: the `reason` of every dead letter.

The values are part of the data contract; dashboards and alerts match on them.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # ingest: the MQTT message as a whole
    INVALID_DEVICE_ID = "invalid_device_id"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_JSON = "invalid_json"
    INVALID_SHAPE = "invalid_shape"
    # metadata (MQTT retained message or file)
    INVALID_METADATA = "invalid_metadata"
    # validate: the reading as a whole
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    NO_METRICS = "no_metrics"
    INVALID_SEQ = "invalid_seq"
    # validate/normalize: one metric, the rest of the reading goes on
    INVALID_METRIC_NAME = "invalid_metric_name"
    VALUE_NOT_A_NUMBER = "value_not_a_number"
    UNKNOWN_UNIT = "unknown_unit"
    WRONG_DIMENSION = "wrong_dimension"
    PHYSICALLY_IMPOSSIBLE = "physically_impossible"
    # processors: a record on a Kafka topic we cannot read
    UNDECODABLE_RECORD = "undecodable_record"
    # sinks
    DATABASE_REJECTED = "database_rejected"
