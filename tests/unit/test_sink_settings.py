"""Sink settings: the environment names the lead and the Helm chart rely on, and validation."""

from __future__ import annotations

from pathlib import Path

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
    assert s.sink_topics == ["telemetry.enriched"]
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


DOCS = Path(__file__).resolve().parents[2] / "sinks"


@pytest.mark.parametrize("cls", [InfluxDBSinkSettings, TDengineSinkSettings])
def test_every_option_is_documented_with_its_default(cls: type[InfluxDBSinkSettings]) -> None:
    text = "\n".join((DOCS / name).read_text() for name in ("README.md", "influxdb.md",
                                                           "tdengine.md"))
    for name, field in cls.model_fields.items():
        env = f"TELEMETRY_{name.upper()}"
        rows = [line for line in text.splitlines() if line.startswith(f"| `{env}` ")]
        assert rows, f"{env} is not in the settings tables"
        row = rows[0]
        assert f"| `{name}` |" in row
        default = field.get_default(call_default_factory=True)
        if isinstance(default, bool):
            assert f"`{str(default).lower()}`" in row, row
        elif isinstance(default, int | float | str):
            assert f"`{default}`" in row, row


@pytest.mark.parametrize(
    ("sample", "cls", "expect"),
    [
        ("influxdb.example.yaml", InfluxDBSinkSettings,
         {"influxdb_url": "http://influxdb:8086", "sink_influxdb_health_port": 9103,
          "sink_topics": ["telemetry.enriched"], "log_format": "json"}),
        ("tdengine.example.yaml", TDengineSinkSettings,
         {"tdengine_url": "http://tdengine:6041", "tdengine_database": "telemetry",
          "sink_tdengine_group_id": "telemetry-sink-tdengine"}),
    ],
)
def test_sample_configs_load(monkeypatch: pytest.MonkeyPatch, sample: str,
                             cls: type[InfluxDBSinkSettings], expect: dict[str, object]) -> None:
    monkeypatch.setenv("TELEMETRY_CONFIG_FILE", str(DOCS / sample))
    settings = cls()
    assert {k: getattr(settings, k) for k in expect} == expect
    monkeypatch.setenv("TELEMETRY_SINK_BATCH_MAX_POINTS", "77")  # the environment wins
    assert cls().sink_batch_max_points == 77
