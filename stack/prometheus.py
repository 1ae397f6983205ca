"""Prometheus from Debian's packages, scraping every pipeline component's `/metrics`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from stack.debian import ensure_debian_packages, installed_binary
from stack.processes import start_process, wait_until
from stack.service import Service

#: Default health/metrics ports of the pipeline components (each one's settings can move it).
COMPONENT_PORTS = {
    "ingest": 9101,
    "process": 9102,
    "sink-influxdb": 9103,
    "sink-tdengine": 9104,
    "simulate": 9105,
}


class Prometheus(Service):
    name = "prometheus"
    port_setting = "TELEMETRY_STACK_PROMETHEUS_PORT"

    @property
    def port(self) -> int:
        return self.settings.stack_prometheus_port

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        binary = installed_binary("prometheus")  # status must not install: `stack up` may be at it
        if binary is None:
            return "not installed"
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=10
            )
        except OSError:
            return "not installed"
        m = re.search(r"version (\S+)", out.stdout + out.stderr)
        return m.group(1) if m else "unknown"

    def _binary(self) -> str:
        return ensure_debian_packages("prometheus", ["prometheus"], self.settings)

    def install(self) -> None:
        self._binary()

    @property
    def targets_dir(self) -> Path:
        """Target files (Prometheus file_sd) of processes on ports other than the defaults."""
        return self.run_dir / "targets"

    def register_targets(
        self, name: str, ports: Iterable[int], labels: dict[str, str] | None = None
    ) -> Path:
        """Has Prometheus scrape `127.0.0.1:<port>/metrics` for `ports` (within ~5 s).

        For processes on free ports (integration tests run several pipelines side by side),
        which the static default-port job cannot know. Written atomically: Prometheus watches
        the directory and must never read half a file. `unregister_targets(name)` undoes it.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"target file name {name!r}: letters, digits, '_', '.', '-' only")
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{name}.json"
        group = {"targets": [f"127.0.0.1:{p}" for p in ports], "labels": labels or {}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([group]))
        os.replace(tmp, path)
        return path

    def unregister_targets(self, name: str) -> None:
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    def watches_registered_targets(self) -> bool:
        """Whether the running Prometheus reads `targets_dir` (one started before it existed
        in the config does not, until `telemetry stack down` and `up`)."""
        with urllib.request.urlopen(self.address + "/api/v1/status/config", timeout=5) as resp:
            config = json.loads(resp.read())["data"]["yaml"]
        return str(self.targets_dir) in config

    def launch(self) -> None:
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in COMPONENT_PORTS.values())
        conf = self.run_dir / "prometheus.yml"
        conf.write_text(
            f"""# written by `telemetry stack up`
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: telemetry
    static_configs:
      - targets: [{targets}]
  - job_name: telemetry-registered
    file_sd_configs:
      - files: ['{self.targets_dir}/*.json']
        refresh_interval: 5s
"""
        )
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        start_process(
            [
                self._binary(),
                f"--config.file={conf}",
                f"--storage.tsdb.path={self.run_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=2d",
            ],
            self.pid_file,
            self.log_file,
        )

    def is_ready(self) -> bool:
        with urllib.request.urlopen(self.address + "/-/ready", timeout=3) as resp:
            return bool(resp.status == 200)

    def wait_ready(self) -> None:
        wait_until(self.is_ready, 60, "prometheus", self.pid_file, self.log_file)
