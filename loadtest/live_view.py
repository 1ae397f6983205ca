"""What `telemetry run` shows: a snapshot of the pipeline, drawn as a screen or as one line."""

from __future__ import annotations

from dataclasses import dataclass, field

NA = "n/a"
SINK = "sink"
INFLUXDB = "InfluxDB"


@dataclass
class ComponentStatus:
    name: str
    #: running, not answering, exited (code), not started
    state: str
    pid: int | None = None
    rss_mib: float | None = None
    cpu_s: float | None = None


@dataclass
class ViewSnapshot:
    elapsed_s: float
    sent_total: float | None = None
    sent_rate: float | None = None
    in_total: float | None = None
    in_rate: float | None = None
    processed_total: float | None = None
    processed_rate: float | None = None
    stored_total: float | None = None
    stored_rate: float | None = None
    #: where the stored figure comes from: SINK (points the sink wrote), INFLUXDB (sum of the
    #: run's devices' newest seq in the database) or NA
    stored_source: str = NA
    #: reason -> count; None when telemetry.dlq could not be read
    dead_letters: dict[str, int] | None = None
    #: group -> lag (None for a group that did not answer); None when Kafka did not answer
    lag: dict[str, int | None] | None = None
    components: list[ComponentStatus] = field(default_factory=list)


def fmt_num(value: float | None, decimals: int = 0, grouped: bool = True) -> str:
    if value is None:
        return NA
    return f"{value:,.{decimals}f}" if grouped else f"{value:.{decimals}f}"


def stored_label(source: str) -> str:
    if source == SINK:
        return "points written (sink)"
    if source == INFLUXDB:
        return "points stored (InfluxDB)"
    return "points stored"


def fmt_elapsed(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_screen(snap: ViewSnapshot, title: str) -> str:
    """The full-screen view (without the terminal escape codes)."""
    lines = [f"{title}   {fmt_elapsed(snap.elapsed_s)}", ""]
    lines.append(f"  {'':<34}{'per second':>12}{'total':>14}")
    for label, rate, tot in (
        ("simulator sent (messages)", snap.sent_rate, snap.sent_total),
        ("MQTT in (ingest)", snap.in_rate, snap.in_total),
        ("readings processed", snap.processed_rate, snap.processed_total),
        (stored_label(snap.stored_source), snap.stored_rate, snap.stored_total),
    ):
        lines.append(f"  {label:<34}{fmt_num(rate, 1):>12}{fmt_num(tot):>14}")
    lines.append("")
    if snap.dead_letters is None:
        lines.append(f"  dead letters of these devices (telemetry.dlq): {NA}")
    else:
        total = sum(snap.dead_letters.values())
        lines.append(f"  dead letters of these devices (telemetry.dlq): {total:,}")
        for reason, n in sorted(snap.dead_letters.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {reason:<26}{n:>10,}")
    lines.append("")
    if snap.lag is None:
        lines.append(f"  consumer lag: {NA}")
    elif not snap.lag:
        lines.append(f"  consumer lag: {NA} (no matching active consumer group yet)")
    else:
        lines.append("  consumer lag (records)")
        for group, lag in sorted(snap.lag.items()):
            lines.append(f"    {group:<40}{fmt_num(lag):>10}")
    lines.append("")
    for c in snap.components:
        pid = f"pid {c.pid}" if c.pid else ""
        lines.append(
            f"  {c.name:<15}{c.state:<14}{pid:<12}"
            f"{fmt_num(c.rss_mib)} MiB  {fmt_num(c.cpu_s, 1)} s CPU"
        )
    return "\n".join(lines)


def render_line(snap: ViewSnapshot) -> str:
    """One line per refresh, for logs and pipes (plain numbers, no thousands separators)."""
    dlq = NA if snap.dead_letters is None else str(sum(snap.dead_letters.values()))
    lag = NA
    if snap.lag:
        lag = ",".join(f"{g}={fmt_num(v, grouped=False)}" for g, v in sorted(snap.lag.items()))
    stored = "written" if snap.stored_source == SINK else "stored"
    down = [c.name for c in snap.components if c.state.startswith("exited")]
    return (
        f"t={int(snap.elapsed_s)}s sent/s={fmt_num(snap.sent_rate, 1, False)} "
        f"in/s={fmt_num(snap.in_rate, 1, False)} "
        f"processed/s={fmt_num(snap.processed_rate, 1, False)} "
        f"{stored}/s={fmt_num(snap.stored_rate, 1, False)} "
        f"{stored}={fmt_num(snap.stored_total, 0, False)} dlq={dlq} lag[{lag}]"
        + (f" DOWN={','.join(down)}" if down else "")
    )
