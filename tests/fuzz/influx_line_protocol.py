"""InfluxDB's line-protocol parser, ported from `models/points.go` and `pkg/escape` (InfluxDB
2.x), as the oracle the fuzz tests hold our encoder (sinks/line_protocol.py) to.

Written the way InfluxDB reads a request body, not the way our encoder writes one:
`scanLine` splits the body (a backslash skips the next byte, quotes after more `=` than `,`
in the field section hide newlines), `scanKey` / `scanFields` / `scanTime` check a line, and
the stored point is then read back as InfluxDB does: the measurement with
`escape.Unescape`, tags by `walkTags` + `unescapeTag`, field keys by
`escape.AppendUnescaped`, string values by `unescapeStringField`. Everything works on bytes,
as the Go code does. Only what our encoder can write is modelled (no unsigned integers; a
point without a timestamp is refused here because ours always has one).
"""

from __future__ import annotations

from dataclasses import dataclass

#: models.MinNanoTime / MaxNanoTime
MIN_NANO_TIME = -(2**63) + 2
MAX_NANO_TIME = 2**63 - 2
MAX_KEY_LENGTH = 65535
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_BS, _COMMA, _EQ, _SP, _QUOTE, _NL = 0x5C, 0x2C, 0x3D, 0x20, 0x22, 0x0A
_ESCAPE_CHARS = b',"' + b" ="  # pkg/escape escapeChars
_TAG_ESCAPES = (b"\\,", b"\\ ", b"\\=")

FieldValue = float | int | bool | str


class ParseError(ValueError):
    """InfluxDB would answer 400 for this line."""


@dataclass(frozen=True)
class Point:
    """A point as InfluxDB stores it (text as bytes decoded UTF-8 with replacement)."""

    measurement: str
    tags: tuple[tuple[str, str], ...]  # in InfluxDB's order: sorted by escaped key bytes
    fields: tuple[tuple[str, FieldValue], ...]  # as written, duplicates kept
    time_ns: int


def parse_body(body: bytes, precision_ns: int = 1000) -> list[Point]:
    """Every point of a request body (`ParsePointsWithPrecision`); raises ParseError on the
    first line InfluxDB would refuse (it then writes nothing of the body)."""
    points = []
    pos = 0
    while pos < len(body):
        pos, block = _scan_line(body, pos)
        pos += 1
        if not block:
            continue
        start = _skip_whitespace(block, 0)
        if start >= len(block) or block[start] == ord("#"):
            continue
        if block[-1] == _NL:
            block = block[:-1]
        points.append(parse_point(block[start:], precision_ns))
    return points


def _scan_line(buf: bytes, i: int) -> tuple[int, bytes]:
    start, quoted, fields, equals, commas = i, False, False, 0, 0
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == _BS:
            i += 2
            continue
        if c == _SP:
            fields = True
        if fields:
            if not quoted and c == _EQ:
                i += 1
                equals += 1
                continue
            if not quoted and c == _COMMA:
                i += 1
                commas += 1
                continue
            if c == _QUOTE and equals > commas:
                i += 1
                quoted = not quoted
                continue
        if c == _NL and not quoted:
            break
        i += 1
    return i, buf[start:i]


def _skip_whitespace(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] in (0x20, 0x09, 0x00):
        i += 1
    return i


def parse_point(buf: bytes, precision_ns: int = 1000) -> Point:
    """One line (`parsePoint`), then read back as stored."""
    pos, key = _scan_key(buf, 0)
    if not key:
        raise ParseError("missing measurement")
    if len(key) > MAX_KEY_LENGTH:
        raise ParseError("max key length exceeded")
    pos, fields = _scan_fields(buf, pos)
    if not fields:
        raise ParseError("missing fields")
    stored_fields = _walk_fields(fields)
    for field_key, _ in stored_fields:
        if len(key) + 4 + len(field_key) > MAX_KEY_LENGTH:
            raise ParseError("max key length exceeded")
    pos, ts = _scan_time(buf, pos)
    if not ts:
        raise ParseError("no timestamp (our encoder always writes one)")
    value = _parse_int(ts)
    t = value * precision_ns
    if not _INT64_MIN <= t <= _INT64_MAX or not MIN_NANO_TIME <= t <= MAX_NANO_TIME:
        raise ParseError("time outside range")
    while pos < len(buf):
        if buf[pos] != _SP:
            raise ParseError("invalid point: bytes after the timestamp")
        pos += 1
    _, name = _scan_to(key, 0, _COMMA)
    return Point(
        measurement=_text(_unescape(name)),
        tags=tuple((_text(k), _text(v)) for k, v in _walk_tags(key)),
        fields=tuple((_text(k), _field_value(v)) for k, v in stored_fields),
        time_ns=t,
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _parse_int(data: bytes) -> int:
    text = data.decode("ascii")
    if text in ("", "-") or not text.lstrip("-").isdigit() or text.count("-") > 1:
        raise ParseError(f"invalid integer {data!r}")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ParseError(f"integer out of range {data!r}")
    return value


# ---- the key: measurement and tags ----

_TAG_KEY, _TAG_VALUE, _FIELDS = 0, 1, 2


def _scan_key(buf: bytes, i: int) -> tuple[int, bytes]:
    start = _skip_whitespace(buf, i)
    i = start
    state, i = _scan_measurement(buf, i)
    indices: list[int] = []
    if state == _TAG_KEY:
        i, indices = _scan_tags(buf, i)
    key = buf[start:i]
    # duplicate tags (by escaped key bytes) are refused, sorted or not
    tag_keys = [_scan_to(buf, j, _EQ)[1] for j in indices]
    if len(set(tag_keys)) != len(tag_keys):
        raise ParseError("duplicate tags")
    if tag_keys != sorted(tag_keys):
        measurement = buf[start : indices[0] - 1]
        order = sorted(indices, key=lambda j: _scan_to(buf, j, _EQ)[1])
        parts = [measurement]
        for j in order:
            parts.append(_scan_to_space_or(buf, j, _COMMA)[1])
        key = b",".join(parts)
    return i, key


def _scan_measurement(buf: bytes, i: int) -> tuple[int, int]:
    if i >= len(buf) or buf[i] == _COMMA:
        raise ParseError("missing measurement")
    while True:
        i += 1
        if i >= len(buf):
            raise ParseError("missing fields")
        if buf[i - 1] == _BS:
            continue
        if buf[i] == _COMMA:
            return _TAG_KEY, i + 1
        if buf[i] == _SP:
            return _FIELDS, i


def _scan_tags(buf: bytes, i: int) -> tuple[int, list[int]]:
    indices: list[int] = []
    state = _TAG_KEY
    while True:
        if state == _TAG_KEY:
            indices.append(i)
            i = _scan_tags_key(buf, i)
            state = _TAG_VALUE
        elif state == _TAG_VALUE:
            state, i = _scan_tags_value(buf, i)
        else:
            return i, indices


def _scan_tags_key(buf: bytes, i: int) -> int:
    if i >= len(buf) or buf[i] in (_SP, _COMMA, _EQ):
        raise ParseError("missing tag key")
    while True:
        i += 1
        if i >= len(buf) or (buf[i] in (_SP, _COMMA) and buf[i - 1] != _BS):
            raise ParseError("missing tag value")
        if buf[i] == _EQ and buf[i - 1] != _BS:
            return i + 1


def _scan_tags_value(buf: bytes, i: int) -> tuple[int, int]:
    if i >= len(buf) or buf[i] in (_COMMA, _SP):
        raise ParseError("missing tag value")
    while True:
        i += 1
        if i >= len(buf):
            raise ParseError("missing fields")
        if buf[i] == _EQ and buf[i - 1] != _BS:
            raise ParseError("invalid tag format")
        if buf[i] == _COMMA and buf[i - 1] != _BS:
            return _TAG_KEY, i + 1
        if buf[i] == _SP and buf[i - 1] != _BS:
            return _FIELDS, i


def _scan_to(buf: bytes, i: int, stop: int) -> tuple[int, bytes]:
    start = i
    while i < len(buf):
        if buf[i] == stop and (i == 0 or buf[i - 1] != _BS):
            break
        i += 1
    return i, buf[start:i]


def _scan_to_space_or(buf: bytes, i: int, stop: int) -> tuple[int, bytes]:
    start = i
    if buf[i] in (stop, _SP):
        return i, buf[start:i]
    while True:
        i += 1
        if buf[i - 1] == _BS:
            continue
        if i >= len(buf):
            return i, buf[start:i]
        if buf[i] in (stop, _SP):
            return i, buf[start:i]


def _scan_tag_value(buf: bytes, i: int) -> tuple[int, bytes]:
    start = i
    while i < len(buf):
        if buf[i] == _COMMA and buf[i - 1] != _BS:
            break
        i += 1
    return i, buf[start:i]


def _walk_tags(key: bytes) -> list[tuple[bytes, bytes]]:
    pos, name = _scan_to(key, 0, _COMMA)
    if not name:
        return []
    has_escape = b"\\" in key
    tags = []
    i = pos + 1
    while i < len(key):
        i, tag_key = _scan_to(key, i, _EQ)
        i, value = _scan_tag_value(key, i + 1)
        if not value:
            continue
        if has_escape:
            tags.append((_unescape_tag(tag_key), _unescape_tag(value)))
        else:
            tags.append((tag_key, value))
        i += 1
    return tags


def _unescape_tag(data: bytes) -> bytes:
    if b"\\" not in data:
        return data
    for esc in _TAG_ESCAPES:
        data = data.replace(esc, esc[1:])
    return data


def _unescape(data: bytes) -> bytes:
    """escape.Unescape (the measurement name)."""
    if b"\\" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == _BS and i + 1 < len(data) and data[i + 1] in _ESCAPE_CHARS:
            out.append(data[i + 1])
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


def _append_unescaped(src: bytes) -> bytes:
    """escape.AppendUnescaped, quirks included (the field keys)."""
    dst = bytearray()
    pos = 0
    while src:
        nxt = src.find(b"\\", pos)
        if nxt < 0 or nxt + 1 >= len(src):
            return bytes(dst + src)
        if src[nxt + 1] in _ESCAPE_CHARS:
            dst += src[:nxt]
            src = src[nxt + 1 :]
            pos = 0
        else:
            pos = nxt + 1
    return bytes(dst)


def _is_escaped(data: bytes) -> bool:
    while data:
        i = data.find(b"\\")
        if i < 0:
            return False
        if i + 1 < len(data) and data[i + 1] in _ESCAPE_CHARS:
            return True
        data = data[i + 1 :]
    return False


# ---- fields ----

def _scan_fields(buf: bytes, i: int) -> tuple[int, bytes]:
    start = _skip_whitespace(buf, i)
    i = start
    quoted, equals, commas = False, 0, 0
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == _BS and i + 1 < n:
            i += 2
            continue
        if c == _QUOTE and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if c == _EQ and not quoted:
            equals += 1
            if buf[i - 1] == _SP and buf[i - 2] != _BS:
                raise ParseError("missing field key")
            if buf[i - 1] == _COMMA and buf[i - 2] != _BS:
                raise ParseError("missing field key")
            if i + 1 >= n:
                raise ParseError("missing field value")
            if buf[i + 1] in (_COMMA, _SP):
                raise ParseError("missing field value")
            nxt = buf[i + 1]
            if (0x30 <= nxt <= 0x39) or nxt in b".-Nn":
                i = _scan_number(buf, i + 1)
                continue
            if nxt != _QUOTE:
                i = _scan_boolean(buf, i + 1)
                continue
        if c == _COMMA and not quoted:
            commas += 1
        if c == _SP and not quoted:
            break
        i += 1
    if quoted:
        raise ParseError("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise ParseError("invalid field format")
    return i, buf[start:i]


def _is_numeric(c: int) -> bool:
    return 0x30 <= c <= 0x39 or c == 0x2E


def _scan_number(buf: bytes, i: int) -> int:
    start = i
    is_int = decimal = scientific = False
    n = len(buf)
    if i < n and buf[i] == ord("-"):
        i += 1
        if i == n:
            raise ParseError("invalid number")
    while i < n:
        c = buf[i]
        if c in (_COMMA, _SP):
            break
        if c == ord("i") and i > start and not is_int:
            is_int = True
            i += 1
            continue
        if c == ord("u") and i > start and not is_int:
            raise ParseError("unsigned integers are not enabled")
        if c == ord("."):
            if decimal:
                raise ParseError("invalid number")
            decimal = True
        if i > start and c in b"eE":
            scientific = True
            i += 1
            continue
        if c in b"+-" and buf[i - 1] in b"eE":
            i += 1
            continue
        if i + 2 < n and c in b"Nn":
            raise ParseError("invalid number (NaN)")
        if not _is_numeric(c):
            raise ParseError("invalid number")
        i += 1
    if is_int and (decimal or scientific):
        raise ParseError("invalid number")
    digits = i - start - is_int - decimal - (buf[start] == ord("-"))
    if digits == 0:
        raise ParseError("invalid number")
    if is_int:
        if buf[i - 1] != ord("i"):
            raise ParseError("invalid number")
        _parse_int(buf[start : i - 1])
    else:
        _parse_float(buf[start:i])
    return i


def _parse_float(data: bytes) -> float:
    text = data.decode("ascii", "replace")
    try:
        value = float(text)
    except ValueError:
        raise ParseError(f"invalid float {data!r}") from None
    if value in (float("inf"), float("-inf")) and "inf" not in text.lower():
        raise ParseError(f"float out of range {data!r}")  # strconv.ParseFloat: ErrRange
    return value


def _scan_boolean(buf: bytes, i: int) -> int:
    start = i
    if i < len(buf) and buf[i] not in b"tfTF":
        raise ParseError("invalid boolean")
    i += 1
    while i < len(buf) and buf[i] not in (_COMMA, _SP):
        i += 1
    if i - start == 1:
        return i
    if buf[start : i] not in (b"true", b"false", b"TRUE", b"True", b"FALSE", b"False"):
        raise ParseError("invalid boolean")
    return i


def _scan_field_value(buf: bytes, i: int) -> tuple[int, bytes]:
    start = i
    quoted = False
    while i < len(buf):
        if buf[i] == _BS and i + 1 < len(buf) and buf[i + 1] in (_QUOTE, _BS):
            i += 2
            continue
        if buf[i] == _QUOTE:
            i += 1
            quoted = not quoted
            continue
        if buf[i] == _COMMA and not quoted:
            break
        i += 1
    return i, buf[start:i]


def _walk_fields(fields: bytes) -> list[tuple[bytes, bytes]]:
    """The point's field iterator (`Next`): keys unescaped, raw values."""
    out = []
    end = 0
    while end < len(fields):
        end, key = _scan_to(fields, end, _EQ)
        if _is_escaped(key):
            key = _append_unescaped(key)
        end, value = _scan_field_value(fields, end + 1)
        end += 1
        out.append((key, value))
    return out


def _field_value(raw: bytes) -> FieldValue:
    if not raw:
        raise ParseError("empty field value")
    c = raw[0]
    if c == _QUOTE:
        return _unescape_string_field(raw[1:-1]).decode("utf-8", "replace")
    if c in b"0123456789-.nNiIu":
        if raw.endswith(b"i"):
            return _parse_int(raw[:-1])
        return _parse_float(raw)
    if raw in (b"t", b"T", b"true", b"True", b"TRUE"):
        return True
    if raw in (b"f", b"F", b"false", b"False", b"FALSE"):
        return False
    raise ParseError(f"invalid boolean {raw!r}")


def _unescape_string_field(data: bytes) -> bytes:
    if b"\\" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == _BS and i + 1 < len(data) and data[i + 1] in (_BS, _QUOTE):
            out.append(data[i + 1])
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


# ---- time ----

def _scan_time(buf: bytes, i: int) -> tuple[int, bytes]:
    start = _skip_whitespace(buf, i)
    i = start
    while i < len(buf):
        c = buf[i]
        if c in (_NL, _SP):
            break
        if i == start and c == ord("-"):
            i += 1
            continue
        if not 0x30 <= c <= 0x39:
            raise ParseError("bad timestamp")
        i += 1
    return i, buf[start:i]
