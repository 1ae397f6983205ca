"""The faults `telemetry chaos` injects: each a small class with a name and `inject()`.

A component fault SIGKILLs a process the chaos run started itself and starts it again; a server
fault SIGKILLs (then restarts, as `telemetry stack up` would) or SIGSTOPs (then SIGCONTs) a
server of the stack the run was given. Before signalling a server, its command line must name
that stack's directory: a fault never reaches a process of another stack.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.pipeline_processes import PipelineProcesses
from stack.local_stack import LocalStack
from stack.processes import pid_alive, port_is_free
from stack.service import Service

#: seconds a killed component stays down before it is started again (messages pile up)
COMPONENT_DOWN_S = 2.0
#: seconds a paused server stays stopped unless the fault names its own (`pause-kafka:20`)
PAUSE_S = 10.0


class FaultError(RuntimeError):
    """A fault could not be injected or its target did not come back."""


@dataclass
class ChaosTargets:
    """What faults act on: the run's own component processes and the given stack."""

    pipeline: PipelineProcesses
    stack: LocalStack
    stop: threading.Event
    ready_timeout_s: float
    say: Callable[[str], None] = print


class Fault(ABC):
    name: str

    @abstractmethod
    def inject(self, targets: ChaosTargets) -> dict[str, Any]:
        """Injects the fault and waits until the target is back; what happened, in numbers."""


class KillComponent(Fault):
    """SIGKILL a pipeline component (its whole process group), then start it again."""

    def __init__(self, name: str, component: str, down_s: float = COMPONENT_DOWN_S) -> None:
        self.name = name
        self.component = component
        self.down_s = down_s

    def inject(self, targets: ChaosTargets) -> dict[str, Any]:
        comp = targets.pipeline.by_name()[self.component]
        if not comp.alive() or comp.proc is None:
            raise FaultError(f"{self.component} is not running (exit {comp.exit_code()}); "
                             f"log {comp.log_path}:\n{comp.tail()}")
        pid = comp.proc.pid
        os.killpg(pid, signal.SIGKILL)
        comp.proc.wait(10)
        comp.stop(0)  # reaped already; closes its log file
        targets.stop.wait(self.down_s)
        comp.start()
        t0 = time.monotonic()
        comp.wait_ready(targets.ready_timeout_s, targets.stop)
        return {"killed_pid": pid, "new_pid": comp.pid, "seconds_down": self.down_s,
                "seconds_to_ready": round(time.monotonic() - t0, 2)}


def stack_server(targets: ChaosTargets, name: str) -> tuple[Service, int]:
    """The server `name` of the given stack and its pid, after checking that the process's
    command line names that stack's directory (so it is this stack's, not another's)."""
    svc = next(s for s in targets.stack.services if s.name == name)
    pid = svc.pid()
    if pid is None:
        raise FaultError(f"{name} of the stack in {targets.stack.settings.stack_dir} is not "
                         "running")
    stack_dir = str(Path(targets.stack.settings.stack_dir).resolve())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError as exc:
        raise FaultError(f"cannot read the command line of {name} (pid {pid}): {exc}") from exc
    if stack_dir not in cmdline:
        raise FaultError(f"pid {pid} in {svc.pid_file} does not name {stack_dir} in its "
                         f"command line ({cmdline[:200]!r}): not signalling it")
    return svc, pid


class RestartServer(Fault):
    """SIGKILL a server of the stack, then bring the stack up again (what `stack up` does)."""

    def __init__(self, name: str, server: str) -> None:
        self.name = name
        self.server = server

    def inject(self, targets: ChaosTargets) -> dict[str, Any]:
        svc, pid = stack_server(targets, self.server)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # our child when an earlier fault restarted it
            time.sleep(0.1)
        if pid_alive(pid):
            raise FaultError(f"{self.server} (pid {pid}) survived SIGKILL for 30 s")
        # a killed JVM's listening socket outlives its pid for a moment
        while time.monotonic() < deadline + 30 and not all(
            port_is_free(port) for port in svc.ports()
        ):
            time.sleep(0.2)
        t0 = time.monotonic()
        targets.stack.up()
        return {"killed_pid": pid, "new_pid": svc.pid(),
                "seconds_to_restart": round(time.monotonic() - t0, 2)}


class PauseServer(Fault):
    """SIGSTOP a server of the stack for some seconds, then SIGCONT it."""

    def __init__(self, name: str, server: str, seconds: float = PAUSE_S) -> None:
        self.name = name
        self.server = server
        self.seconds = seconds

    def inject(self, targets: ChaosTargets) -> dict[str, Any]:
        _, pid = stack_server(targets, self.server)
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            time.sleep(self.seconds)  # not cut short by Ctrl-C's stop event: SIGCONT follows
        finally:
            os.kill(pid, signal.SIGCONT)
        return {"paused_pid": pid, "seconds_paused": round(time.monotonic() - t0, 2)}


#: fault name -> maker from its optional argument (the seconds of a pause)
FAULTS: dict[str, Callable[[float | None], Fault]] = {
    "kill-ingest": lambda _: KillComponent("kill-ingest", "ingest"),
    "kill-process": lambda _: KillComponent("kill-process", "process"),
    "kill-sink": lambda _: KillComponent("kill-sink", "sink-influxdb"),
    "restart-mosquitto": lambda _: RestartServer("restart-mosquitto", "mosquitto"),
    "restart-kafka": lambda _: RestartServer("restart-kafka", "kafka"),
    "restart-influxdb": lambda _: RestartServer("restart-influxdb", "influxdb"),
    "pause-kafka": lambda s: PauseServer("pause-kafka", "kafka", PAUSE_S if s is None else s),
    "pause-influxdb": lambda s: PauseServer(
        "pause-influxdb", "influxdb", PAUSE_S if s is None else s
    ),
}
#: faults that act on the stack's servers, not on the run's own processes
SERVER_FAULTS = frozenset(n for n in FAULTS if not n.startswith("kill-"))


def parse_faults(text: str) -> list[Fault]:
    """`kill-ingest,pause-kafka:15` -> the faults, in order; `all` is every one, in order.
    Raises ValueError naming what is wrong."""
    out: list[Fault] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "all":
            out.extend(make(None) for make in FAULTS.values())
            continue
        name, _, arg = part.replace("=", ":").partition(":")
        if name not in FAULTS:
            raise ValueError(f"no fault {name!r}; there is: all, {', '.join(FAULTS)}")
        seconds = None
        if arg:
            if not name.startswith("pause-"):
                raise ValueError(f"{name} takes no argument (only pause-*:SECONDS do)")
            seconds = float(arg)
            if not 0 < seconds <= 600:
                raise ValueError(f"{part}: the pause is 0..600 seconds")
        out.append(FAULTS[name](seconds))
    if not out:
        raise ValueError("name at least one fault")
    return out
