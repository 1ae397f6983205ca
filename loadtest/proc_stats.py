"""Memory and CPU of a process from /proc (psutil is not a dependency)."""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str, proc: Path = Path("/proc")) -> int | None:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM...); None when the process is gone."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def rss_mib(pid: int, proc: Path = Path("/proc")) -> float | None:
    kib = status_kib(pid, "VmRSS", proc)
    return None if kib is None else kib / 1024


def peak_rss_mib(pid: int, proc: Path = Path("/proc")) -> float | None:
    """The high-water mark of resident memory (VmHWM)."""
    kib = status_kib(pid, "VmHWM", proc)
    return None if kib is None else kib / 1024


def cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """User + system CPU time so far (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS
