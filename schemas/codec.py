"""Avro single-object encoding with writer schemas found by fingerprint, no registry needed.

Wire format (Avro spec, "Single-object encoding"): `C3 01`, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the binary body.
Every `<name>.v<N>.avsc` in this folder is loaded, so data written with any kept version can
be read and resolved into the newest version of the same record (or a chosen one).
"""

from __future__ import annotations

import io
import json
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
SCHEMA_DIR = Path(__file__).parent
_FILE_NAME = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>\d+)\.avsc$")


class CodecError(ValueError):
    """The bytes are not a single-object Avro record we can read."""


class SchemaVersion:
    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version
        self.raw: dict[str, Any] = json.loads(path.read_text())
        # Parsed once, with fastavro's marker that it is parsed: without it, every
        # schemaless_reader/writer call parses the schema again (about half of their cost).
        self.parsed = parse_schema(self.raw)
        name, namespace = str(self.raw["name"]), self.raw.get("namespace")
        self.name: str = f"{namespace}.{name}" if namespace and "." not in name else name
        canonical = to_parsing_canonical_form(self.raw)
        # fastavro's hex is already the spec's little-endian byte order.
        self.fingerprint: bytes = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


class AvroCodec:
    """Encodes and decodes every schema version kept in one or more folders."""

    def __init__(self, *schema_dirs: Path) -> None:
        self.by_fingerprint: dict[bytes, SchemaVersion] = {}
        self.by_name: dict[str, list[SchemaVersion]] = {}
        for folder in schema_dirs or (SCHEMA_DIR,):
            for path in sorted(folder.glob("*.avsc")):
                m = _FILE_NAME.match(path.name)
                if not m:
                    raise CodecError(f"{path}: schema files are named <name>.v<N>.avsc")
                self.add(SchemaVersion(path, int(m.group("version"))))

    def add(self, schema: SchemaVersion) -> None:
        self.by_fingerprint[schema.fingerprint] = schema
        versions = self.by_name.setdefault(schema.name, [])
        versions.append(schema)
        versions.sort(key=lambda s: s.version)

    def schema(self, name: str, version: int | None = None) -> SchemaVersion:
        """The named record's schema: the newest version unless one is asked for."""
        try:
            versions = self.by_name[name if "." in name else f"io.telemetry.{name}"]
        except KeyError:
            raise CodecError(f"no schema named {name!r}; known: {sorted(self.by_name)}") from None
        if version is None:
            return versions[-1]
        for s in versions:
            if s.version == version:
                return s
        raise CodecError(f"{name} has no version {version}")

    def encode(self, name: str, record: dict[str, Any], version: int | None = None) -> bytes:
        schema = self.schema(name, version)
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        schemaless_writer(buf, schema.parsed, record)
        return buf.getvalue()

    def writer_of(self, data: bytes) -> SchemaVersion:
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise CodecError("not Avro single-object encoding (no C3 01 marker)")
        fp = data[2:HEADER_LEN]
        try:
            return self.by_fingerprint[fp]
        except KeyError:
            raise CodecError(
                f"unknown writer schema fingerprint {struct.unpack('<Q', fp)[0]:#018x}: "
                "add its .avsc to schemas/"
            ) from None

    def decode(
        self, data: bytes, reader: str | None = None, reader_version: int | None = None
    ) -> dict[str, Any]:
        """Reads with the writer's schema, resolved into the reader schema.

        The reader defaults to the newest version of the writer's own record name; a record
        of another name (a DeadLetter where an EnrichedReading belongs) is a CodecError.
        """
        writer = self.writer_of(data)
        target = self.schema(reader or writer.name, reader_version)
        if target.name != writer.name:
            raise CodecError(f"it is a {writer.name} record, not a {target.name}")
        try:
            record = schemaless_reader(
                io.BytesIO(data[HEADER_LEN:]),
                writer.parsed,
                None if target is writer else target.parsed,
            )
        except Exception as exc:  # fastavro raises many kinds on corrupt bodies
            raise CodecError(f"corrupt {writer.name} v{writer.version} body: {exc}") from exc
        if not isinstance(record, dict):
            raise CodecError(f"{writer.name} did not decode to a record")
        return record


@lru_cache(maxsize=1)
def default_codec() -> AvroCodec:
    """The codec over the schemas shipped in this package."""
    return AvroCodec()
