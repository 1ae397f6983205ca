"""Telegraf, an optional server of the stack: the peer `telemetry benchmark --compare telegraf`
measures our pipeline against, on the same Mosquitto and InfluxDB.

Built from its Go module as a custom build holding only the plugins the comparison needs
(Telegraf's go.mod has no `replace`, so `go install module@version` works), cached in the
stack's cache dir like `influxd`. It writes into a bucket of its own, created before it starts.
Never started by plain `stack up`: only by `stack up --with telegraf` or the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from stack.builds import run_step, say
from stack.mosquitto import connack_code, open_persistent_session
from stack.processes import StackError, start_process, wait_until
from stack.service import Service
from stack.telegraf_config import (
    ENV_INFLUXDB_TOKEN,
    ENV_MQTT_PASSWORD,
    TELEMETRY_TOPIC,
    TelegrafConfig,
    render,
)

MODULE = "github.com/influxdata/telegraf"
#: only the plugins the comparison uses (`custom` leaves every other plugin out)
BUILD_TAGS = "custom,inputs.mqtt_consumer,outputs.influxdb_v2,parsers.json_v2,inputs.internal"
READY_LINE = "[inputs.mqtt_consumer] Connected"


class Telegraf(Service):
    name = "telegraf"
    port_setting = ""

    @property
    def port(self) -> int:
        """Telegraf listens on no port: it is a client of Mosquitto and InfluxDB."""
        return 0

    def ports(self) -> dict[int, str]:
        return {}

    @property
    def address(self) -> str:
        return f"mqtt:{self.settings.stack_mqtt_port} -> {self.bucket}"

    @property
    def bucket(self) -> str:
        return self.settings.stack_telegraf_bucket

    @property
    def build_dir(self) -> Path:
        return self.settings.stack_cache_dir / f"telegraf-{self.settings.stack_telegraf_version}"

    @property
    def binary(self) -> Path:
        return self.build_dir / "bin" / "telegraf"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "telegraf.conf"

    @property
    def version(self) -> str:
        """What the built binary says of itself (`telegraf version`), else the pinned one."""
        if self.binary.exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [str(self.binary), "version"], capture_output=True, text=True, timeout=10
                ).stdout.split()
                if len(out) >= 2 and out[0] == "Telegraf":
                    return out[1]
            return "unknown"
        return "not installed"

    def install(self) -> None:
        if self.binary.exists():
            return
        if shutil.which("go") is None:
            raise StackError("building Telegraf needs Go on PATH (https://go.dev/dl/)")
        version = self.settings.stack_telegraf_version
        say(f"building Telegraf {version} from source: the first time takes about 2 minutes")
        self.build_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.build_dir / "bin.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run_step(
            f"compiling telegraf {version} (plugins: {BUILD_TAGS.removeprefix('custom,')})",
            [
                "nice", "-n", "10",
                "go", "install", "-v", "-tags", BUILD_TAGS,
                "-ldflags", f"-X {MODULE}/internal.Version={version}",
                f"{MODULE}/cmd/telegraf@v{version}",
            ],
            self.install_log,
            env={"GOTOOLCHAIN": "local", "GOBIN": str(tmp)},
            cwd=self.build_dir,
        )  # fmt: skip
        tmp.rename(self.binary.parent)

    def telegraf_config(self) -> TelegrafConfig:
        return TelegrafConfig(
            mqtt_url=f"tcp://127.0.0.1:{self.settings.stack_mqtt_port}",
            mqtt_username=self.creds.mqtt_ingest_username,
            client_id=self.settings.stack_telegraf_client_id,
            influxdb_url=f"http://127.0.0.1:{self.settings.stack_influxdb_port}",
            influxdb_org=self.creds.influxdb_org,
            bucket=self.bucket,
            metric_batch_size=self.settings.stack_telegraf_batch_size,
            max_undelivered_messages=self.settings.stack_telegraf_batch_size,
            flush_interval_s=self.settings.stack_telegraf_flush_interval_s,
        )

    def launch(self) -> None:
        self.ensure_bucket()
        self.config_file.write_text(render(self.telegraf_config()))
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        start_process(
            [str(self.binary), "--config", str(self.config_file), "--strict-env-handling"],
            self.pid_file,
            self.log_file,
            env={
                ENV_MQTT_PASSWORD: self.creds.mqtt_ingest_password,
                ENV_INFLUXDB_TOKEN: self.creds.influxdb_token,
            },
        )

    def is_ready(self) -> bool:
        """Connected to Mosquitto since this start. Telegraf logs that before it subscribes;
        only on a session that already holds its subscription (`open_fresh_session`) does it
        receive everything published from then on."""
        if self.pid() is None or not self.log_file.exists():
            return False
        with open(self.log_file, "rb") as f:
            f.seek(getattr(self, "_log_offset", 0))
            return READY_LINE.encode() in f.read()

    def wait_ready(self) -> None:
        wait_until(self.is_ready, 60, "telegraf", self.pid_file, self.log_file)

    def forget_session(self) -> None:
        """Ends Telegraf's persistent MQTT session (Telegraf stopped), so Mosquitto does not
        queue telemetry for it until it comes back: a benchmark starts it on no backlog."""
        code = connack_code(
            self.settings.stack_mqtt_port,
            self.creds.mqtt_ingest_username,
            self.creds.mqtt_ingest_password,
            client_id=self.settings.stack_telegraf_client_id,
        )
        if code != 0:
            raise StackError(f"Mosquitto refused to end Telegraf's session (CONNACK {code})")

    def open_fresh_session(self) -> None:
        """Ends Telegraf's session (Telegraf stopped) and leaves a new one, empty, already
        subscribed as its config subscribes: started on it, Telegraf finds the session and
        gets every message from its CONNACK on, before the line `is_ready` waits for. On a
        session of its own making it would subscribe only after that line, and what was
        published in between would never reach it."""
        self.forget_session()
        if not open_persistent_session(
            self.settings.stack_mqtt_port,
            self.creds.mqtt_ingest_username,
            self.creds.mqtt_ingest_password,
            client_id=self.settings.stack_telegraf_client_id,
            topic=TELEMETRY_TOPIC,
            qos=1,
        ):
            raise StackError(f"Mosquitto did not take Telegraf's subscription to {TELEMETRY_TOPIC}")

    def ensure_bucket(self) -> None:
        """Creates the bucket (no retention) in the stack's org unless it exists."""
        org = self.creds.influxdb_org
        query = urllib.parse.urlencode({"org": org, "name": self.bucket})
        try:
            if self._api("GET", f"/api/v2/buckets?{query}").get("buckets"):
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # InfluxDB 2.x answers 404 for a name it does not hold
                raise
        orgs = self._api("GET", "/api/v2/orgs?" + urllib.parse.urlencode({"org": org}))
        org_id = orgs["orgs"][0]["id"]
        try:
            self._api(
                "POST",
                "/api/v2/buckets",
                {"orgID": org_id, "name": self.bucket, "retentionRules": []},
            )
        except urllib.error.HTTPError as exc:
            raise StackError(f"InfluxDB refused bucket {self.bucket}: {exc.read()!r}") from exc
        say(f"InfluxDB bucket {self.bucket} created for Telegraf")

    def _api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.settings.stack_influxdb_port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Token {self.creds.influxdb_token}",
                "Content-Type": "application/json",
            },
            method=method,
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return dict(json.load(resp))
