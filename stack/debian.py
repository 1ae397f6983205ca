"""Installs Debian packages the stack needs, once, when their binary is missing."""

from __future__ import annotations

import os
import shutil

from stack.builds import run_step
from stack.processes import StackError
from stack.settings import StackSettings


def installed_binary(binary: str) -> str | None:
    """The binary's path, or None when it is not installed (never installs anything)."""
    return shutil.which(binary) or (
        f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None
    )


def ensure_debian_packages(binary: str, packages: list[str], settings: StackSettings) -> str:
    """Returns the binary's path, running `apt-get install` first if it is missing."""
    path = installed_binary(binary)
    if path:
        return path
    if shutil.which("apt-get") is None:
        raise StackError(f"{binary} is missing and there is no apt-get: install {packages}.")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log = settings.logs_dir / "apt.log"
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run_step("apt-get update", [*prefix, "apt-get", "update", "-q"], log, env=env)
    run_step(
        f"apt-get install {' '.join(packages)}",
        [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        log,
        env=env,
    )
    path = installed_binary(binary)
    if not path:
        raise StackError(f"apt-get installed {packages} but {binary} is still not found")
    return path
