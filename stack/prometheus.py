"""Prometheus from Debian's packages, scraping every pipeline component's `/metrics`."""

from __future__ import annotations

import re
import subprocess
import urllib.request

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
"""
        )
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
