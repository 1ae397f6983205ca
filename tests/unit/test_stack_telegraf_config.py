"""The Telegraf config written from code: valid TOML holding the options the comparison needs."""

from __future__ import annotations

import tomllib

from stack.telegraf_config import (
    ENV_INFLUXDB_TOKEN,
    ENV_MQTT_PASSWORD,
    TelegrafConfig,
    render,
)

CONFIG = TelegrafConfig(
    mqtt_url="tcp://127.0.0.1:1883",
    mqtt_username='user "quoted" \\ back',
    client_id="telemetry-telegraf",
    influxdb_url="http://127.0.0.1:8086",
    influxdb_org="telemetry",
    bucket="telegraf",
    metric_batch_size=500,
    max_undelivered_messages=500,
    flush_interval_s=0.5,
)


def test_the_config_is_toml_with_qos1_persistent_session_and_topic_parsing() -> None:
    conf = tomllib.loads(render(CONFIG))
    (mqtt,) = conf["inputs"]["mqtt_consumer"]
    assert mqtt["qos"] == 1 and mqtt["persistent_session"] is True
    assert mqtt["client_id"] == "telemetry-telegraf"
    assert mqtt["max_undelivered_messages"] == 500
    assert mqtt["username"] == 'user "quoted" \\ back'
    assert mqtt["topics"] == ["devices/+/telemetry"]
    assert mqtt["topic_tag"] == ""
    assert mqtt["topic_parsing"] == [{"topic": "devices/+/telemetry", "tags": "_/device_id/_"}]
    (parser,) = mqtt["json_v2"]
    assert parser["measurement_name"] == "telemetry"
    assert (parser["timestamp_path"], parser["timestamp_format"]) == ("ts", "unix_ms")
    assert parser["field"] == [{"path": "seq", "type": "int"}]
    assert parser["object"] == [{"path": "metrics", "disable_prepend_keys": True}]


def test_batching_gzip_and_no_secret_in_the_file() -> None:
    text = render(CONFIG)
    conf = tomllib.loads(text)
    agent = conf["agent"]
    assert agent["metric_batch_size"] == 500 and agent["flush_interval"] == "0.5s"
    assert agent["omit_hostname"] is True
    (out,) = conf["outputs"]["influxdb_v2"]
    assert out["content_encoding"] == "gzip" and out["bucket"] == "telegraf"
    assert out["token"] == "${" + ENV_INFLUXDB_TOKEN + "}"
    assert conf["inputs"]["mqtt_consumer"][0]["password"] == "${" + ENV_MQTT_PASSWORD + "}"
