"""CPU microseconds per reading, per process on the data path, from /proc.

Every benchmark run reports the same table: the pipeline's components (ingest, process, sink)
and the servers they need (mosquitto, kafka, influxdb), each as CPU time over a window divided
by the readings that went through in that window. The simulator is listed too, as the load,
but is not part of the pipeline's total. A system compared with ours (issue 7: Telegraf) gets
the same table from its own processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadtest.proc_stats import cpu_seconds

COMPONENT, SERVER, LOAD = "component", "server", "load"
#: the pipeline's processes, in table order, and what each is
ROLES: dict[str, str] = {
    "ingest": COMPONENT,
    "process": COMPONENT,
    "sink": COMPONENT,
    "mosquitto": SERVER,
    "kafka": SERVER,
    "influxdb": SERVER,
    "simulate": LOAD,
}
#: `PipelineProcesses` names its InfluxDB sink `sink-influxdb`; the table calls it `sink`.
ALIASES = {"sink-influxdb": "sink"}


def table_name(name: str) -> str:
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far of each watched process at one moment (None: not running)."""

    at: float
    seconds: dict[str, float | None]


class CpuProbe:
    """Reads user + system CPU of named processes; the pids may change between samples."""

    def __init__(
        self,
        pids: Callable[[], Mapping[str, int | None]],
        read: Callable[[int], float | None] = cpu_seconds,
    ) -> None:
        self.pids = pids
        self.read = read

    def sample(self, at: float) -> CpuSample:
        return CpuSample(
            at,
            {
                table_name(name): (self.read(pid) if pid else None)
                for name, pid in self.pids().items()
            },
        )


def cpu_table(
    before: CpuSample,
    after: CpuSample,
    readings: float,
    extra_seconds: Mapping[str, float] | None = None,
    method: str = "",
) -> dict[str, Any]:
    """The table for the window `before` -> `after`, in which `readings` went through.

    `extra_seconds` gives CPU measured another way (the simulator reports its own, over all its
    sending processes). A process missing from either sample gets null figures, not zero.
    """
    rows: dict[str, dict[str, Any]] = {}
    names = [n for n in ROLES if n in before.seconds or n in after.seconds or
             (extra_seconds and n in extra_seconds)]
    names += sorted((set(before.seconds) | set(after.seconds)) - set(names) - set(ROLES))
    for name in names:
        if extra_seconds and name in extra_seconds:
            used: float | None = extra_seconds[name]
        else:
            start, end = before.seconds.get(name), after.seconds.get(name)
            used = None if start is None or end is None or end < start else end - start
        rows[name] = {
            "role": ROLES.get(name, COMPONENT),
            "cpu_seconds": None if used is None else round(used, 3),
            "us_per_reading": (
                round(used / readings * 1e6, 1) if used is not None and readings > 0 else None
            ),
        }
    pipeline = [r for r in rows.values() if r["role"] != LOAD]
    known = [r["us_per_reading"] for r in pipeline if r["us_per_reading"] is not None]
    return {
        "readings": int(readings),
        "window_s": round(after.at - before.at, 2),
        "method": method
        or "user + system CPU from /proc/<pid>/stat over the window, divided by the readings "
        "that went through in it; servers are shared, so theirs includes any other work on "
        "the stack",
        "rows": rows,
        #: every process of the pipeline (components and servers); the simulator excluded
        "pipeline_us_per_reading": round(sum(known), 1) if known else None,
        "complete": len(known) == len(pipeline),
    }
