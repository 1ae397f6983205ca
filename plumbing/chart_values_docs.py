"""The Helm chart's values table, generated from the `# --` comments in its values.yaml.

The comments follow helm-docs' convention, so the chart reads the same to anyone used to the
prometheus-community charts, and helm-docs could take over without touching values.yaml:

    # -- What the value does; more lines of the same comment continue it.
    # @default -- text shown instead of the default (optional)
    key: value

Only keys with such a comment get a row. A README marks where the table goes:

    <!-- values-table: helm/telemetry-pipeline/values.yaml -->
    (generated: `telemetry config --write-docs` rewrites what is here)
    <!-- end values-table -->

The default is the value as compact JSON; a value longer than `MAX_DEFAULT_CHARS` (nested
resources, probes, peer lists) reads "see values.yaml" instead, to keep the table readable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: The markdown files that may hold values tables.
DOC_FILES = ("README.md", "*/README.md")
#: Longer defaults are shown as "see values.yaml".
MAX_DEFAULT_CHARS = 60

_BLOCK = re.compile(
    r"(<!-- values-table: (?P<target>[\w./-]+) -->\n)(?P<body>.*?)(<!-- end values-table -->)",
    re.DOTALL,
)
_KEY = re.compile(r"""^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+|"[^"]*"|'[^']*') *:(?: |$)""")
_ITEM = re.compile(r"^(?P<indent> *)- ")
_DOC_START = re.compile(r"^ *# -- ?(?P<text>.*)$")
_DOC_DEFAULT = re.compile(r"^ *# @default -- ?(?P<text>.*)$")
_COMMENT = re.compile(r"^ *#(?P<text>.*)$")


@dataclass(frozen=True)
class DocumentedValue:
    """One `# --` comment and the key under it."""

    path: tuple[str, ...]
    description: str
    default: str | None  # the `@default --` text, if any


def documented_values(text: str) -> list[DocumentedValue]:
    """The keys of a values.yaml that carry a `# --` comment, in file order.

    Keys inside list items (topics.list entries) are not values of their own and are skipped.
    """
    found: list[DocumentedValue] = []
    # (indent, key) of the enclosing mappings; key None marks a list item.
    stack: list[tuple[int, str | None]] = []
    doc: list[str] | None = None
    default: str | None = None
    for line in text.splitlines():
        if not line.strip():
            doc, default = None, None
            continue
        if m := _DOC_DEFAULT.match(line):
            default = m.group("text").strip()
            continue
        if m := _DOC_START.match(line):
            doc, default = [m.group("text").strip()], None
            continue
        if m := _COMMENT.match(line):
            if doc is not None:
                doc.append(m.group("text").strip())
            continue
        item = _ITEM.match(line)
        key = _KEY.match(line)
        if item and not key:
            indent = len(item.group("indent"))
            stack = [s for s in stack if s[0] < indent] + [(indent, None)]
        elif key:
            indent = len(key.group("indent"))
            stack = [s for s in stack if s[0] < indent]
            name = key.group("key").strip("\"'")
            path = [k for _, k in stack]
            if doc is not None and None not in path:
                found.append(
                    DocumentedValue((*(k for k in path if k), name), " ".join(doc), default)
                )
            stack.append((indent, name))
        doc, default = None, None
    return found


def _lookup(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


def _default(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return "see values.yaml" if len(text) > MAX_DEFAULT_CHARS else text


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(values_file: Path) -> str:
    """One row per documented key: dotted key, default, description."""
    text = values_file.read_text()
    values = yaml.safe_load(text)
    lines = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for doc in documented_values(text):
        default = doc.default if doc.default is not None else _default(_lookup(values, doc.path))
        lines.append(f"| `{'.'.join(doc.path)}` | `{_cell(default)}` | {_cell(doc.description)} |")
    return "\n".join(lines) + "\n"


def render(text: str, root: Path = ROOT) -> str:
    """`text` with every marked values table regenerated (paths relative to `root`)."""

    def table(m: re.Match[str]) -> str:
        return m.group(1) + markdown_table(root / m.group("target")) + m.group(4)

    return _BLOCK.sub(table, text)


def doc_files(root: Path = ROOT) -> list[Path]:
    found: set[Path] = set()
    for pattern in DOC_FILES:
        found.update(p for p in root.glob(pattern) if "values-table:" in p.read_text())
    return sorted(found)


def write_docs(root: Path = ROOT) -> list[Path]:
    """Rewrites the values tables of every doc file; returns the files that changed."""
    changed = []
    for path in doc_files(root):
        text = path.read_text()
        new = render(text, root)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
