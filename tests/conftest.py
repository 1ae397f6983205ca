"""Fixtures shared by every test: the local stack of real services and pipeline processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.local_stack import LocalStack

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real services."""
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The real Mosquitto, Kafka, InfluxDB and Prometheus, started if not running.

    Stops at the end only what it started itself (the README's test command wraps the run in
    `stack up` / `stack down`, so a developer's running stack is left alone).
    """
    stack = LocalStack()
    started = stack.up()
    yield stack
    if started and not os.environ.get("TELEMETRY_KEEP_STACK"):
        stack.down(only=started)


@pytest.fixture(scope="session")
def stack_env(local_stack: LocalStack) -> dict[str, str]:
    """Environment variables that point a pipeline component at the local stack."""
    return local_stack.client_env()
