"""The `comparison` section of `telemetry benchmark --compare telegraf`: both systems' steps
side by side, the highest rate each held, CPU per message, and the ratios ours / Telegraf.

Pure: it reads the `find_max` results of the two systems (loadtest/find_max.py), so it can be
checked without running anything.

A step counts as held here when every reading of the step was stored (0 lost, by seq), the
p99 publish -> queryable latency stayed within the limit and the simulator sent the asked
rate. Consumer lag, which only our pipeline has, is left out, so both are judged alike (the
ramp of our own steps still stops on it: see the `find_max` of each system).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtest.cpu_table import LOAD
from loadtest.find_max import Criteria, Ramp, judge_step

OURS, TELEGRAF = "ours", "telegraf"
#: the processes each system needs between the broker and the database, in table order
DATA_PATH: dict[str, tuple[str, ...]] = {
    OURS: ("ingest", "process", "sink", "mosquitto", "kafka", "influxdb"),
    TELEGRAF: ("telegraf", "mosquitto", "influxdb"),
}
#: what our contract does that Telegraf, configured as in stack/telegraf_config.py, does not
#: do on this load (the load is chosen so both store the same points: see loadtest/README.md)
TELEGRAF_DOES_NOT = (
    "unit conversion: a {\"value\", \"unit\"} metric is stored as two fields (<name>_value, "
    "<name>_unit) in the sender's unit, not converted to the canonical unit; this load sends "
    "bare canonical numbers only",
    "validation and reject reasons: no dead letters; a payload json_v2 cannot read is dropped "
    "with a log line, out-of-range values, unknown metrics and bad device ids are stored as "
    "sent; this load sends no bad messages",
    "tags from metadata: the retained devices/<id>/metadata tags (site, line, model, firmware, "
    "kind) are not joined; Telegraf's points carry device_id only",
    "timestamps: only the configured form (epoch ms); a reading with an RFC 3339 ts or none is "
    "dropped or stamped with the receive time, and a batch (array of readings) is not read",
    "enrichment: no derived metrics (dew_point) and no alert rules",
)


def step_row(step: Mapping[str, Any], criteria: Criteria) -> dict[str, Any]:
    """One step of one system: load, what was stored, latency, CPU and memory per process."""
    table = step.get("cpu_us_per_reading") or {}
    rows: Mapping[str, Any] = table.get("rows") or {}
    path = {n: r for n, r in rows.items() if r.get("role") != LOAD}
    messages = int(step.get("messages_sent") or 0)
    cpu = {n: r.get("cpu_seconds") for n, r in path.items()}
    total = sum(v for v in cpu.values() if v is not None) if None not in cpu.values() else None
    lost = step.get("lost")
    expected = step.get("expected_with_seq")
    held, why, _ = judge_step(
        float(step["rate_asked"]), float(step.get("readings_per_s") or step["rate_asked"]),
        1.0, step.get("sent_rate"), lost, step.get("p99_ms"), [], criteria,
    )  # fmt: skip
    return {
        "rate_asked": step["rate_asked"],
        "messages_sent": messages,
        "sent_rate": step.get("sent_rate"),
        "stored_by_seq": None if lost is None or expected is None else expected - lost,
        "lost": lost,
        "p50_ms": step.get("p50_ms"),
        "p99_ms": step.get("p99_ms"),
        "held": held,
        "failed_because": why,
        "cpu_seconds": cpu,
        "cpu_seconds_total": None if total is None else round(total, 3),
        "cpu_us_per_message": {
            n: None if v is None or not messages else round(v / messages * 1e6, 1)
            for n, v in cpu.items()
        },
        "cpu_us_per_message_total": (
            None if total is None or not messages else round(total / messages * 1e6, 1)
        ),
        "peak_rss_mib": {n: round(v, 1) for n, v in (step.get("peak_rss_mib") or {}).items()},
        "load_cpu_seconds": (rows.get("simulate") or {}).get("cpu_seconds"),
    }


def max_held(steps: Sequence[Mapping[str, Any]]) -> float | None:
    """The highest rate held with no lower rate failed (the ramp's own rule)."""
    ramp = Ramp()
    ramp.history = [(float(s["rate_asked"]), bool(s["held"])) for s in steps]
    return ramp.max_held()


def system_section(
    name: str, result: Mapping[str, Any], criteria: Criteria
) -> dict[str, Any]:
    steps = [step_row(s, criteria) for s in result.get("steps") or []]
    held = max_held(steps)
    at_held = next((s for s in steps if s["held"] and s["rate_asked"] == held), None)
    return {
        "data_path": list(DATA_PATH.get(name, ())),
        "max_rate_held": held,
        "cpu_us_per_message_at_max_held": at_held["cpu_us_per_message_total"] if at_held else None,
        "ramp_stopped_because": result.get("stopped_because"),
        "steps": steps,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def ratios(ours: Mapping[str, Any], telegraf: Mapping[str, Any]) -> dict[str, Any]:
    """ours / Telegraf: held rate (> 1: ours holds more) and CPU per message (> 1: ours costs
    more), the latter at every rate both ran and at the highest rate both held."""
    by_rate_ours = {s["rate_asked"]: s for s in ours["steps"]}
    by_rate_tg = {s["rate_asked"]: s for s in telegraf["steps"]}
    common = sorted(set(by_rate_ours) & set(by_rate_tg))
    per_rate = {
        f"{rate:g}": _ratio(by_rate_ours[rate]["cpu_us_per_message_total"],
                            by_rate_tg[rate]["cpu_us_per_message_total"])
        for rate in common
    }  # fmt: skip
    both_held = [r for r in common if by_rate_ours[r]["held"] and by_rate_tg[r]["held"]]
    at = max(both_held) if both_held else (common[0] if common else None)
    return {
        "max_rate_held": _ratio(ours["max_rate_held"], telegraf["max_rate_held"]),
        "cpu_us_per_message": None if at is None else per_rate[f"{at:g}"],
        "cpu_us_per_message_at_rate": at,
        "cpu_us_per_message_by_rate": per_rate,
    }


def comparison_section(
    results: Mapping[str, Mapping[str, Any]],
    criteria: Criteria,
    load: Mapping[str, Any],
) -> dict[str, Any]:
    """The report's `comparison`: `results` maps ours/telegraf to its find_max result."""
    systems = {name: system_section(name, result, criteria) for name, result in results.items()}
    out: dict[str, Any] = {
        "peer": TELEGRAF,
        "load": dict(load),
        "criteria": {
            "max_lost": criteria.max_lost,
            "max_p99_ms": criteria.max_p99_ms,
            "min_sent_share": criteria.min_sent_share,
        },
        "systems": systems,
        "telegraf_does_not": list(TELEGRAF_DOES_NOT),
    }
    if OURS in systems and TELEGRAF in systems:
        out["ratios_ours_over_telegraf"] = ratios(systems[OURS], systems[TELEGRAF])
    return out
