"""The Faust app of the processors and the `telemetry process` worker.

Agents: `readings` runs the step chain (processors/chain.py) from telemetry.raw to
telemetry.enriched in one hop; `device_metadata` feeds the device tags table the `enrich`
step reads; the agents named in `TELEMETRY_PROCESS_AGENTS` are added from entry points.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import faust
from aiokafka import codec as kafka_codecs
from faust.types.auth import CredentialsT

from plumbing.health import HealthState, serve_health
from plumbing.logs import setup_logging
from plumbing.topics import CONTRACT_TOPICS, RAW
from processors import faust_patch, fetch_batching, plugins
from processors.agents import ENTRY_POINT_GROUP, AgentContext, device_metadata, readings
from processors.chain import Chain
from processors.device_tags import DeviceTags
from processors.forwarder import Forwarder
from processors.settings import ProcessorSettings
from processors.units import CatalogError

log = logging.getLogger(__name__)

#: Exit status when Kafka refused an output for good (EX_TEMPFAIL: run me again).
EXIT_UNDELIVERED = 75


def broker_credentials(settings: ProcessorSettings) -> CredentialsT | None:
    """Faust credentials for the shared Kafka connection settings."""
    protocol = settings.kafka_security_protocol.upper()
    context = settings.kafka_ssl_context()
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password.get_secret_value() if password else "",
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(
    settings: ProcessorSettings, on_delivery_failure: Callable[[str, BaseException], None]
) -> AgentContext:
    """The app with every agent registered, and what the agents share.

    Raises PluginError for a step or agent name that cannot be used, CatalogError for a
    wrong unit catalog: both before anything connects to Kafka.
    """
    servers = [s.strip() for s in settings.kafka_bootstrap_servers.split(",") if s.strip()]
    app = faust.App(
        settings.process_app_id,
        broker=[f"kafka://{server}" for server in servers],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=settings.process_data_dir,
        topic_partitions=CONTRACT_TOPICS[RAW][0],
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_compression_type=(
            None if settings.process_compression == "none" else settings.process_compression
        ),
        producer_linger=settings.process_linger_ms / 1000.0,
        producer_max_batch_size=settings.process_producer_batch_bytes,
        broker_commit_interval=settings.process_commit_interval_s,
        broker_session_timeout=settings.process_session_timeout_s,
        broker_heartbeat_interval=settings.process_session_timeout_s / 3,
        consumer_auto_offset_reset=settings.process_auto_offset_reset,
    )
    device_tags = DeviceTags(app)
    context = AgentContext(app, settings, Forwarder(app, settings, on_delivery_failure),
                           device_tags)
    chain = Chain.from_settings(settings, device_tags.get_for)
    extra_agents = plugins.load(ENTRY_POINT_GROUP, settings.process_agents,
                                "TELEMETRY_PROCESS_AGENTS")
    readings.register(context, chain)
    device_metadata.register(context)
    for _name, register in extra_agents:
        register(context)
    fetch_batching.apply(settings.process_fetch_min_bytes, settings.process_fetch_max_wait_ms)
    patched = settings.process_fetcher_patch and faust_patch.apply()
    log.info("step chain", extra={"steps": chain.names,
                                  "agents": [name for name, _ in extra_agents],
                                  "fetcher_patch": patched})
    return context


class ProcessorWorker(faust.Worker):
    """Faust's worker, reporting readiness on our health endpoint."""

    def __init__(self, app: faust.App, health: HealthState, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.health = health
        self.spinner = None  # terminal escapes do not belong in structured logs

    async def on_startup_finished(self) -> None:
        """Table recovery is done and the agents consume: ready."""
        await super().on_startup_finished()
        self.health.ready = True
        log.info("processors ready", extra={"app_id": self.app.conf.id})

    def _on_sigterm(self) -> None:
        self.health.ready = False
        super()._on_sigterm()


def fail_stop(health: HealthState) -> Callable[[str, BaseException], None]:
    """Exit at once when Kafka refused an output for good, without Faust's graceful stop.

    A graceful stop commits every acked offset and waits for the rest; here the rest can
    never be confirmed. Exiting now leaves the committed offsets where they are (only
    records with confirmed output behind them), and the next worker replays from there.
    """

    def on_failure(agent: str, exc: BaseException) -> None:
        health.alive = False
        health.ready = False
        log.critical(
            "Kafka refused an output; exiting without committing so it is processed again",
            extra={"agent": agent, "error": repr(exc)},
        )
        logging.shutdown()
        os._exit(EXIT_UNDELIVERED)

    return on_failure


def run_worker(settings: ProcessorSettings) -> int:
    """Runs the worker until SIGTERM (graceful: stop taking input, flush, commit, exit 0)."""
    setup_logging(settings.log_format, settings.log_level)
    log.info("starting processors", extra={"settings": settings.redacted()})
    if not kafka_codecs.has_zstd():
        log.warning(
            "aiokafka cannot decompress zstd, lz4 or snappy (the cramjam package is missing): "
            "a record batch compressed that way (ingest's default is zstd) stops the worker"
        )
    health = HealthState()
    serve_health(settings.process_health_port, health)
    try:
        context = create_app(settings, fail_stop(health))
    except CatalogError as exc:
        log.error("the unit catalog is wrong; fix it and start again", extra={"error": str(exc)})
        return 2
    except plugins.PluginError as exc:
        log.error("a configured step or agent cannot be used; fix the setting and start "
                  "again", extra={"error": str(exc)})
        return 2
    worker = ProcessorWorker(
        context.app,
        health,
        loglevel=settings.log_level,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
