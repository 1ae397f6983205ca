"""Telegraf's config for our load, written from code: MQTT telemetry in, InfluxDB points out.

What Telegraf is asked to do is what a user would set up in an afternoon with its documented
options (plugins/inputs/mqtt_consumer, plugins/parsers/json_v2, plugins/outputs/influxdb_v2
READMEs and docs/CONFIGURATION.md of Telegraf 1.37.2):

- `mqtt_consumer`: `devices/+/telemetry` at QoS 1 in a persistent session with a fixed client
  id (the README: "When using a QoS of 1 or 2, you should enable persistent_session"), so a
  message is acknowledged to Mosquitto only once InfluxDB took it (tracking metrics). The
  device id comes from the topic (`topic_parsing`), the raw topic tag is dropped.
- `json_v2`: our payload `{"ts": <epoch ms>, "seq": n, "metrics": {name: number}}` as
  measurement `telemetry`, `ts` as the time, `seq` an integer field and each metric a float
  field: the names our sink stores. Anything else in the contract (unit objects, batches,
  RFC 3339 times, metadata tags, validation) it does not do on this config.
- batching: `max_undelivered_messages` = `metric_batch_size` / readings per message (one),
  as the README advises ("picked with awareness of the agent's metric_batch_size"), so a full
  batch triggers its write at once; both at most Mosquitto's 1,000 in flight per client. The
  flush interval is 1 s, not the 10 s default, or the p99 <= 2 s criterion would fail at any
  rate too low to fill a batch within 2 s.
- `influxdb_v2` with `content_encoding = "gzip"` into its own bucket of the same InfluxDB.

Secrets are not written to the file: Telegraf reads them from the environment (`${VAR}`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: what the config's `${...}` references read from the environment
ENV_MQTT_PASSWORD = "TELEGRAF_MQTT_PASSWORD"
ENV_INFLUXDB_TOKEN = "TELEGRAF_INFLUXDB_TOKEN"
TELEMETRY_TOPIC = "devices/+/telemetry"
MEASUREMENT = "telemetry"


@dataclass(frozen=True)
class TelegrafConfig:
    """The values the config depends on; everything else is fixed above."""

    mqtt_url: str
    mqtt_username: str
    client_id: str
    influxdb_url: str
    influxdb_org: str
    bucket: str
    metric_batch_size: int = 1000
    max_undelivered_messages: int = 1000
    flush_interval_s: float = 1.0
    metric_buffer_limit: int = 10_000


def _s(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def render(c: TelegrafConfig) -> str:
    """The whole telegraf.conf."""
    return f"""# written by the telemetry stack (stack/telegraf_config.py); do not edit
[agent]
  interval = "10s"
  flush_interval = "{c.flush_interval_s:g}s"
  flush_jitter = "0s"
  metric_batch_size = {c.metric_batch_size}
  metric_buffer_limit = {c.metric_buffer_limit}
  omit_hostname = true
  skip_processors_after_aggregators = true
  debug = false
  quiet = false

[[inputs.mqtt_consumer]]
  servers = [{_s(c.mqtt_url)}]
  topics = [{_s(TELEMETRY_TOPIC)}]
  topic_tag = ""
  qos = 1
  persistent_session = true
  client_id = {_s(c.client_id)}
  max_undelivered_messages = {c.max_undelivered_messages}
  username = {_s(c.mqtt_username)}
  password = "${{{ENV_MQTT_PASSWORD}}}"
  data_format = "json_v2"

  [[inputs.mqtt_consumer.topic_parsing]]
    topic = {_s(TELEMETRY_TOPIC)}
    tags = "_/device_id/_"

  [[inputs.mqtt_consumer.json_v2]]
    measurement_name = {_s(MEASUREMENT)}
    timestamp_path = "ts"
    timestamp_format = "unix_ms"
    timestamp_timezone = "UTC"

    [[inputs.mqtt_consumer.json_v2.field]]
      path = "seq"
      type = "int"

    [[inputs.mqtt_consumer.json_v2.object]]
      path = "metrics"
      disable_prepend_keys = true

# Telegraf's own counters (messages received, points written, dropped), next to the data
[[inputs.internal]]
  collect_memstats = false

[[outputs.influxdb_v2]]
  urls = [{_s(c.influxdb_url)}]
  token = "${{{ENV_INFLUXDB_TOKEN}}}"
  organization = {_s(c.influxdb_org)}
  bucket = {_s(c.bucket)}
  content_encoding = "gzip"
"""
