"""Runs the real helm binary on the chart: `helm template` and `helm lint`, as a cluster's
tooling would. Shared by the chart tests; without helm they skip and say why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "telemetry-pipeline"
#: A helm built from source reports Kubernetes 1.20, below the chart's kubeVersion.
KUBE_VERSION = "1.30.0"

Manifest = dict[str, Any]


def find_helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    home = Path.home()
    for candidate in (home / "go" / "bin" / "helm", home / ".cache" / "helm" / "bin" / "helm"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_helm() -> str:
    """The helm binary, or a skip that says where it was looked for and how to get it."""
    path = find_helm()
    if path is None:
        pytest.skip(
            "helm binary not found on PATH, in ~/go/bin or in ~/.cache/helm/bin, so the chart "
            "cannot be rendered here; install it with helm/install-helm.sh (needs Go)"
        )
    return path


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args, "--kube-version", KUBE_VERSION],
        capture_output=True,
        text=True,
        timeout=120,
    )


def render(helm: str, *args: str) -> list[Manifest]:
    """`helm template` with extra arguments, as parsed manifests."""
    proc = run_helm(helm, "template", "rel", str(CHART), *args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render_error(helm: str, *args: str) -> str:
    proc = run_helm(helm, "template", "rel", str(CHART), *args)
    assert proc.returncode != 0, "helm template was expected to refuse these values"
    return proc.stderr


def lint(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`helm lint --strict` with extra arguments (values files, --set)."""
    return run_helm(helm, "lint", str(CHART), "--strict", *args)


def of_kind(docs: list[Manifest], *kinds: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] in kinds]


def by_component(docs: list[Manifest], *kinds: str) -> dict[str, Manifest]:
    """Manifests of the given kinds by component label."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind(docs, *kinds)
    }


def workloads(docs: list[Manifest]) -> dict[str, Manifest]:
    """Deployments and StatefulSets by component label."""
    return by_component(docs, "Deployment", "StatefulSet")


def container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(c: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in c.get("env", [])}
