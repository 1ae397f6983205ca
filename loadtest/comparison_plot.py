"""The side-by-side panel of a `--compare` report: CPU per message of each process, and p99
latency with loss, for both systems at every rate step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: one colour per process, the same in both systems' bars
COLOURS = {
    "ingest": "tab:blue",
    "process": "tab:cyan",
    "sink": "tab:purple",
    "kafka": "tab:brown",
    "telegraf": "tab:green",
    "mosquitto": "tab:orange",
    "influxdb": "tab:red",
}
MARKERS = {"ours": "o", "telegraf": "s"}


def _rates(systems: Mapping[str, Any]) -> list[float]:
    return sorted({float(s["rate_asked"]) for sys in systems.values() for s in sys["steps"]})


def cpu_bars(ax: Any, comparison: Mapping[str, Any]) -> None:
    """Per rate, one stacked bar per system: CPU µs per message of each of its processes."""
    systems = comparison.get("systems") or {}
    rates = _rates(systems)
    if not rates:
        ax.text(0.5, 0.5, "no steps", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    width = 0.8 / max(1, len(systems))
    labelled: set[str] = set()
    for i, (name, system) in enumerate(systems.items()):
        by_rate = {float(s["rate_asked"]): s for s in system["steps"]}
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(rates))]
        base = [0.0] * len(rates)
        for proc in system["data_path"]:
            values = [float(((by_rate.get(r) or {}).get("cpu_us_per_message") or {}).get(proc)
                            or 0.0) for r in rates]  # fmt: skip
            ax.bar(xs, values, width, bottom=base, color=COLOURS.get(proc, "tab:gray"),
                   edgecolor="white", label=None if proc in labelled else proc)  # fmt: skip
            labelled.add(proc)
            base = [b + v for b, v in zip(base, values, strict=True)]
        for x, r, top in zip(xs, rates, base, strict=True):
            if r in by_rate:
                ax.text(x, top, f"{name}\n{top:,.0f}", ha="center", va="bottom",
                        fontsize="x-small")  # fmt: skip
    ax.set_xticks(range(len(rates)), [f"{r:g}" for r in rates])
    ax.set_xlabel("offered rate (msg/s)")
    ax.set_ylabel("CPU µs per message")
    ax.set_title("CPU per message, each process on the data path", fontsize="small")
    ax.margins(y=0.3)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2, loc="upper right")


def latency_lines(ax: Any, comparison: Mapping[str, Any]) -> None:
    """p99 publish -> queryable per rate for each system; lost readings written beside."""
    systems = comparison.get("systems") or {}
    limit = (comparison.get("criteria") or {}).get("max_p99_ms")
    for name, system in systems.items():
        steps = sorted(system["steps"], key=lambda s: float(s["rate_asked"]))
        pts = [(float(s["rate_asked"]), s["p99_ms"], s["lost"]) for s in steps
               if isinstance(s.get("p99_ms"), int | float)]  # fmt: skip
        if not pts:
            continue
        held = system.get("max_rate_held")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=MARKERS.get(name, "^"),
                label=f"{name}: held {held:g} msg/s" if held else f"{name}: held none")
        for rate, p99, lost in pts:
            if lost:
                ax.annotate(f"lost {lost:,}", (rate, p99), fontsize="x-small",
                            textcoords="offset points", xytext=(4, 4))  # fmt: skip
    if isinstance(limit, int | float):
        ax.axhline(limit, color="grey", linestyle="--", linewidth=1, label=f"limit {limit:g} ms")
    ax.set_xlabel("offered rate (msg/s)")
    ax.set_ylabel("p99 publish -> queryable (ms)")
    ax.set_title("latency and loss per step", fontsize="small")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")
