"""The Faust app of the processors and the `telemetry process` worker.

validate -> normalize -> enrich (with device_metadata feeding its table) -> dew_point, each
an agent in processors/agents/, chained through the internal topics of plumbing/topics.py.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

import faust
from aiokafka import codec as kafka_codecs
from faust.types.auth import CredentialsT

from plumbing.health import HealthState, serve_health
from plumbing.logs import setup_logging
from plumbing.topics import CONTRACT_TOPICS, RAW
from processors.agents import device_metadata, dew_point, enrich, normalize, validate
from processors.device_tags import DeviceTags
from processors.pipeline import Pipeline
from processors.settings import ProcessorSettings
from processors.units import CatalogError, UnitCatalog

log = logging.getLogger(__name__)

#: Exit status when Kafka refused an output for good (EX_TEMPFAIL: run me again).
EXIT_UNDELIVERED = 75


def broker_credentials(settings: ProcessorSettings) -> CredentialsT | None:
    """Faust credentials for the shared Kafka connection settings."""
    protocol = settings.kafka_security_protocol.upper()
    context = ssl.create_default_context() if protocol in ("SSL", "SASL_SSL") else None
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
) -> Pipeline:
    """The app with every agent registered, wrapped in the Pipeline the agents share."""
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
        broker_commit_interval=settings.process_commit_interval_s,
        consumer_auto_offset_reset=settings.process_auto_offset_reset,
    )
    pipeline = Pipeline(app, settings, on_delivery_failure)
    catalog = UnitCatalog.load(settings.process_unit_catalog_file)
    device_tags = DeviceTags(app)
    validate.register(pipeline)
    normalize.register(pipeline, catalog)
    device_metadata.register(pipeline, device_tags)
    enrich.register(pipeline, device_tags)
    dew_point.register(pipeline)
    return pipeline


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
        pipeline = create_app(settings, fail_stop(health))
    except CatalogError as exc:
        log.error("the unit catalog is wrong; fix it and start again", extra={"error": str(exc)})
        return 2
    worker = ProcessorWorker(
        pipeline.app,
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
