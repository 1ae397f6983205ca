"""Rules for text that becomes a name in the database: device ids, tag keys and values, metric
names. Checked at the edge (ingest, the metadata rules, validate), so a reading the sinks
cannot store is refused there one metric or tag at a time; the sinks' line-protocol checks
(sinks/line_protocol.py) stay as the last line of defence.

* Unicode text is compared in NFC: "café" sent precomposed or decomposed is one device, one
  tag value, one metric. `nfc` is what the edge stores.
* Invisible characters are refused, not removed: bidi controls (which make an id display as
  another), zero-width characters and the byte order mark (which make two ids look equal).
* Line protocol (InfluxDB's parser, models/points.go) cannot carry a tag key or value, or a
  field key, that ends with a backslash (the separator after it reads as escaped), nor a field
  key with an odd run of backslashes before `,`, `=` or a space (the field parser skips
  backslash pairs). Every sink refuses these, so they are refused here.
"""

from __future__ import annotations

import re
import unicodedata

#: Bidi controls (ALM, LRM, RLM, LRE..RLO, LRI..PDI), zero-width space/non-joiner/joiner,
#: word joiner and the invisible operators, the Mongolian vowel separator, and the BOM (ZWNBSP).
INVISIBLE_CHARACTERS = re.compile(
    "[\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_ODD_BACKSLASHES_BEFORE_SEPARATOR = re.compile(r"(?<!\\)(?:\\\\)*\\[,= ]")


def nfc(text: str) -> str:
    """`text` in Unicode normalization form C (ASCII is already)."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def invisible_character_problem(text: str, what: str) -> str | None:
    """Why `text` is refused for an invisible character, or None (ASCII never is)."""
    if text.isascii():
        return None
    bad = INVISIBLE_CHARACTERS.search(text)
    if bad is None:
        return None
    return (f"{what} contains the invisible character U+{ord(bad.group()):04X} "
            f"({unicodedata.name(bad.group(), 'format character')}); bidi controls, "
            "zero-width characters and the byte order mark make different names look the "
            "same: remove it")


def tag_text_problem(text: str, what: str) -> str | None:
    """Why no sink can store `text` as a tag key or value, or None."""
    if text.endswith("\\"):
        return (f"{what} ends with a backslash, which line protocol cannot carry (the "
                "separator after it would read as escaped): remove or replace it")
    return None


def field_key_problem(name: str, what: str) -> str | None:
    """Why no sink can store `name` as a field key, or None."""
    if "\\" not in name:
        return None
    if name.endswith("\\"):
        return (f"{what} ends with a backslash, which line protocol cannot carry: remove or "
                "replace it")
    if _ODD_BACKSLASHES_BEFORE_SEPARATOR.search(name):
        return (f"{what} has an odd number of backslashes before ',', '=' or a space, which "
                "line protocol cannot carry (InfluxDB would read the separator as "
                "unescaped): remove or double the backslash")
    return None
