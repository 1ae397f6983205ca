"""Writes a benchmark report: report.json (the numbers) and report.png (throughput and memory).

The writer takes plain numbers, so it can be checked without running a pipeline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt

from loadtest.comparison_plot import cpu_bars, latency_lines


def percentiles(samples: list[float], points: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles, plus min, max and count; empty when there are no samples."""
    if not samples:
        return {}
    ordered = sorted(samples)
    out = {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in points}
    out["min"], out["max"] = ordered[0], ordered[-1]
    out["count"] = float(len(ordered))
    return out


def _series(timeline: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in timeline:
        value = row.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            xs.append(float(row["t_s"]))
            ys.append(float(value))
    return xs, ys


def _title(report: dict[str, Any]) -> str:
    run = report.get("run", {})
    mode = run.get("mode", "fixed_rate")
    when = run.get("started_at", "")
    if mode == "component":
        c = report.get("component", {})
        return (
            f"telemetry benchmark --component {run.get('component', '?')} {when}: "
            f"{run.get('count', '?')} readings, {c.get('readings_per_s', '?')} readings/s steady"
        )
    if mode == "compare":
        comp = report.get("comparison") or {}
        held = ", ".join(f"{n} {s.get('max_rate_held')}"
                         for n, s in (comp.get("systems") or {}).items())  # fmt: skip
        ratio = (comp.get("ratios_ours_over_telegraf") or {}).get("cpu_us_per_message")
        return (
            f"benchmark --compare {run.get('compare', '?')} {when[:16]}: held msg/s {held}; "
            f"CPU/msg ours/{run.get('compare', '?')} {ratio}"
        )
    if mode == "find_max":
        fm = report.get("find_max", {})
        return (
            f"telemetry benchmark --find-max {when}: held {fm.get('max_rate_held', '?')} msg/s "
            f"({run.get('devices', '?')} devices, {run.get('duration_s', '?')} s steps)"
        )
    return (
        f"telemetry benchmark {when}: {run.get('devices', '?')} devices, "
        f"{run.get('rate_asked', '?')} msg/s asked, {run.get('duration_s', '?')} s"
    )


def _cpu_bars(ax: Any, table: dict[str, Any] | None) -> None:
    """The CPU table as bars: µs per reading of each process; the simulator (load) greyed."""
    rows = (table or {}).get("rows") or {}
    named = [(n, r) for n, r in rows.items() if isinstance(r.get("us_per_reading"), int | float)]
    if not named:
        ax.text(0.5, 0.5, "no CPU figures", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    colours = {"component": "tab:blue", "server": "tab:orange", "load": "tab:grey"}
    names = [n for n, _ in named][::-1]
    values = [float(r["us_per_reading"]) for _, r in named][::-1]
    ax.barh(names, values, color=[colours.get(r.get("role", ""), "tab:blue")
                                  for _, r in named][::-1])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.1f}", va="center", fontsize="small")
    total = (table or {}).get("pipeline_us_per_reading")
    ax.set_xlabel(
        f"CPU µs per reading (pipeline total {total}; blue: components, orange: servers, "
        "grey: the simulator)"
    )
    ax.grid(True, axis="x", alpha=0.3)


def plot(report: dict[str, Any], path: Path) -> None:
    timeline: list[dict[str, Any]] = report.get("timeline") or []
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(11, 11), gridspec_kw={"height_ratios": [3, 2, 2]}
    )
    middle.sharex(top)
    fig.suptitle(_title(report))
    run = report.get("run", {})
    # a --compare timeline holds one system after the other: each is drawn on its own
    systems: dict[str | None, list[dict[str, Any]]] = {}
    for row in timeline:
        systems.setdefault(row.get("system"), []).append(row)
    for system, rows in systems.items():
        named = "" if system is None else f"{system}: "
        for key, label in (
            ("sent_per_s", "simulator sent (msg/s)"),
            ("in_per_s", "MQTT in, ingest (msg/s)"),
            ("processed_per_s", "readings processed (/s)"),
            ("written_per_s", "points written, sink (/s)"),
            ("stored_per_s", "points stored, InfluxDB seq (/s)"),
            ("done_per_s", f"backlog done, {run.get('component', 'component')} (readings/s)"),
        ):
            xs, ys = _series(rows, key)
            if xs:
                top.plot(xs, ys, label=named + label)
        names = sorted({n for row in rows for n in (row.get("rss_mib") or {})})
        for name in names:
            values = [{"t_s": r["t_s"], "v": (r.get("rss_mib") or {}).get(name)} for r in rows]
            xs, ys = _series(values, "v")
            if xs:
                middle.plot(xs, ys, label=named + name)
    top.set_ylabel("per second")
    top.grid(True, alpha=0.3)
    middle.set_ylabel("resident memory (MiB)")
    middle.set_xlabel("seconds since the load (or the component) started")
    middle.grid(True, alpha=0.3)
    load_end = run.get("duration_s") if run.get("mode", "fixed_rate") == "fixed_rate" else None
    starts: dict[tuple[str | None, int], tuple[float, float]] = {}
    for row in timeline:
        step = (row.get("system"), row["step"]) if "step" in row else None
        if step is not None and step not in starts:
            starts[step] = (float(row["t_s"]), float(row.get("step_rate") or 0))
    for ax in (top, middle):
        if isinstance(load_end, int | float):
            ax.axvline(load_end, color="grey", linestyle="--", linewidth=1)
        for t, rate in starts.values():
            ax.axvline(t, color="grey", linestyle=":", linewidth=1)
            if ax is top:
                ax.text(t, 1.0, f" {rate:g}", transform=ax.get_xaxis_transform(),
                        fontsize="x-small", va="bottom")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
    if report.get("comparison"):
        cells = bottom.get_subplotspec().subgridspec(1, 2)
        bottom.remove()
        cpu_bars(fig.add_subplot(cells[0]), report["comparison"])
        latency_lines(fig.add_subplot(cells[1]), report["comparison"])
    else:
        _cpu_bars(bottom, report.get("cpu_us_per_reading"))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """report.json and report.png in `out_dir` (created); returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "report.json", out_dir / "report.png"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    plot(report, png_path)
    return json_path, png_path
