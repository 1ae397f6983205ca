"""Settings tables in the READMEs are generated from the settings classes and up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from plumbing.settings_docs import COMPONENTS, doc_files, markdown_table, render, settings_class


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.name))
def test_every_marked_table_is_up_to_date(path: Path) -> None:
    text = path.read_text()
    assert render(text) == text, (
        f"{path} has a stale settings table: run `telemetry config --write-docs`")


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_option_has_a_row_with_its_docstring(name: str) -> None:
    cls = settings_class(COMPONENTS[name])
    table = markdown_table(cls)
    for field_name, field in cls.model_fields.items():
        [row] = [r for r in table.splitlines() if f"| `{field_name}` |" in r]
        assert f"`TELEMETRY_{field_name.upper()}`" in row
        assert field.description, f"{cls.__name__}.{field_name} has no docstring"


def test_the_processors_readme_has_its_table() -> None:
    assert any(p.parent.name == "processors" for p in doc_files())
