"""Local credentials, generated once per stack directory and kept in a 0600 JSON file."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


def _password() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class Credentials:
    """One MQTT user per role (stack/mqtt_access.py says what each may do), and InfluxDB's."""

    #: ingest and Telegraf: subscribe to device telemetry (shared) and metadata, never publish
    mqtt_ingest_username: str
    mqtt_ingest_password: str
    #: the simulated fleet and `dlq replay`: publish for any device, never subscribe
    mqtt_fleet_username: str
    mqtt_fleet_password: str
    #: the dynamic-security admin: provisions device users at runtime ($CONTROL only)
    mqtt_admin_username: str
    mqtt_admin_password: str
    influxdb_org: str
    influxdb_bucket: str
    influxdb_token: str
    influxdb_username: str
    influxdb_password: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            mqtt_ingest_username="ingest",
            mqtt_ingest_password=_password(),
            mqtt_fleet_username="fleet",
            mqtt_fleet_password=_password(),
            mqtt_admin_username="admin",
            mqtt_admin_password=_password(),
            influxdb_org="telemetry",
            influxdb_bucket="telemetry",
            influxdb_token=secrets.token_urlsafe(32),
            influxdb_username="admin",
            influxdb_password=_password(),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """The stack's credentials; a file from an older stack gains the fields it lacks
        (new MQTT users) and loses the ones no longer used, keeping InfluxDB's as they are."""
        fresh = asdict(cls.generate())
        stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        names = {f.name for f in fields(cls)}
        merged = {k: stored.get(k, fresh[k]) for k in names}
        creds = cls(**merged)
        if stored != merged:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # O_CREAT sets the mode of a new file only
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(creds), f, indent=2)
        return creds

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
