"""The chart's dashboards against Grafana's dashboard schema and what Grafana needs to import them.

Two checks, because neither alone is enough:

- Grafana's published schema types (the `grafana-foundation-sdk` package, generated from
  Grafana's own dashboard kinds, v10.1): each dashboard must decode and encode back without
  losing anything but the few keys listed in NOT_IN_THE_V10_1_TYPES. The SDK's decoder does
  not check value types, so this catches misplaced or unknown keys, not wrong values.
- The invariants import relies on, checked here: unique panel ids (row panels' too), a
  whole gridPos on the 24-column grid without overlaps, unique refIds, datasource references
  that name the dashboard's datasource variable of the same plugin type (the chart provisions
  no data sources: it deploys no Grafana, the user picks one), variables that exist, and a
  schemaVersion with object datasource references.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.grafana import DASHBOARDS, load_dashboard

NAMES = sorted(p.name for p in DASHBOARDS.glob("*.json"))

#: Keys Grafana writes and reads that the v10.1 schema types do not have.
NOT_IN_THE_V10_1_TYPES = {
    ".templating.list[].definition",  # the query variable editor's summary line
    ".panels[].maxPerRow",  # repeat options, in the panel schema since Grafana 10.2
}

BUILT_INS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
             "__range_ms", "__field", "__all"}  # fmt: skip


def _all_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for p in dash["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))
    return panels


def _dropped(original: Any, encoded: Any, path: str = "") -> list[str]:
    """Paths in `original` that `encoded` lost or changed (list indexes as [])."""
    if isinstance(original, dict):
        if not isinstance(encoded, dict):
            return [path]
        out = []
        for key, value in original.items():
            if key not in encoded:
                out.append(f"{path}.{key}")
            else:
                out.extend(_dropped(value, encoded[key], f"{path}.{key}"))
        return out
    if isinstance(original, list):
        if not isinstance(encoded, list) or len(encoded) != len(original):
            return [path]
        return [
            d for a, b in zip(original, encoded, strict=True) for d in _dropped(a, b, path + "[]")
        ]
    return [] if original == encoded else [path]


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_round_trips_through_grafanas_schema_types(name: str) -> None:
    sdk = pytest.importorskip(
        "grafana_foundation_sdk.models.dashboard",
        reason="grafana-foundation-sdk (the dev extra) is not installed",
    )
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    original = load_dashboard(name)
    decoded = sdk.Dashboard.from_json(original)
    encoded = json.loads(json.dumps(decoded, cls=JSONEncoder))
    lost = set(_dropped(original, encoded))
    assert lost <= NOT_IN_THE_V10_1_TYPES, f"{name}: not in Grafana's schema: {lost}"


@pytest.mark.parametrize("name", NAMES)
def test_panel_ids_are_unique_and_the_grid_is_whole(name: str) -> None:
    dash = load_dashboard(name)
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36, name
    panels = _all_panels(dash)
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids), f"{name}: panel ids {ids}"
    assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids {ids}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p.get("gridPos", {})
        assert {"x", "y", "w", "h"} <= set(g), f"{name}: panel {p['title']!r} gridPos {g}"
        assert all(isinstance(g[k], int) for k in "xywh"), f"{name}: {p['title']!r} {g}"
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= 24 and g["h"] >= 1, (name, g)
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize("name", NAMES)
def test_datasources_and_variables_resolve(name: str) -> None:
    dash = load_dashboard(name)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    (ds_var,) = [v for v in variables.values() if v["type"] == "datasource"]
    plugin = ds_var["query"]
    wanted = {"type": plugin, "uid": "${" + ds_var["name"] + "}"}
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == wanted, f"{name}: variable {v['name']}"
    for p in _all_panels(dash):
        targets = p.get("targets", [])
        if p["type"] in ("row", "text"):
            assert not targets, f"{name}: {p['title']!r} is a {p['type']} with queries"
            continue
        assert p["datasource"] == wanted, f"{name}: panel {p['title']!r}"
        ref_ids = [t["refId"] for t in targets]
        assert targets and len(set(ref_ids)) == len(ref_ids), f"{name}: {p['title']!r}"
        for t in targets:
            assert t["datasource"] == wanted, f"{name}: {p['title']!r} target {t['refId']}"
            query = t.get("query") or t.get("expr")
            assert query, f"{name}: {p['title']!r} target {t['refId']} has no query"
            used = {a or b for a, b in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", query)}
            unknown = used - set(variables) - BUILT_INS
            assert not unknown, f"{name}: {p['title']!r} uses unknown variables {unknown}"
        if "repeat" in p:
            assert variables[p["repeat"]].get("multi"), f"{name}: {p['title']!r} repeats"
