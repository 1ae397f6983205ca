"""Fixtures shared by every test: the local stack of real services and pipeline processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from stack.local_stack import LocalStack

# Property tests (tests/unit/test_fuzz_*.py). `ci`, the default: a bounded number of examples
# from a fixed derandomized seed and no example database, so `make test` takes the same time
# and finds the same things on every machine. `dev` searches more, at random, and remembers
# failures in .hypothesis/. Pick with HYPOTHESIS_PROFILE=dev; `make fuzz` goes further.
settings.register_profile(
    "ci", max_examples=150, derandomize=True, database=None, deadline=None,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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
