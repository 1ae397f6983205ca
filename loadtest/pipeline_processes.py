"""The pipeline's component processes for `run` and `benchmark`: start, wait ready, stop.

Each component runs as `python -m plumbing.cli <args>` in its own session, so a Ctrl-C in the
terminal reaches only `run`, which then stops them in order (simulator first, so nothing is
left half-sent, then ingest, process, sink, so each drains into the next).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from loadtest.settings import RunSettings
from stack.processes import port_is_free


def free_port() -> int:
    """A port nothing listens on now (for a component the benchmark starts on its own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StartError(RuntimeError):
    """A component did not come up; the message says which and shows its log."""


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    args: tuple[str, ...]
    port: int | None
    """Its /healthz, /readyz and /metrics port; None for a process without one."""


def pipeline_specs(settings: RunSettings) -> list[ComponentSpec]:
    """The components `run` starts before the simulator, in start order."""
    return [
        ComponentSpec("ingest", ("ingest",), settings.run_ingest_port),
        ComponentSpec("process", ("process",), settings.run_process_port),
        ComponentSpec("sink-influxdb", ("sink", "influxdb"), settings.run_sink_port),
    ]


def _die_with_parent() -> list[str]:
    """A command prefix that SIGTERMs the child if this process dies without stopping it
    (SIGKILL, a crash): the components never outlive `run`. Linux util-linux `setpriv`."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


class ComponentProcess:
    def __init__(self, spec: ComponentSpec, env: dict[str, str], log_path: Path) -> None:
        self.spec = spec
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        if self.spec.port is not None and not port_is_free(self.spec.port):
            raise StartError(
                f"{self.name}: port {self.spec.port} is already in use (another "
                f"`telemetry {' '.join(self.spec.args)}` running?). Stop it, or move it with "
                "its *_HEALTH_PORT setting and tell `run` via TELEMETRY_RUN_*_PORT."
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the child's lifetime
        self.proc = subprocess.Popen(
            [*_die_with_parent(), sys.executable, "-m", "plumbing.cli", *self.spec.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        if self.spec.port is None:
            return self.alive()
        try:
            url = f"http://127.0.0.1:{self.spec.port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            code = self.exit_code()
            if code is not None:
                raise StartError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.tail()}"
                )
            if self.ready():
                return
            stop.wait(0.3)
        if not stop.is_set():
            raise StartError(
                f"{self.name} not ready on port {self.spec.port} after {timeout:.0f}s; "
                f"log {self.log_path}:\n{self.tail()}"
            )

    def stop(self, timeout: float, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM), then SIGKILL after `timeout` seconds; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


class PipelineProcesses:
    """ingest, process, sink-influxdb and the simulator of one run."""

    def __init__(self, settings: RunSettings, env: dict[str, str], log_dir: Path) -> None:
        self.settings = settings
        self.env = env
        self.log_dir = log_dir
        self.components = [
            ComponentProcess(spec, env, log_dir / f"{spec.name}.log")
            for spec in pipeline_specs(settings)
        ]
        self.simulator: ComponentProcess | None = None

    def by_name(self) -> dict[str, ComponentProcess]:
        procs = list(self.components)
        if self.simulator is not None:
            procs.append(self.simulator)
        return {p.name: p for p in procs}

    def start_components(self, stop: threading.Event, say: Callable[[str], None] = print) -> None:
        for comp in self.components:
            comp.start()
        for comp in self.components:
            comp.wait_ready(self.settings.run_ready_timeout_s, stop)
            if not stop.is_set():
                say(f"{comp.name} ready (pid {comp.pid}, port {comp.spec.port})")

    def start_simulator(self, sim_args: list[str], stop: threading.Event) -> None:
        """Starts the simulator (again, for each --find-max step: the previous one has exited
        or is stopped first)."""
        if self.simulator is not None:
            self.simulator.stop(self.settings.run_stop_timeout_s)
        spec = ComponentSpec(
            "simulate",
            ("simulate", *sim_args, "--health-port", str(self.settings.run_simulate_port)),
            self.settings.run_simulate_port,
        )
        self.simulator = ComponentProcess(spec, self.env, self.log_dir / "simulate.log")
        self.simulator.start()
        self.simulator.wait_ready(self.settings.run_ready_timeout_s, stop)

    def stop_all(self) -> dict[str, int | None]:
        """Stops simulator, ingest, process, sink in that order; name -> exit code."""
        order = ([self.simulator] if self.simulator else []) + self.components
        return {c.name: c.stop(self.settings.run_stop_timeout_s) for c in order}
