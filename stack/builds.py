"""Run long install steps with visible progress and full logs kept in files."""

from __future__ import annotations

import contextlib
import fcntl
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from stack.processes import StackError, log_tail, popen_logged


def say(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def run_step(
    what: str,
    argv: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    heartbeat: float = 20.0,
) -> None:
    """Runs one install step; every `heartbeat` seconds says what runs and for how long."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    say(f"{what} (log: {log_file})")
    started = time.monotonic()
    with open(log_file, "ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
    proc = popen_logged(argv, log_file, env, cwd)
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(heartbeat):
            elapsed = int(time.monotonic() - started)
            say(f"  ... {what}: {elapsed // 60}m{elapsed % 60:02d}s, {_last_line(log_file)}")

    threading.Thread(target=ticker, daemon=True).start()
    code = proc.wait()
    done.set()
    elapsed = time.monotonic() - started
    if code != 0:
        raise StackError(f"{what} failed (exit {code}) after {elapsed:.0f}s.\n{log_tail(log_file)}")
    say(f"  done: {what} in {elapsed:.0f}s")


def _last_line(log_file: Path) -> str:
    try:
        with open(log_file, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f"last: {lines[-1].strip()[:120]}" if lines else ""


@contextlib.contextmanager
def install_lock(cache_dir: Path) -> Iterator[None]:
    """One installer at a time per cache (two test runs must not build into one folder)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".install.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another `stack up` is installing into {cache_dir}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
