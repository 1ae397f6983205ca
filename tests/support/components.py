"""Runs real `telemetry ...` component processes for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

from loadtest.pipeline_processes import ComponentProcess, ComponentSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Component:
    """One `telemetry <args>` process with its own log file and, optionally, health port.

    The process handling is `telemetry run`'s own (`ComponentProcess`); this adds what tests
    want: our environment plus `env`, waiting for /readyz in `start`, metrics, any signal.
    """

    def __init__(
        self, args: list[str], env: dict[str, str], log_dir: Path, health_port: int | None = None
    ) -> None:
        name = "-".join(args).replace("/", "_")
        self.args = args
        self.health_port = health_port
        self.process = ComponentProcess(
            ComponentSpec(name, tuple(args), health_port),
            {**os.environ, **env},
            log_dir / f"{name}.log",
        )

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def start(self, ready_timeout: float = 90.0) -> Component:
        self.process.start()
        if self.health_port is not None:
            self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        self.process.wait_ready(timeout, threading.Event())

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        return self.process.stop(timeout, sig)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        return self.process.tail(lines)
