"""InfluxDB OSS 2.x: `influxd` built from its Go module, set up without a prompt."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from stack.builds import run_step, say
from stack.processes import StackError, start_process, wait_until
from stack.service import Service

MODULE = "github.com/influxdata/influxdb/v2"


class InfluxDB(Service):
    name = "influxdb"
    port_setting = "TELEMETRY_STACK_INFLUXDB_PORT"

    @property
    def port(self) -> int:
        return self.settings.stack_influxdb_port

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        """What the built binary says of itself (`influxd version`), else the pinned version."""
        if self.binary.exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [str(self.binary), "version"], capture_output=True, text=True, timeout=10
                ).stdout.split()
                if len(out) >= 2 and out[0] == "InfluxDB":
                    return out[1]
        return self.settings.stack_influxdb_version

    @property
    def build_dir(self) -> Path:
        return self.settings.stack_cache_dir / f"influxdb-{self.settings.stack_influxdb_version}"

    @property
    def binary(self) -> Path:
        return self.build_dir / "influxd"

    def install(self) -> None:
        if self.binary.exists():
            return
        if shutil.which("go") is None or shutil.which("cargo") is None:
            raise StackError("building influxd needs Go and Rust (cargo) on PATH")
        if shutil.which("pkg-config") is None:
            self._apt_pkg_config()
        self.build_dir.mkdir(parents=True, exist_ok=True)
        log = self.install_log
        env = {
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod",
            # Flux pins an old Rust toolchain that rustup cannot fetch here.
            "RUSTUP_TOOLCHAIN": "stable",
        }
        say(f"building InfluxDB {self.version} from source: the first time takes 10-25 minutes")
        run_step(
            f"downloading Go module {MODULE}@{self.version}",
            ["go", "mod", "download", "-json", f"{MODULE}@{self.version}"],
            log,
            env=env,
            cwd=self.build_dir,
        )
        module_dir = Path(
            subprocess.run(
                ["go", "list", "-m", "-f", "{{.Dir}}", f"{MODULE}@{self.version}"],
                capture_output=True,
                text=True,
                check=True,
                cwd=self.build_dir,
                env={**os.environ, **env},
            ).stdout.strip()
        )
        src = self.build_dir / "src"
        shutil.rmtree(src, ignore_errors=True)
        # The module cache is read-only, and go.mod's `replace` only applies in the main module.
        shutil.copytree(module_dir, src)
        for root, dirs, files in os.walk(src):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
        os.chmod(src, 0o755)
        pkg_config_version = _required_version(src / "go.mod", "github.com/influxdata/pkg-config")
        tools = self.build_dir / "tools"
        run_step(
            f"installing influxdata pkg-config wrapper {pkg_config_version}",
            ["go", "install", f"github.com/influxdata/pkg-config@{pkg_config_version}"],
            log,
            env={**env, "GOBIN": str(tools)},
            cwd=src,
        )
        build_env = {**env, "PATH": f"{tools}:{os.environ['PATH']}"}
        argv = [
            "go",
            "build",
            "-v",  # names each package as it compiles: the progress lines show where it is
            "-o",
            str(self.build_dir / "influxd.tmp"),
            f"-ldflags=-X main.version={self.settings.stack_influxdb_version.lstrip('v')}",
            "./cmd/influxd",
        ]
        try:
            run_step(
                "compiling influxd with Flux (Go + Rust via cargo)",
                argv,
                log,
                env=build_env,
                cwd=src,
            )
        except StackError:
            say("retrying with RUSTFLAGS=--cap-lints=warn (newer rustc rejects Flux's warnings)")
            run_step(
                "compiling influxd with Flux, lints capped",
                argv,
                log,
                env={**build_env, "RUSTFLAGS": "--cap-lints=warn"},
                cwd=src,
            )
        (self.build_dir / "influxd.tmp").rename(self.binary)
        shutil.rmtree(src, ignore_errors=True)

    def _apt_pkg_config(self) -> None:
        from stack.debian import ensure_debian_packages

        ensure_debian_packages("pkg-config", ["pkg-config"], self.settings)

    def launch(self) -> None:
        data = self.run_dir
        start_process(
            [
                str(self.binary),
                f"--bolt-path={data / 'influxd.bolt'}",
                f"--engine-path={data / 'engine'}",
                f"--sqlite-path={data / 'influxd.sqlite'}",
                f"--http-bind-address=127.0.0.1:{self.port}",
                "--reporting-disabled",
                "--log-level=warn",
            ],
            self.pid_file,
            self.log_file,
        )

    def is_ready(self) -> bool:
        return bool(self._get("/health").get("status") == "pass")

    def wait_ready(self) -> None:
        wait_until(self.is_ready, 60, "influxdb", self.pid_file, self.log_file)

    def after_ready(self) -> None:
        if not self._get("/api/v2/setup").get("allowed"):
            return
        c = self.creds
        self._post(
            "/api/v2/setup",
            {
                "username": c.influxdb_username,
                "password": c.influxdb_password,
                "org": c.influxdb_org,
                "bucket": c.influxdb_bucket,
                "token": c.influxdb_token,
                "retentionPeriodSeconds": 0,
            },
        )
        say(f"InfluxDB set up: org {c.influxdb_org}, bucket {c.influxdb_bucket}")

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.address + path, timeout=3) as resp:
            return dict(json.load(resp))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.address + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as exc:
            raise StackError(f"InfluxDB {path} answered {exc.code}: {exc.read()!r}") from exc


def _required_version(go_mod: Path, module: str) -> str:
    for line in go_mod.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module:
            return parts[1]
    raise StackError(f"{module} not found in {go_mod}")
