"""Registered scrape targets: the files the stack's Prometheus reads (file_sd) for processes on
ports other than the components' defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stack.credentials import Credentials
from stack.prometheus import Prometheus
from stack.settings import StackSettings


@pytest.fixture
def prometheus(tmp_path: Path) -> Prometheus:
    settings = StackSettings(stack_dir=tmp_path)
    return Prometheus(settings, Credentials.load_or_create(tmp_path / "credentials.json"))


def test_register_writes_one_file_sd_group_and_unregister_removes_it(
    prometheus: Prometheus,
) -> None:
    path = prometheus.register_targets("run-1", [41001, 41002], {"run": "run-1"})
    assert path.parent == prometheus.targets_dir == prometheus.run_dir / "targets"
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:41001", "127.0.0.1:41002"], "labels": {"run": "run-1"}}
    ]
    assert not list(prometheus.targets_dir.glob("*.tmp"))  # written whole, then renamed
    prometheus.unregister_targets("run-1")
    assert not path.exists()
    prometheus.unregister_targets("run-1")  # twice is fine


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "with space"])
def test_a_target_file_name_stays_in_the_directory(prometheus: Prometheus, name: str) -> None:
    with pytest.raises(ValueError, match="target file name"):
        prometheus.register_targets(name, [41001])
