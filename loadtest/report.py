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


def plot(report: dict[str, Any], path: Path) -> None:
    timeline: list[dict[str, Any]] = report.get("timeline") or []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    run = report.get("run", {})
    fig.suptitle(
        f"telemetry benchmark {run.get('started_at', '')}: {run.get('devices', '?')} devices, "
        f"{run.get('rate_asked', '?')} msg/s asked, {run.get('duration_s', '?')} s"
    )
    for key, label in (
        ("sent_per_s", "simulator sent (msg/s)"),
        ("in_per_s", "MQTT in, ingest (msg/s)"),
        ("processed_per_s", "readings processed (/s)"),
        ("written_per_s", "points written, sink (/s)"),
        ("stored_per_s", "points stored, InfluxDB seq (/s)"),
    ):
        xs, ys = _series(timeline, key)
        if xs:
            top.plot(xs, ys, label=label)
    top.set_ylabel("per second")
    top.grid(True, alpha=0.3)
    names = sorted({n for row in timeline for n in (row.get("rss_mib") or {})})
    for name in names:
        rows = [{"t_s": r["t_s"], "v": (r.get("rss_mib") or {}).get(name)} for r in timeline]
        xs, ys = _series(rows, "v")
        if xs:
            bottom.plot(xs, ys, label=name)
    bottom.set_ylabel("resident memory (MiB)")
    bottom.set_xlabel("seconds since the simulator started")
    bottom.grid(True, alpha=0.3)
    load_end = run.get("duration_s")
    for ax in (top, bottom):
        if isinstance(load_end, int | float):
            ax.axvline(load_end, color="grey", linestyle="--", linewidth=1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
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
