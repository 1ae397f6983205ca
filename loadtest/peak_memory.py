"""The highest resident memory of named processes over a window, sampled from /proc.

The kernel's own high-water mark (VmHWM) covers a process's whole life: for a server that
has run for hours it says nothing about one benchmark step. So a thread reads VmRSS of each
process every `interval_s` and keeps the highest; the figure is a lower bound of the true peak
by at most what the process allocated and freed between two samples.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from loadtest.proc_stats import rss_mib


class PeakMemory:
    """`with PeakMemory(pids) as peaks: ...`; then `peaks.mib` is name -> highest MiB seen."""

    def __init__(
        self,
        pids: Callable[[], Mapping[str, int | None]],
        interval_s: float = 0.5,
        read: Callable[[int], float | None] = rss_mib,
    ) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.read = read
        self.mib: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)

    def sample(self) -> None:
        for name, pid in self.pids().items():
            value = self.read(pid) if pid else None
            if value is not None and value > self.mib.get(name, 0.0):
                self.mib[name] = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()
