"""Start, find and stop server processes by PID file; check ports; wait for readiness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A stack operation failed; the message says what to do about it."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, setting: str, what: str) -> None:
    if not port_is_free(port):
        raise StackError(
            f"port {port} on 127.0.0.1 is taken, so {what} cannot start there. Stop whatever "
            f"listens on it (`ss -ltnp 'sport = :{port}'` shows it) or move {what} with "
            f"{setting}=<free port>."
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_process(
    argv: Sequence[str],
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Starts a server detached from our process group, so Ctrl-C here does not kill it."""
    proc = popen_logged(argv, log_file, env, cwd, detach=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def popen_logged(
    argv: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    detach: bool = False,
) -> subprocess.Popen[bytes]:
    """A child whose output goes to `log_file` (appended), with our environment plus `env`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=detach,
        )


def stop_process(pid_file: Path, timeout: float = 30.0) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns whether something was running."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        _reap(pid)
        time.sleep(0.2)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    _reap(pid)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    pid_file: Path | None = None,
    log_file: Path | None = None,
) -> None:
    """Polls `check` until true; fails early if the process died, with its log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        if pid_file is not None and read_pid(pid_file) is None:
            raise StackError(f"{what} exited during start-up.\n{log_tail(log_file)}")
        time.sleep(0.5)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s.\n{log_tail(log_file)}")


def log_tail(log_file: Path | None, lines: int = 40) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last {len(text)} lines of {log_file} ---\n" + "\n".join(text)
