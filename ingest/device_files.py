"""Device metadata files for `telemetry devices load`: CSV or JSON, checked row by row.

CSV: a header row with a `device_id` column; every other column is a tag, and an empty cell
means the device has no such tag. JSON: an object of device id to tags, or an array of
objects each with a `device_id` and either a `tags` object or the tags beside it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.device_ids import checked_device_id, shown
from ingest.metadata import DEFAULT_TAG_LIMITS, TagLimits, check_tags
from ingest.rejected import Rejected
from ingest.strict_json import JsonProblem, loads, type_name


class UnusableFile(ValueError):
    """The file as a whole cannot be read; the message says why."""


@dataclass(frozen=True)
class DeviceRow:
    where: str
    device_id: str
    tags: dict[str, str]


@dataclass(frozen=True)
class BadRow:
    where: str
    problems: list[str]


@dataclass
class DeviceFile:
    good: list[DeviceRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    _first_seen: dict[str, str] = field(default_factory=dict)
    tag_limits: TagLimits = DEFAULT_TAG_LIMITS

    def add(self, where: str, device_id: Any, tags: Any) -> None:
        problems: list[str] = []
        if not isinstance(device_id, str):
            problems.append(f"device_id is {type_name(device_id)}; it must be a string")
        else:
            device_id, rejected = checked_device_id(device_id)
            if rejected is not None:
                problems.append(rejected.detail)
            elif device_id in self._first_seen:
                problems.append(f"device {shown(device_id)} already appears at "
                                f"{self._first_seen[device_id]}; keep one row per device")
            else:
                self._first_seen[device_id] = where
        checked_tags: dict[str, str] = {}
        try:
            checked = check_tags(tags, self.tag_limits)
            problems.extend(r.detail for r in checked.refused)
            checked_tags = checked.tags
        except Rejected as rej:
            problems.append(rej.detail)
        if problems:
            self.bad.append(BadRow(where, problems))
        else:
            assert isinstance(device_id, str)
            self.good.append(DeviceRow(where, device_id, checked_tags))


def read_device_file(
    path: Path, fmt: str | None = None, tag_limits: TagLimits = DEFAULT_TAG_LIMITS
) -> DeviceFile:
    """Reads `path` (format from `fmt` or the extension); raises UnusableFile."""
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind not in ("csv", "json"):
        raise UnusableFile(f"{path}: cannot tell the format; name it .csv or .json or pass "
                           "--format csv|json")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UnusableFile(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UnusableFile(f"{path}: not UTF-8 (invalid byte at offset {exc.start}); save "
                           "it as UTF-8") from None
    return parse_csv(text, tag_limits) if kind == "csv" else parse_json(text, tag_limits)


def parse_csv(text: str, tag_limits: TagLimits = DEFAULT_TAG_LIMITS) -> DeviceFile:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise UnusableFile("the file is empty; the first row must name the columns, "
                               "one of them device_id")
        _check_header(header)
        out = DeviceFile(tag_limits=tag_limits)
        for cells in reader:
            where = f"line {reader.line_num}"
            if not any(cells):
                continue  # blank line
            if len(cells) != len(header):
                out.bad.append(BadRow(where, [
                    f"{len(cells)} cells but the header has {len(header)} columns; leave a "
                    "cell empty (,,) for a missing tag"]))
                continue
            row = dict(zip(header, cells, strict=True))
            device_id = row.pop("device_id")
            out.add(where, device_id, {k: v for k, v in row.items() if v != ""})
        return out
    except csv.Error as exc:
        raise UnusableFile(f"line {reader.line_num}: not valid CSV: {exc}") from None


def _check_header(header: list[str]) -> None:
    if "device_id" not in header:
        raise UnusableFile(f"line 1: no device_id column in the header {header[:10]}; name "
                           "the column that holds the device ids device_id")
    for i, name in enumerate(header, start=1):
        if not name:
            raise UnusableFile(f"line 1: column {i} has no name; every column is a tag and "
                               "needs one")
        if header.count(name) > 1:
            raise UnusableFile(f"line 1: column {shown(name)} appears twice")


def parse_json(text: str, tag_limits: TagLimits = DEFAULT_TAG_LIMITS) -> DeviceFile:
    try:
        document = loads(text)
    except JsonProblem as exc:
        raise UnusableFile(str(exc)) from None
    out = DeviceFile(tag_limits=tag_limits)
    if isinstance(document, dict):
        for device_id, tags in document.items():
            out.add(f"device {shown(device_id)}", device_id, tags)
    elif isinstance(document, list):
        for i, item in enumerate(document, start=1):
            where = f"item {i}"
            if not isinstance(item, dict):
                out.bad.append(BadRow(where, [f"is {type_name(item)}; each item is an object "
                                              'like {"device_id": "d1", "site": "berlin"}']))
                continue
            item = dict(item)
            if "device_id" not in item:
                out.bad.append(BadRow(where, ['has no "device_id"; add one']))
                continue
            device_id = item.pop("device_id")
            if item.keys() == {"tags"} and isinstance(item["tags"], dict):
                out.add(where, device_id, item["tags"])
            else:
                out.add(where, device_id, item)
    else:
        raise UnusableFile(f"the file holds {type_name(document)}; give an object of "
                           "device id to tags, or an array of objects with a device_id")
    return out
