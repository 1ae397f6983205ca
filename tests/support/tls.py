"""A throwaway certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1
and a client certificate, made with the openssl command line (EC keys: fast)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  #: a CA that signed none of these


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(folder: Path, name: str, subject: str, ca: str, extensions: str | None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=folder)
    extra = []
    if extensions:
        (folder / f"{name}.ext").write_text(extensions)
        extra = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra, cwd=folder)


def _authority(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN={name}", cwd=folder)


def make_certificates(folder: Path) -> Certificates:
    """Skips the test, saying why, where there is no openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: it makes the test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    _authority(folder, "test-ca")
    _authority(folder, "other-ca")
    _signed(folder, "server", "/CN=127.0.0.1", "test-ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed(folder, "client", "/CN=telemetry-ingest", "test-ca", None)
    return Certificates(folder / "test-ca.crt", folder / "server.crt", folder / "server.key",
                        folder / "client.crt", folder / "client.key", folder / "other-ca.crt")
