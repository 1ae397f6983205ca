"""The app as built (not started): agents, their topics, the tags table, Kafka credentials."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from processors.app import broker_credentials, create_app, run_worker
from processors.plugins import PluginError
from processors.settings import ProcessorSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TELEMETRY_"):
            monkeypatch.delenv(name)


def never(agent: str, exc: BaseException) -> None:
    raise AssertionError("no delivery in unit tests")


def test_one_hop_and_the_tags_table(tmp_path: Path) -> None:
    context = create_app(ProcessorSettings(process_data_dir=str(tmp_path),
                                           process_app_id="unit-app"), never)
    app = context.app
    sources = {
        agent.name.rsplit(".", 1)[-1]: sorted(agent.get_topic_names())
        for agent in app.agents.values()
    }
    assert sources == {
        "readings": ["telemetry.raw"],
        "device_metadata": ["devices.metadata"],
    }
    assert all(agent.concurrency == 1 for agent in app.agents.values())  # in-order acks
    table = app.tables["device_tags"]
    assert table.is_global and table.synchronize_all_active_partitions
    assert table.recovery_buffer_size == 1
    assert table.changelog_topic.get_topic_name() == "unit-app-device_tags-changelog"
    assert app.conf.web_enabled is False
    assert app.conf.producer_acks == -1


def test_plaintext_has_no_credentials() -> None:
    assert broker_credentials(ProcessorSettings()) is None


def test_ssl() -> None:
    creds = broker_credentials(ProcessorSettings(kafka_security_protocol="SSL"))
    assert isinstance(creds, faust.SSLCredentials)


@pytest.mark.parametrize(("protocol", "tls"), [("SASL_SSL", True), ("SASL_PLAINTEXT", False)])
def test_sasl(protocol: str, tls: bool) -> None:
    creds = broker_credentials(
        ProcessorSettings(
            kafka_security_protocol=protocol,
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="proc",
            kafka_sasl_password=SecretStr("s3cret"),
        )
    )
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("proc", "s3cret")
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.ssl_context is not None) == tls


@pytest.mark.parametrize(
    ("steps", "agents", "says"),
    [
        ("validate,normalize,no_such_step", "", "'no_such_step'"),
        ("validate,normalize", "no_such_agent", "'no_such_agent'"),
        ("normalize,enrich", "", "has no 'validate'"),
        ("validate,enrich,enrich", "", "more than once"),
    ],
)
def test_a_name_that_cannot_be_used_stops_before_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: str, agents: str, says: str
) -> None:
    monkeypatch.setenv("TELEMETRY_PROCESS_STEPS", steps)
    monkeypatch.setenv("TELEMETRY_PROCESS_AGENTS", agents)
    settings = ProcessorSettings(process_data_dir=str(tmp_path))
    with pytest.raises(PluginError, match=says) as info:
        create_app(settings, never)
    if "no_such" in says:
        assert "Known:" in str(info.value)
        assert ("validate" if "step" in says else "alerts") in str(info.value)


def test_the_worker_exits_2_on_an_unknown_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ProcessorSettings(process_data_dir=str(tmp_path), process_steps=["validate", "x"],
                                 process_health_port=0, log_format="json")
    assert run_worker(settings) == 2
