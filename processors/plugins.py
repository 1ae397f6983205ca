"""Steps and agents found by name among installed packages' entry points.

This is how a user's own package extends the processors without forking them: it declares
`[project.entry-points."telemetry.steps"]` (or `"telemetry.agents"`) in its pyproject, is
installed next to this one, and its names can then be used in the settings.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any


class PluginError(ValueError):
    """A configured name cannot be used; the message says what to fix."""


def installed(group: str) -> dict[str, EntryPoint]:
    """Entry points of `group` by name (the first installed one wins for a name)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=group):
        found.setdefault(point.name, point)
    return found


def load(group: str, names: list[str], setting: str) -> list[tuple[str, Any]]:
    """The objects `names` refer to, in order; unknown or repeated names raise PluginError."""
    available = installed(group)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise PluginError(
            f"{setting} names {', '.join(map(repr, unknown))}, which no installed package "
            f"registers under the entry-point group {group!r}. Known: "
            f"{', '.join(sorted(available)) or 'none'}. Install the package that provides it "
            "or fix the name."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PluginError(f"{setting} names {', '.join(map(repr, repeated))} more than once")
    loaded: list[tuple[str, Any]] = []
    for name in names:
        try:
            loaded.append((name, available[name].load()))
        except Exception as exc:
            raise PluginError(
                f"{setting}: {name!r} ({available[name].value}) could not be imported: {exc!r}"
            ) from exc
    return loaded
