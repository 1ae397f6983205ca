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
    TOO_MANY_READINGS = "too_many_readings"
    TOO_MANY_METRICS = "too_many_metrics"
    # metadata (MQTT retained message or file)
    INVALID_METADATA = "invalid_metadata"
    TOO_MANY_TAGS = "too_many_tags"
    # metadata: one tag, the device's other tags are kept
    INVALID_TAG = "invalid_tag"
    TAG_TOO_LONG = "tag_too_long"
    # a device id, tag or metric name holding a bidi control, zero-width character or BOM
    INVISIBLE_CHARACTER = "invisible_character"
    # validate: the reading as a whole
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    NO_METRICS = "no_metrics"
    INVALID_SEQ = "invalid_seq"
    # validate/normalize: one metric, the rest of the reading goes on
    INVALID_METRIC_NAME = "invalid_metric_name"
    METRIC_NAME_TOO_LONG = "metric_name_too_long"
    VALUE_NOT_A_NUMBER = "value_not_a_number"
    UNKNOWN_UNIT = "unknown_unit"
    WRONG_DIMENSION = "wrong_dimension"
    PHYSICALLY_IMPOSSIBLE = "physically_impossible"
    # processors: a record on a Kafka topic we cannot read
    UNDECODABLE_RECORD = "undecodable_record"
    # sinks
    DATABASE_REJECTED = "database_rejected"
