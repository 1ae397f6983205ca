"""The chart's values table is generated from values.yaml's `# --` comments and up to date;
every value is documented and described by values.schema.json. Needs no helm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from plumbing.chart_values_docs import (
    ROOT,
    DocumentedValue,
    doc_files,
    documented_values,
    markdown_table,
    render,
)

VALUES = ROOT / "helm" / "telemetry-pipeline" / "values.yaml"
SCHEMA = ROOT / "helm" / "telemetry-pipeline" / "values.schema.json"


def test_the_helm_readme_has_the_values_table() -> None:
    assert ROOT / "helm" / "README.md" in doc_files()


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_marked_values_table_is_up_to_date(path: Path) -> None:
    text = path.read_text()
    assert render(text) == text, (
        f"{path} has a stale values table: run `telemetry config --write-docs`"
    )


def test_comments_become_rows_list_items_and_section_headers_do_not() -> None:
    text = """\
# ------------------------------------------------------------------
# A section header, not a value.
# ------------------------------------------------------------------

# -- The first line,
# and its continuation.
top: 1
group:
  # -- Nested | with a pipe.
  # @default -- computed
  inner: x
  undocumented: 2
  # -- A list of objects.
  items:
    - name: a
      # -- Inside a list item: not a value.
      config: {}
# -- Separated by a blank line from its key: dropped.

after: true
"""
    assert documented_values(text) == [
        DocumentedValue(("top",), "The first line, and its continuation.", None),
        DocumentedValue(("group", "inner"), "Nested | with a pipe.", "computed"),
        DocumentedValue(("group", "items"), "A list of objects.", None),
    ]


def test_defaults_are_json_and_long_ones_point_to_values_yaml(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "# -- A list.\nargs: [sink, influxdb]\n"
        "# -- Long.\nresources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 512Mi}}\n"
        "# -- Overridden.\n# @default -- the release name\nname: ''\n"
    )
    assert markdown_table(values).splitlines()[2:] == [
        '| `args` | `["sink", "influxdb"]` | A list. |',
        "| `resources` | `see values.yaml` | Long. |",
        "| `name` | `the release name` | Overridden. |",
    ]


def leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the values reached through mappings only (lists and scalars are leaves)."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaves(v, (*path, str(k)))]
    return [path]


def test_every_value_is_documented_by_itself_or_a_parent() -> None:
    documented = {d.path for d in documented_values(VALUES.read_text())}
    undocumented = [
        ".".join(leaf)
        for leaf in leaves(yaml.safe_load(VALUES.read_text()))
        if not any(leaf[:n] in documented for n in range(1, len(leaf) + 1))
    ]
    assert undocumented == [], "values without a `# --` comment in values.yaml"


def schema_at(schema: dict[str, Any], node: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        properties = node.get("properties", {})
        if key in properties:
            node = properties[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def test_every_documented_value_is_in_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    missing = [
        ".".join(d.path)
        for d in documented_values(VALUES.read_text())
        if schema_at(schema, schema, d.path) is None
    ]
    assert missing == []
