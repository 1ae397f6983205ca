"""The app as built (not started): agents, their topics, the tags table, Kafka credentials."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from processors.app import broker_credentials, create_app
from processors.settings import ProcessorSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TELEMETRY_"):
            monkeypatch.delenv(name)


def never(agent: str, exc: BaseException) -> None:
    raise AssertionError("no delivery in unit tests")


def test_every_agent_reads_its_topic(tmp_path: Path) -> None:
    pipeline = create_app(ProcessorSettings(process_data_dir=str(tmp_path),
                                            process_app_id="unit-app"), never)
    app = pipeline.app
    sources = {
        agent.name.rsplit(".", 1)[-1]: sorted(agent.get_topic_names())
        for agent in app.agents.values()
    }
    assert sources == {
        "validate": ["telemetry.raw"],
        "normalize": ["telemetry.validated"],
        "device_metadata": ["devices.metadata"],
        "enrich": ["telemetry.normalized"],
        "dew_point": ["telemetry.enriched"],
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
