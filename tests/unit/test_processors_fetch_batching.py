"""processors.fetch_batching: the fetch settings reach the consumer Faust creates."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from processors import fetch_batching


@pytest.fixture(autouse=True)
def restore_faust() -> Any:
    original = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    yield
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = original  # type: ignore[method-assign]


def test_a_real_aiokafka_consumer_gets_the_settings_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust's own builder needs a running app; what matters is what aiokafka does with the
    # consumer it returns, so the real AIOKafkaConsumer (not connected) stands in for it.
    built: list[aiokafka.AIOKafkaConsumer] = []

    def upstream(self: Any, transport: Any) -> aiokafka.AIOKafkaConsumer:
        built.append(aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1",
                                               fetch_max_wait_ms=1500))
        return built[-1]

    monkeypatch.setattr(fetch_batching, "_UPSTREAM_CREATE", upstream)
    fetch_batching.apply(65_536, 100)

    async def create() -> Any:  # aiokafka builds its consumers inside a running loop
        return faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer(
            object(), object())  # type: ignore[arg-type]

    consumer = asyncio.run(create())
    assert consumer is built[0]
    assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (65_536, 100)


def test_an_aiokafka_without_those_attributes_is_left_alone_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    class Renamed:
        pass

    monkeypatch.setattr(fetch_batching, "_UPSTREAM_CREATE", lambda self, transport: Renamed())
    fetch_batching.apply(65_536, 100)
    consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer(
        object(), object())  # type: ignore[arg-type]
    assert not hasattr(consumer, "_fetch_min_bytes")
    assert "fetching with its defaults" in caplog.text
