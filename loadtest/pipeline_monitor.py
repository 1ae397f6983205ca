"""Samples the running pipeline for the live view and the benchmark timeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from loadtest import metric_names as names
from loadtest.consumer_lag import ConsumerLag
from loadtest.dead_letter_tally import DeadLetterTally
from loadtest.influx_probe import InfluxProbe
from loadtest.live_view import INFLUXDB, NA, SINK, ComponentStatus, ViewSnapshot
from loadtest.pipeline_processes import PipelineProcesses
from loadtest.proc_stats import cpu_seconds, rss_mib
from loadtest.scraped_metrics import RateTracker, fetch_metrics, total

log = logging.getLogger("loadtest.monitor")


class PipelineMonitor:
    def __init__(
        self,
        pipeline: PipelineProcesses,
        lag: ConsumerLag | None,
        dead_letters: DeadLetterTally | None,
        influx: InfluxProbe | None,
        prefix: str,
        since: datetime,
        others: Callable[[], Mapping[str, int | None]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        #: name -> pid of processes on the data path that the pipeline did not start (Telegraf
        #: in `--compare`): listed with their memory and CPU like its components
        self.others = others
        self.lag = lag
        self.dead_letters = dead_letters
        self.influx = influx
        self.prefix = prefix
        self.since = since
        self.rates = RateTracker()
        self.t0 = time.monotonic()

    def _stored_from_influx(self) -> float | None:
        """Sum over the run's devices of their newest stored seq: points stored so far."""
        if self.influx is None:
            return None
        try:
            latest = self.influx.latest_seq_by_device(self.prefix, self.since)
        except (ApiException, HTTPError, OSError) as exc:
            log.debug("InfluxDB count unavailable", extra={"error": str(exc)})
            return None
        return float(sum(seq for _, seq in latest.values()))

    def sample(self) -> ViewSnapshot:
        now = time.monotonic()
        procs = self.pipeline.by_name()
        families: dict[str, Any] = {}
        for name, proc in procs.items():
            port = proc.spec.port
            families[name] = fetch_metrics(port) if port and proc.alive() else None
        snap = ViewSnapshot(elapsed_s=now - self.t0)
        sim, ingest, sink = (
            families.get("simulate"),
            families.get("ingest"),
            families.get("sink-influxdb"),
        )
        snap.sent_total = total(sim, names.SIMULATOR_SENT) if sim else None
        snap.in_total = total(ingest, names.INGEST_RECEIVED) if ingest else None
        process = families.get("process")
        snap.processed_total = total(process, names.PROCESSOR_IN) if process else None
        stored = total(sink, names.SINK_POINTS_WRITTEN) if sink else None
        snap.stored_source = SINK
        if stored is None:
            stored = self._stored_from_influx()
            snap.stored_source = INFLUXDB if stored is not None else NA
        snap.stored_total = stored
        snap.sent_rate = self.rates.rate("sent", snap.sent_total, now)
        snap.in_rate = self.rates.rate("in", snap.in_total, now)
        snap.processed_rate = self.rates.rate("processed", snap.processed_total, now)
        snap.stored_rate = self.rates.rate("stored", snap.stored_total, now)
        snap.dead_letters = self.dead_letters.snapshot() if self.dead_letters else None
        snap.lag = self.lag.snapshot() if self.lag else None
        for name, proc in procs.items():
            code = proc.exit_code()
            if proc.proc is None:
                state = "not started"
            elif code is not None:
                state = f"exited ({code})"
            else:
                state = "running" if families.get(name) is not None else "not answering"
            pid = proc.pid
            alive = pid is not None and code is None
            snap.components.append(
                ComponentStatus(
                    name,
                    state,
                    pid,
                    rss_mib(pid) if alive and pid else None,
                    cpu_seconds(pid) if alive and pid else None,
                )
            )
        for name, pid in (self.others() if self.others else {}).items():
            snap.components.append(
                ComponentStatus(
                    name,
                    "running" if pid else "not running",
                    pid,
                    rss_mib(pid) if pid else None,
                    cpu_seconds(pid) if pid else None,
                )
            )
        return snap
