"""Sink settings: the environment names the lead and the Helm chart rely on, and validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sinks.settings import InfluxDBSinkSettings, TDengineSinkSettings


@pytest.fixture(autouse=True)
def _no_telemetry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: a developer's own TELEMETRY_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("TELEMETRY_"):
            monkeypatch.delenv(name)


def test_influxdb_connection_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_INFLUXDB_URL", "http://influx:8086")
    monkeypatch.setenv("TELEMETRY_INFLUXDB_ORG", "acme")
    monkeypatch.setenv("TELEMETRY_INFLUXDB_BUCKET", "tele")
    monkeypatch.setenv("TELEMETRY_INFLUXDB_TOKEN", "s3cret")
    monkeypatch.setenv("TELEMETRY_SINK_INFLUXDB_HEALTH_PORT", "9999")
    monkeypatch.setenv("TELEMETRY_SINK_INFLUXDB_GROUP_ID", "g1")
    s = InfluxDBSinkSettings()
    assert (s.influxdb_url, s.influxdb_org, s.influxdb_bucket) == ("http://influx:8086", "acme",
                                                                   "tele")
    assert s.influxdb_token.get_secret_value() == "s3cret"
    assert s.health_port() == 9999 and s.group_id() == "g1"
    assert "s3cret" not in repr(s.redacted()) and "s3cret" not in repr(s)


def test_defaults_match_the_contract() -> None:
    s = InfluxDBSinkSettings()
    assert s.sink_topics == ["telemetry.enriched", "telemetry.derived"]
    assert s.sink_batch_max_points == 5000 and s.sink_batch_max_age_ms == 500
    assert s.health_port() == 9103 and s.group_id() == "telemetry-sink-influxdb"
    t = TDengineSinkSettings()
    assert t.health_port() == 9104 and t.group_id() == "telemetry-sink-tdengine"


def test_topics_from_a_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_SINK_TOPICS", " telemetry.enriched , other.topic ")
    assert InfluxDBSinkSettings().sink_topics == ["telemetry.enriched", "other.topic"]
    monkeypatch.setenv("TELEMETRY_SINK_TOPICS", " , ")
    with pytest.raises(ValidationError, match="at least one topic"):
        InfluxDBSinkSettings()


@pytest.mark.parametrize("bad", ["", "1db", "tele metry", "t;DROP DATABASE x", "a" * 65, "t-1"])
def test_tdengine_database_must_be_a_plain_identifier(bad: str) -> None:
    with pytest.raises(ValidationError, match="TDengine database name"):
        TDengineSinkSettings(tdengine_database=bad)


@pytest.mark.parametrize("bad", [{"sink_batch_max_points": 0}, {"sink_batch_max_age_ms": 0},
                                 {"sink_retry_initial_s": 0}])
def test_batching_limits_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        InfluxDBSinkSettings.model_validate(bad)
