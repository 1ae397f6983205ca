"""JSON parsing that refuses ambiguous input and survives hostile input.

The standard library's parser is kept (it is fast and written in C); around it:
- duplicate object keys are refused, as I-JSON (RFC 7493) requires, instead of the last
  silently winning;
- integers longer than int64 can be are kept as their text (`BigInt`) instead of being
  converted, which is quadratic in the digits and refused beyond 4300 digits;
- nesting deeper than the interpreter's recursion limit is reported, not raised;
- `NaN`, `Infinity` and `-Infinity` literals are read as floats (devices do send them), so a
  later stage can reject just that metric as not a finite number.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Nesting deeper than this is refused wherever ingest has to look inside a value.
MAX_NESTING = 32

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# A JSON integer with this many characters or more (sign included) is outside int64: JSON
# forbids leading zeros, so 20 digits are at least 10**19 > INT64_MAX.
_BIG_INT_CHARS = 21
_SURROGATES = re.compile("[\ud800-\udfff]")


class JsonProblem(ValueError):
    """The text is not JSON we accept; the message says what is wrong."""


class NestedTooDeep(JsonProblem):
    """The value is nested more deeply than ingest will look into."""


class BigInt:
    """A JSON integer outside int64, kept as its text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BigInt) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"BigInt({self.text[:30]}{'...' if len(self.text) > 30 else ''})"


def _parse_int(text: str) -> int | BigInt:
    return BigInt(text) if len(text) >= _BIG_INT_CHARS else int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonProblem(
                    f"duplicate key {key[:60]!a} in one object; every key must be unique"
                )
            seen.add(key)
    return obj


#: Built once: `json.loads` with hooks builds a new decoder on every call (~5 µs).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_int=_parse_int)


def loads(text: str) -> Any:
    """Parses `text`; raises JsonProblem with a reason a person can act on."""
    if text.startswith("\ufeff"):  # RFC 8259 lets parsers ignore a byte order mark
        text = text[1:]
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise NestedTooDeep("nested too deeply to parse") from None
    except JsonProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JsonProblem(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. a float literal the parser cannot convert
        raise JsonProblem(f"not JSON: {exc}") from None


def loads_utf8(data: bytes) -> Any:
    """Parses UTF-8 bytes (never UTF-16/32, which `json.loads(bytes)` would guess)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonProblem(
            f"not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start} is invalid"
        ) from None
    try:
        return loads(text)
    except NestedTooDeep:
        raise
    except JsonProblem as exc:
        if "\x00" in text:
            raise JsonProblem(f"{exc} (the payload holds NUL bytes: is it UTF-16 or UTF-32? "
                              "send UTF-8)") from None
        raise


def is_valid_unicode(text: str) -> bool:
    """False when `text` holds an unpaired surrogate (a `\\ud800`-style escape): such a
    string cannot be written as UTF-8 and I-JSON forbids it."""
    return text.isascii() or not _SURROGATES.search(text)


def type_name(value: Any) -> str:
    """The JSON type of a parsed value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | BigInt):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def json_text(value: Any, depth: int = 0) -> str:
    """`value` written back as compact JSON; big integers as their digits.

    Raises JsonProblem past MAX_NESTING levels. Strings stay readable unless they hold an
    unpaired surrogate, which is then written as a `\\uXXXX` escape.
    """
    if depth > MAX_NESTING:
        raise NestedTooDeep(f"nested more than {MAX_NESTING} levels deep")
    if isinstance(value, BigInt):
        return value.text
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "{" + ",".join(
            _string(k) + ":" + json_text(v, depth + 1) for k, v in value.items()
        ) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v, depth + 1) for v in value) + "]"
    return json.dumps(value)  # null, booleans, numbers (NaN and infinities as literals)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=not is_valid_unicode(text))
