"""Local credentials, generated once per stack directory and kept in a 0600 JSON file."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Credentials:
    mqtt_username: str
    mqtt_password: str
    influxdb_org: str
    influxdb_bucket: str
    influxdb_token: str
    influxdb_username: str
    influxdb_password: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        creds = cls(
            mqtt_username="telemetry",
            mqtt_password=secrets.token_urlsafe(18),
            influxdb_org="telemetry",
            influxdb_bucket="telemetry",
            influxdb_token=secrets.token_urlsafe(32),
            influxdb_username="admin",
            influxdb_password=secrets.token_urlsafe(18),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(creds), f, indent=2)
        return creds

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
