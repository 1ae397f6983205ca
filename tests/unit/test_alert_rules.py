"""The alert rules file: what it accepts, and a message naming the file, rule and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.alert_rules import (
    AlertRule,
    AlertRulesError,
    load_rules,
    parse_duration,
    parse_rules,
)
from processors.plugins import PluginError

EXAMPLE = Path(__file__).parents[2] / "processors" / "alert_rules.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_the_shipped_example_loads() -> None:
    rules = load_rules(EXAMPLE)
    by_name = {rule.name: rule for rule in rules}
    assert by_name["boiler-overheat"] == AlertRule(
        "boiler-overheat", "temperature", "above", 90.0, 30_000_000,
        frozenset({"boiler-1", "boiler-2"}), ())
    assert by_name["plant-1-cold-room"].tags == (("room", "cold-store"), ("site", "plant-1"))
    assert by_name["plant-1-cold-room"].for_us == 300_000_000
    battery = by_name["battery-low"]
    assert (battery.condition, battery.threshold, battery.devices) == ("below", 3.3, None)
    assert by_name["line-3-overcurrent"].for_us == 0
    assert by_name["line-3-overcurrent"].tags == (("line", "3"), ("site", "plant-1"))


def test_an_error_is_a_plugin_error_so_the_worker_stops_at_start() -> None:
    assert issubclass(AlertRulesError, PluginError)
    assert issubclass(AlertRulesError, ValueError)


@pytest.mark.parametrize(
    ("value", "us"),
    [(30, 30_000_000), (0, 0), (0.5, 500_000), ("500ms", 500_000), ("30s", 30_000_000),
     ("5m", 300_000_000), ("1h30m", 5_400_000_000), ("2d", 172_800_000_000),
     ("1.5m", 90_000_000), (" 1m 30s ", 90_000_000)],
)
def test_durations(value: object, us: int) -> None:
    assert parse_duration(value) == us


@pytest.mark.parametrize("value", ["30", "5 minutes", "-5s", "s", "", -1, True, None,
                                   float("inf"), "1x", [30]])
def test_bad_durations_say_what_is_accepted(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(value)


def test_selection_by_devices_and_tags() -> None:
    [both, tags_only, anyone] = parse_rules({"rules": [
        {"name": "both", "metric": "t", "above": 1,
         "select": {"devices": ["a", "b"], "tags": {"site": "p1"}}},
        {"name": "tags", "metric": "t", "above": 1, "select": {"tags": {"site": "p1",
                                                                         "zone": "z"}}},
        {"name": "any", "metric": "t", "below": 1, "select": {"devices": "c"}},
    ]}, "mem")
    assert both.selects("a", {"site": "p1", "x": "y"})
    assert not both.selects("a", {"site": "p2"})
    assert not both.selects("z", {"site": "p1"})
    assert tags_only.selects("anything", {"site": "p1", "zone": "z"})
    assert not tags_only.selects("anything", {"site": "p1"})
    assert anyone.devices == frozenset({"c"})
    assert parse_rules({"rules": [{"name": "n", "metric": "t", "above": 1}]},
                       "m")[0].selects("any", {})


def test_thresholds_are_strict() -> None:
    [above, below] = parse_rules({"rules": [
        {"name": "a", "metric": "t", "above": 10},
        {"name": "b", "metric": "t", "below": -2.5},
    ]}, "mem")
    assert above.holds(10.000001) and not above.holds(10.0) and not above.holds(-1)
    assert below.holds(-2.6) and not below.holds(-2.5)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rules: [", r"rules\.yaml is not valid YAML"),
        ("- name: x", r"a mapping with a `rules:` list"),
        ("rules: []\n", r"non-empty list"),
        ("rules: []\nextra: 1\n", r"unknown top-level key\(s\) extra"),
        ("rules:\n  - just text\n", r"rules\[0\]: a rule is a mapping"),
        ("rules:\n  - metric: t\n    above: 1\n", r"rules\[0\]: `name` is missing"),
        ("rules:\n  - name: 42\n    metric: t\n    above: 1\n", r"rules\[0\]: `name`.*quote"),
        ("rules:\n  - {name: a, metric: t, above: 1}\n  - {name: b, metric: t, abvoe: 1}\n",
         r"rules\[1\] \('b'\): unknown key\(s\) abvoe"),
        ("rules:\n  - {name: a, above: 1}\n", r"rules\[0\] \('a'\): `metric`"),
        ("rules:\n  - {name: a, metric: t}\n", r"exactly one of `above:` or `below:` \(got "
                                               r"neither\)"),
        ("rules:\n  - {name: a, metric: t, above: 1, below: 0}\n",
         r"got above and below\); for a band, write two rules"),
        ("rules:\n  - {name: a, metric: t, above: 1e3}\n", r"`above` must be a finite number.*"
                                                           r"1\.0e\+3"),
        ("rules:\n  - {name: a, metric: t, below: true}\n", r"`below` must be a finite number"),
        ("rules:\n  - {name: a, metric: t, above: .nan}\n", r"finite number"),
        ("rules:\n  - {name: a, metric: t, above: 1, for: 5 minutes}\n",
         r"rules\[0\] \('a'\): `for`: '5 minutes' is not a duration"),
        ("rules:\n  - {name: a, metric: t, above: 1, select: {}}\n",
         r"leave `select` out to match every device"),
        ("rules:\n  - {name: a, metric: t, above: 1, select: {device: x}}\n",
         r"unknown key\(s\) in `select`: device"),
        ("rules:\n  - {name: a, metric: t, above: 1, select: {devices: []}}\n",
         r"`select\.devices` is a device id or a non-empty list"),
        ("rules:\n  - {name: a, metric: t, above: 1, select: {devices: [7]}}\n",
         r"quote ids"),
        ("rules:\n  - {name: a, metric: t, above: 1, select: {tags: {line: 3}}}\n",
         r"`select\.tags`.*`line: \"3\"`"),
        ("rules:\n  - {name: a, metric: t, above: 1}\n  - {name: a, metric: u, below: 1}\n",
         r"rules\[1\] \('a'\) has the name of rules\[0\]; names must be unique"),
    ],
)
def test_a_wrong_file_names_the_file_the_rule_and_the_fix(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AlertRulesError, match=says) as info:
        load_rules(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AlertRulesError, match=r"cannot read the alert rules file .*nope\.yaml"):
        load_rules(tmp_path / "nope.yaml")
