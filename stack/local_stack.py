"""The local stack as one object: install, start, stop and report every server."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from stack.builds import install_lock, say
from stack.credentials import Credentials
from stack.influxdb import InfluxDB
from stack.kafka import Kafka
from stack.mosquitto import Mosquitto
from stack.processes import StackError
from stack.prometheus import Prometheus
from stack.service import Service
from stack.settings import StackSettings
from stack.telegraf import Telegraf


class LocalStack:
    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.settings.stack_dir.mkdir(parents=True, exist_ok=True)
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.creds = Credentials.load_or_create(self.settings.stack_dir / "credentials.json")
        self.mosquitto = Mosquitto(self.settings, self.creds)
        self.kafka = Kafka(self.settings, self.creds)
        self.influxdb = InfluxDB(self.settings, self.creds)
        self.prometheus = Prometheus(self.settings, self.creds)
        self.services: list[Service] = [self.mosquitto, self.kafka, self.influxdb, self.prometheus]
        self.telegraf = Telegraf(self.settings, self.creds)
        #: started only when asked for (`up(with_optional=...)`), after the servers they use
        self.optional: dict[str, Service] = {self.telegraf.name: self.telegraf}

    def up(self, with_optional: Sequence[str] = ()) -> list[str]:
        """Installs what is missing, starts what is not running; returns what it started.

        `with_optional` names optional servers (`telegraf`) to install and start as well."""
        unknown = sorted(set(with_optional) - set(self.optional))
        if unknown:
            raise StackError(
                f"no optional server {', '.join(unknown)}; there is: {', '.join(self.optional)}"
            )
        services = self.services + [self.optional[name] for name in with_optional]
        started: list[str] = []
        t0 = time.monotonic()
        with install_lock(self.settings.stack_cache_dir):
            for svc in services:
                svc.install()
        for svc in services:
            if svc.start():
                started.append(svc.name)
                say(f"{svc.name} {svc.version} ready at {svc.address}")
            svc.after_ready()
        say(f"stack up in {time.monotonic() - t0:.0f}s")
        return started

    def install_optional(self, name: str) -> Service:
        """Builds an optional server if it is not cached yet (one installer at a time)."""
        svc = self.optional[name]
        with install_lock(self.settings.stack_cache_dir):
            svc.install()
        return svc

    def down(self, only: list[str] | None = None) -> list[str]:
        stopped = []
        for svc in reversed(self.services + list(self.optional.values())):
            if only is not None and svc.name not in only:
                continue
            if svc.stop():
                stopped.append(svc.name)
        return stopped

    def is_up(self) -> bool:
        return all(svc.pid() is not None for svc in self.services)

    def status(self, with_credentials: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stack_dir": str(self.settings.stack_dir),
            "cache_dir": str(self.settings.stack_cache_dir),
            "services": {s.name: asdict(s.status()) for s in self.services},
        }
        # optional servers are listed while they run (`stack up --with telegraf`)
        out["services"].update(
            {s.name: asdict(s.status()) for s in self.optional.values() if s.pid() is not None}
        )
        if with_credentials:
            out["credentials"] = self.creds.as_dict()
        return out

    def client_env(self) -> dict[str, str]:
        """Environment variables that point every pipeline component at this stack, each MQTT
        client with the user of its role: ingest subscribes, the simulator and `dlq replay`
        publish for the fleet (stack/mqtt_access.py)."""
        c = self.creds
        return {
            "TELEMETRY_KAFKA_BOOTSTRAP_SERVERS": self.kafka.address,
            "TELEMETRY_MQTT_HOST": "127.0.0.1",
            "TELEMETRY_MQTT_PORT": str(self.mosquitto.port),
            "TELEMETRY_MQTT_USERNAME": c.mqtt_ingest_username,
            "TELEMETRY_MQTT_PASSWORD": c.mqtt_ingest_password,
            "TELEMETRY_SIMULATE_MQTT_USERNAME": c.mqtt_fleet_username,
            "TELEMETRY_SIMULATE_MQTT_PASSWORD": c.mqtt_fleet_password,
            "TELEMETRY_DLQ_MQTT_USERNAME": c.mqtt_fleet_username,
            "TELEMETRY_DLQ_MQTT_PASSWORD": c.mqtt_fleet_password,
            "TELEMETRY_INFLUXDB_URL": self.influxdb.address,
            "TELEMETRY_INFLUXDB_ORG": c.influxdb_org,
            "TELEMETRY_INFLUXDB_BUCKET": c.influxdb_bucket,
            "TELEMETRY_INFLUXDB_TOKEN": c.influxdb_token,
        }
