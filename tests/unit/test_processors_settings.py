"""ProcessorSettings: defaults, env spellings of the allow-list, the YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from processors.settings import DEFAULT_TAG_ALLOW_LIST, ProcessorSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TELEMETRY_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = ProcessorSettings()
    assert s.process_max_future_seconds == 300
    assert s.process_max_age_seconds == 604_800
    assert s.process_health_port == 9102
    assert s.process_tag_allow_list == list(DEFAULT_TAG_ALLOW_LIST)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert ProcessorSettings.model_fields["process_app_id"].description  # documented


@pytest.mark.parametrize(
    ("env", "want"),
    [("site, room ,zone", ["site", "room", "zone"]), ('["site", "line"]', ["site", "line"]),
     ("*", ["*"])],
)
def test_allow_list_from_env(monkeypatch: pytest.MonkeyPatch, env: str, want: list[str]) -> None:
    monkeypatch.setenv("TELEMETRY_PROCESS_TAG_ALLOW_LIST", env)
    assert ProcessorSettings().process_tag_allow_list == want


def test_yaml_file_and_env_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "telemetry.yaml"
    config.write_text("process_app_id: from-file\nprocess_max_age_seconds: 60\n"
                      "process_tag_allow_list: [site]\n")
    monkeypatch.setenv("TELEMETRY_CONFIG_FILE", str(config))
    monkeypatch.setenv("TELEMETRY_PROCESS_APP_ID", "from-env")
    s = ProcessorSettings()
    assert (s.process_app_id, s.process_max_age_seconds, s.process_tag_allow_list) == (
        "from-env", 60, ["site"])


@pytest.mark.parametrize(
    ("name", "value"),
    [("TELEMETRY_PROCESS_MAX_AGE_SECONDS", "-1"), ("TELEMETRY_PROCESS_BATCH_SIZE", "0"),
     ("TELEMETRY_PROCESS_COMPRESSION", "brotli"), ("TELEMETRY_PROCESS_TAG_ALLOW_LIST", "site,,")],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    if name.endswith("ALLOW_LIST"):
        assert ProcessorSettings().process_tag_allow_list == ["site"]  # empty parts ignored
        monkeypatch.setenv(name, '["site", ""]')
    with pytest.raises(ValidationError):
        ProcessorSettings()


def test_the_chain_and_agents_come_from_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ProcessorSettings().process_steps == ["validate", "normalize", "enrich", "dew_point"]
    assert ProcessorSettings().process_agents == []
    monkeypatch.setenv("TELEMETRY_PROCESS_STEPS", "validate, normalize,my_step")
    monkeypatch.setenv("TELEMETRY_PROCESS_AGENTS", '["alerts"]')
    s = ProcessorSettings()
    assert (s.process_steps, s.process_agents) == (["validate", "normalize", "my_step"],
                                                   ["alerts"])
