"""values.schema.json and the ci/*-values.yaml files, checked by the real helm binary.

The schema refuses typos (unknown keys) and wrong types before any template runs, with a
message naming the offending path; every values file in ci/ (what chart-testing would install)
lints and renders.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.helm import CHART, lint, of_kind, render, require_helm, run_helm

CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
#: What each ci file is there to switch on.
CI_EXPECTS = {
    "default-values.yaml": set(),
    "hpa-on-values.yaml": {"HorizontalPodAutoscaler"},
    "keda-on-values.yaml": {"ScaledObject", "HorizontalPodAutoscaler"},
    "networkpolicy-on-values.yaml": {"NetworkPolicy"},
    "everything-on-values.yaml": {"HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor"},
}
OPTIONAL_KINDS = {"HorizontalPodAutoscaler", "ScaledObject", "NetworkPolicy", "ServiceMonitor"}

#: Bad values -> (the path the schema names, what it says), as helm 3.18+ words it.
BAD_VALUES = {
    "typo-top-level": ({"ingress": {"enabled": True}}, "at '': additional properties 'ingress'"),
    "typo-in-component": ({"ingest": {"replica": 3}}, "at '/ingest': additional properties"),
    "typo-in-autoscaling": (
        {"sinks": {"influxdb": {"autoscaling": {"maxReplica": 3}}}},
        "at '/sinks/influxdb/autoscaling': additional properties 'maxReplica'",
    ),
    "port-as-string": ({"mqtt": {"port": "1883x"}}, "at '/mqtt/port': got string, want integer"),
    "bool-as-string": (
        {"networkPolicy": {"enabled": "yes"}},
        "at '/networkPolicy/enabled': got string, want boolean",
    ),
    "unknown-protocol": ({"kafka": {"securityProtocol": "TLS"}}, "at '/kafka/securityProtocol'"),
    "replicas-negative": ({"processors": {"replicas": -1}}, "at '/processors/replicas'"),
    "topic-without-name": (
        {"topics": {"list": [{"partitions": 6}]}},
        "at '/topics/list/0': missing property 'name'",
    ),
}


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def test_ci_files_are_the_expected_ones() -> None:
    assert {p.name for p in CI_FILES} == set(CI_EXPECTS)


@pytest.mark.parametrize("values", CI_FILES, ids=lambda p: p.name)
def test_ci_values_lint_and_render(helm: str, values: Path) -> None:
    proc = lint(helm, "-f", str(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = {d["kind"] for d in render(helm, "-f", str(values))}
    assert kinds & OPTIONAL_KINDS == CI_EXPECTS[values.name]
    assert {"ConfigMap", "Service"} <= kinds


def test_schema_is_valid_json_and_strict_at_the_top() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    # Every top-level value is described, and nothing the schema names is missing from values.
    assert set(schema["properties"]) - {"global"} == set(defaults)


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_refuses_bad_values_in_lint_and_template(
    helm: str, case: str, tmp_path: Path
) -> None:
    values, message = BAD_VALUES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = lint(helm, "-f", str(path))
    assert proc.returncode != 0, f"helm lint accepted {values}"
    assert message in proc.stdout + proc.stderr
    proc = run_helm(helm, "template", "rel", str(CHART), "-f", str(path))
    assert proc.returncode != 0, f"helm template accepted {values}"
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr


def test_schema_accepts_what_the_readme_install_shows(helm: str, tmp_path: Path) -> None:
    # helm/README.md, "Install", step 3.
    values = {
        "image": {"repository": "registry.example.com/telemetry-pipeline", "tag": "0.1.0"},
        "kafka": {
            "bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092",
            "securityProtocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "telemetry"},
        },
        "mqtt": {"host": "emqx.mqtt.svc", "username": "telemetry"},
        "influxdb": {"url": "http://influxdb.monitoring.svc:8086", "org": "telemetry"},
        "secrets": {"existingSecret": "telemetry-credentials"},
        "topics": {"replicationFactor": 3},
        "metrics": {
            "podAnnotations": False,
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        },
    }
    path = tmp_path / "my-values.yaml"
    path.write_text(yaml.safe_dump(values))
    assert of_kind(render(helm, "-f", str(path)), "ServiceMonitor")
