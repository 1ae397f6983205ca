"""Settings tables generated from the settings classes, so each option is documented once.

A README marks where a table goes:

    <!-- settings-table: processors.settings:ProcessorSettings -->
    (generated: `telemetry config --write-docs` rewrites what is here)
    <!-- end settings-table -->

(`<!-- settings-table: sinks.settings:InfluxDBSinkSettings own -->`: only the options the
class adds to its base.)

`telemetry config --write-docs` fills every marked place from the field docstrings and
defaults; a unit test fails when a README is out of date.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from plumbing import chart_values_docs
from plumbing.settings import ENV_PREFIX, TelemetrySettings

ROOT = Path(__file__).resolve().parent.parent
#: The markdown files that may hold settings tables.
DOC_FILES = ("README.md", "*/README.md", "sinks/*.md")

_BLOCK = re.compile(
    r"(<!-- settings-table: (?P<target>[\w.]+:\w+)(?P<own> own)? -->\n)(?P<body>.*?)"
    r"(<!-- end settings-table -->)",
    re.DOTALL,
)


def settings_class(target: str) -> type[TelemetrySettings]:
    """`package.module:Class` -> the class."""
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, TelemetrySettings)):
        raise TypeError(f"{target} is not a settings class")
    return cls


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple):
        return f"`{','.join(map(str, value))}`" if value else "empty"
    return f"`{value}`"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def markdown_table(cls: type[TelemetrySettings], own: bool = False) -> str:
    """One row per option: environment variable, YAML key, default, what it does. `own`:
    only the options the class adds to its first base (a destination's, beside the shared
    table of its base)."""
    lines = ["| environment variable | YAML key | default | what it does |", "|---|---|---|---|"]
    inherited = cls.__mro__[1].model_fields if own else {}  # type: ignore[attr-defined]
    for name, field in cls.model_fields.items():
        if name in inherited:
            continue
        lines.append(
            f"| `{ENV_PREFIX}{name.upper()}` | `{name}` | {_default(field)} | "
            f"{_one_line(field.description)} |"
        )
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """`text` with every marked table regenerated."""

    def table(m: re.Match[str]) -> str:
        cls = settings_class(m.group("target"))
        return m.group(1) + markdown_table(cls, own=bool(m.group("own"))) + m.group(5)

    return _BLOCK.sub(table, text)


def doc_files(root: Path = ROOT) -> list[Path]:
    found: set[Path] = set()
    for pattern in DOC_FILES:
        found.update(p for p in root.glob(pattern) if "settings-table:" in p.read_text())
    return sorted(found)


def write_docs(root: Path = ROOT) -> list[Path]:
    """Rewrites the tables of every doc file; returns the files that changed."""
    changed = []
    for path in doc_files(root):
        text = path.read_text()
        new = render(text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


#: What `telemetry config NAME` prints.
COMPONENTS = {
    "dlq": "dlq.settings:DlqSettings",
    "ingest": "ingest.settings:IngestSettings",
    "process": "processors.settings:ProcessorSettings",
    "sink-influxdb": "sinks.settings:InfluxDBSinkSettings",
    "sink-tdengine": "sinks.settings:TDengineSinkSettings",
    "simulate": "loadtest.settings:SimulatorSettings",
    "stack": "stack.settings:StackSettings",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `telemetry config`."""
    parser = sub.add_parser(
        "config",
        help="print a component's options (environment variable, default, meaning)",
        description="Prints the settings table of a component, generated from its settings "
        "class; --write-docs regenerates every marked table in the READMEs (the settings "
        "tables and the Helm chart's values table).",
    )
    parser.add_argument("component", nargs="?", choices=sorted(COMPONENTS))
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the settings tables and the chart's values table in "
                        "the project's READMEs")
    parser.set_defaults(func=_config)


def _config(args: argparse.Namespace) -> int:
    if args.write_docs:
        for path in [*write_docs(), *chart_values_docs.write_docs()]:
            print(f"updated {path.relative_to(ROOT)}")
        return 0
    names = [args.component] if args.component else sorted(COMPONENTS)
    for name in names:
        print(f"## telemetry {name}\n\n{markdown_table(settings_class(COMPONENTS[name]))}")
    return 0
