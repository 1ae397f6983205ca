"""InfluxDB line protocol for EnrichedReading records, escaped the way the real parsers read it.

The rules were checked against InfluxDB 2.9.1 (`models/points.go`) by writing hostile strings
and reading them back (tests/integration/test_sink_influxdb_escaping.py):

* Tag keys and values: `,` `=` and space get a backslash. Backslashes are NOT doubled: the
  tag parser only unescapes `\\,` `\\=` and `\\ `, so `a\\b` is stored as written. A tag key or
  value that ends in a backslash cannot be written: the separator after it would read as
  escaped.
* Field keys: `,` `=` space and `"` get a backslash. The field parser skips backslash pairs,
  so a run of an odd number of backslashes just before `,` `=` or space, or any backslash at
  the end of the key, cannot be written (InfluxDB refuses the line or, for an even run at the
  end, silently stores a different field).
* A newline cannot be written anywhere outside a string field value.
* Measurements are read back with `escape.Unescape`, which also drops the backslash of `\\=`
  and `\\"`: a measurement holding either is refused.
* The parser skips tabs and NUL bytes (with spaces) before the measurement and before the
  first field key, and no escape keeps them: a measurement or field key starting with one
  would be stored without it (found by the fuzz tests, tests/fuzz/).
* InfluxDB splits a request body into lines with a scanner that treats a backslash as
  escaping the next byte and tracks double quotes; a tag holding a backslash-space before an
  unescaped quote makes it read past the end of the line. Such a line is valid alone, so
  `request_bodies` puts it last in its request body.

TDengine's schemaless parser documents different backslash rules (two backslashes make one)
and its source has changed between versions; with `Dialect.TDENGINE` any backslash in a
name or tag value is refused rather than risk a silently altered value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

#: InfluxDB stores time as int64 nanoseconds; its parser accepts this range (points.go).
_MIN_TIME_NS = -9223372036854775806
_MAX_TIME_NS = 9223372036854775806
_CACHE_LIMIT = 100_000


class Dialect(StrEnum):
    INFLUXDB = "influxdb"
    TDENGINE = "tdengine"


class UnrepresentableError(ValueError):
    """The reading cannot be written as line protocol without being altered."""

    def __init__(self, message: str, metric: str | None = None) -> None:
        super().__init__(message)
        self.metric = metric


_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_FIELD_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", '"': '\\"'})
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_STRING_VALUE_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
#: What InfluxDB's `skipWhitespace` skips besides a space (which is escaped).
_SKIPPED_WHITESPACE = ("\t", "\x00")
#: An odd number of backslashes right before a byte the field parser treats as a separator.
_ODD_BACKSLASHES_BEFORE_SEPARATOR = re.compile(r"(?<!\\)(?:\\\\)*\\[,= ]")


def escape_measurement(name: str, dialect: Dialect = Dialect.INFLUXDB) -> str:
    if not name:
        raise UnrepresentableError("the measurement name is empty")
    if name.startswith("#"):
        raise UnrepresentableError("a measurement starting with '#' reads as a comment line")
    if name.startswith(_SKIPPED_WHITESPACE):
        raise UnrepresentableError(
            "the measurement starts with a tab or NUL byte, which InfluxDB skips")
    if "\\=" in name or '\\"' in name:
        raise UnrepresentableError(
            "the measurement holds a backslash before '=' or '\"', which InfluxDB reads as an "
            "escape and drops (escape.Unescape)")
    _check_common(name, "measurement", dialect)
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(text: str, what: str, dialect: Dialect = Dialect.INFLUXDB) -> str:
    """A tag key or value (non-empty) escaped for line protocol."""
    if not text:
        raise UnrepresentableError(f"{what} is empty")
    _check_common(text, what, dialect)
    return text.translate(_TAG_ESCAPES)


def escape_field_key(name: str, dialect: Dialect = Dialect.INFLUXDB) -> str:
    if not name:
        raise UnrepresentableError("a metric name is empty", metric=name)
    what = f"metric name {name!r}"
    try:
        _check_common(name, what, dialect)
    except UnrepresentableError as exc:
        raise UnrepresentableError(str(exc), metric=name) from None
    if name.startswith(_SKIPPED_WHITESPACE):
        raise UnrepresentableError(
            f"{what} starts with a tab or NUL byte, which InfluxDB's field parser skips as "
            "whitespace: the field would be stored under another name",
            metric=name,
        )
    if dialect is Dialect.TDENGINE:
        return name.translate(_TAG_ESCAPES)
    if _ODD_BACKSLASHES_BEFORE_SEPARATOR.search(name):
        raise UnrepresentableError(
            f"{what} has an odd number of backslashes before ',', '=' or a space; InfluxDB's "
            "field parser would read the separator as unescaped",
            metric=name,
        )
    return name.translate(_FIELD_KEY_ESCAPES)


def escape_string_value(text: str) -> str:
    """A string field value, quotes included."""
    return '"' + text.translate(_STRING_VALUE_ESCAPES) + '"'


def _check_common(text: str, what: str, dialect: Dialect) -> None:
    if "\n" in text:
        raise UnrepresentableError(f"{what} contains a newline, which ends a line-protocol line")
    if dialect is Dialect.TDENGINE and "\\" in text:
        raise UnrepresentableError(
            f"{what} contains a backslash; TDengine's schemaless parser collapses backslashes "
            "(and its rules differ between versions), so the value would not be stored as sent"
        )
    if text.endswith("\\"):
        raise UnrepresentableError(
            f"{what} ends with a backslash; line protocol would read the separator after it "
            "as escaped"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnrepresentableError(f"{what} is not valid Unicode (lone surrogate)") from None


def format_field_value(value: Any) -> str:
    """A float, int (`i` suffix), bool or string field value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnrepresentableError(f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return escape_string_value(value)
    raise UnrepresentableError(f"a field value of type {type(value).__name__} has no line form")


class ReadingEncoder:
    """EnrichedReading -> one line: measurement, device_id and tags, metrics and seq, ts_us.

    Devices send the same tags and metric names reading after reading, so the escaped series
    (measurement and tag set) is cached per device id and tags as they come, and the sorted,
    escaped field keys per set of metric names: a reading costs its values' `repr` and a join.
    """

    def __init__(self, measurement: str = "telemetry", dialect: Dialect = Dialect.INFLUXDB):
        self.dialect = dialect
        self.measurement = escape_measurement(measurement, dialect)
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        #: metric names as they come -> [(name, "escaped name=")] in sorted name order.
        self._field_keys: dict[tuple[str, ...], list[tuple[str, str]]] = {}

    def encode(self, reading: Mapping[str, Any]) -> str:
        device_id = reading["device_id"]
        tags = reading.get("tags")
        series_key = (device_id, tuple(tags.items()) if tags else ())
        series = self._series.get(series_key)
        if series is None:
            series = self._new_series(series_key, device_id, tags or {})
        metrics = reading.get("fields") or {}
        names = tuple(metrics)
        keys = self._field_keys.get(names)
        if keys is None:
            keys = self._new_field_keys(names)
        parts = []
        for name, key in keys:
            value = metrics[name]
            if type(value) is not float or value - value != 0.0:  # not a finite float
                value = _metric_value(name, value)
            parts.append(key + repr(value))
        seq = reading.get("seq")
        if seq is not None:
            if "seq" in metrics:
                raise UnrepresentableError(
                    "a metric named 'seq' collides with the reading's seq field", metric="seq"
                )
            parts.append(f"seq={int(seq)}i")
        if not parts:
            raise UnrepresentableError("the reading has no metrics and no seq: nothing to store")
        ts_us = reading["ts_us"]
        if type(ts_us) is not int or not _MIN_TIME_NS <= ts_us * 1000 <= _MAX_TIME_NS:
            raise UnrepresentableError(f"ts_us {ts_us!r} is outside the range a database stores")
        return f"{series} {','.join(parts)} {ts_us}"

    def _new_series(
        self,
        cache_key: tuple[str, tuple[tuple[str, str], ...]],
        device_id: str,
        tags: Mapping[str, str],
    ) -> str:
        tag_set: dict[str, str] = {}
        for key, value in tags.items():
            if value == "":
                continue
            if key == "device_id":
                if value != device_id:
                    raise UnrepresentableError(
                        f"tag 'device_id'={value!r} contradicts the reading's device_id"
                    )
                continue
            tag_set[key] = value
        tag_set["device_id"] = device_id
        parts = [self.measurement]
        for key in sorted(tag_set):
            parts.append(
                escape_tag(key, f"tag key {key!r}", self.dialect)
                + "="
                + escape_tag(tag_set[key], f"tag {key!r} value {tag_set[key]!r}", self.dialect)
            )
        series = ",".join(parts)
        if len(self._series) >= _CACHE_LIMIT:
            self._series.clear()
        self._series[cache_key] = series
        return series

    def _new_field_keys(self, names: tuple[str, ...]) -> list[tuple[str, str]]:
        keys = [(name, escape_field_key(name, self.dialect) + "=") for name in sorted(names)]
        if len(self._field_keys) >= _CACHE_LIMIT:
            self._field_keys.clear()
        self._field_keys[names] = keys
        return keys


def _metric_value(name: str, value: Any) -> float:
    """A metric value that is not a finite float: an int becomes one, the rest is refused."""
    if isinstance(value, bool) or not isinstance(value, float | int):
        raise UnrepresentableError(
            f"metric {name!r} is {type(value).__name__}, not a number", metric=name
        )
    value = float(value)
    if not math.isfinite(value):
        raise UnrepresentableError(
            f"metric {name!r} is {value!r}, not a finite number", metric=name
        )
    return value


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, Any],
    ts: int,
    dialect: Dialect = Dialect.INFLUXDB,
) -> str:
    """Any point (tests and tools write string fields with it); tags sorted, empty omitted."""
    head = [escape_measurement(measurement, dialect)]
    for key in sorted(tags):
        if tags[key] != "":
            head.append(
                escape_tag(key, f"tag key {key!r}", dialect)
                + "="
                + escape_tag(tags[key], f"tag {key!r}", dialect)
            )
    body = ",".join(
        f"{escape_field_key(k, dialect)}={format_field_value(v)}" for k, v in fields.items()
    )
    if not body:
        raise UnrepresentableError("a point needs at least one field")
    return f"{','.join(head)} {body} {int(ts)}"


def leaves_quote_open(line: str) -> bool:
    """Whether InfluxDB's line splitter (`scanLine`) would read past the newline after `line`.

    Mirrors points.go: a backslash skips the next byte, the first unskipped space starts the
    field section, and there a quote after more `=` than `,` toggles quoting.
    """
    if '"' not in line or "\\" not in line:
        return False
    data = line.encode()
    i, quoted, fields, equals, commas = 0, False, False, 0, 0
    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash
            i += 2
            continue
        if c == 0x20:
            fields = True
        if fields:
            if not quoted and c == 0x3D:
                equals += 1
            elif not quoted and c == 0x2C:
                commas += 1
            elif c == 0x22 and equals > commas:
                quoted = not quoted
        i += 1
    return quoted


def request_bodies(lines: Iterable[str]) -> list[bytes]:
    """Lines joined into request bodies; a line that `leaves_quote_open` ends its body."""
    lines = list(lines)
    whole = "\n".join(lines)
    if '"' not in whole or "\\" not in whole:  # no line can leave a quote open: one body
        return [whole.encode()] if lines else []
    bodies: list[bytes] = []
    current: list[str] = []
    for line in lines:
        current.append(line)
        if leaves_quote_open(line):
            bodies.append("\n".join(current).encode())
            current = []
    if current:
        bodies.append("\n".join(current).encode())
    return bodies
