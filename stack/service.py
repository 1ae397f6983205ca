"""What every server in the local stack has in common."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from stack.credentials import Credentials
from stack.processes import read_pid, require_free_port, stop_process
from stack.settings import StackSettings


@dataclass
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    version: str


class Service(ABC):
    name: str
    port_setting: str

    def __init__(self, settings: StackSettings, creds: Credentials) -> None:
        self.settings = settings
        self.creds = creds

    @property
    def run_dir(self) -> Path:
        return self.settings.stack_dir / self.name

    @property
    def pid_file(self) -> Path:
        return self.settings.stack_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def install_log(self) -> Path:
        return self.settings.logs_dir / f"{self.name}-install.log"

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    @abstractmethod
    def address(self) -> str: ...

    @property
    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def install(self) -> None:
        """Installs or builds the server once; cached afterwards."""

    @abstractmethod
    def launch(self) -> None:
        """Writes config and starts the process (the port is known to be free)."""

    @abstractmethod
    def is_ready(self) -> bool:
        """True once the server answers a real client request."""

    @abstractmethod
    def wait_ready(self) -> None: ...

    def after_ready(self) -> None:  # noqa: B027 - an optional hook
        """One-time setup that needs the server up (topics, org and bucket)."""

    def extra_ports(self) -> dict[int, str]:
        return {}

    def ports(self) -> dict[int, str]:
        """Every port it listens on -> the setting that moves it (checked free at start)."""
        return {self.port: self.port_setting, **self.extra_ports()}

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def start(self) -> bool:
        """Starts unless already running; returns whether it started it."""
        if self.pid() is not None:
            return False
        for port, setting in self.ports().items():
            require_free_port(port, setting, self.name)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.launch()
        self.wait_ready()
        return True

    def stop(self) -> bool:
        return stop_process(self.pid_file)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(self.name, pid is not None, pid, self.address, self.version)
