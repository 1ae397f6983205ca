"""The chart's NetworkPolicies, rendered by a real `helm template`: off by default; when on,
ingress to the health port from the monitoring peers only and egress to the configured
backends only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.helm import by_component, of_kind, render, require_helm, workloads

DNS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
KUBE_DNS = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"port": p, "protocol": "TCP"} for p in ports]


def test_off_by_default(helm: str) -> None:
    assert of_kind(render(helm, "--set", "sinks.tdengine.enabled=true"), "NetworkPolicy") == []


def test_on_one_policy_per_component_with_its_backends(helm: str) -> None:
    docs = render(
        helm,
        "--set", "networkPolicy.enabled=true",
        "--set", "sinks.tdengine.enabled=true",
        "--set", "kafka.bootstrapServers=k-0.kafka:9093\\,k-1.kafka:9093\\,k-2.kafka:9094",
        "--set", "mqtt.port=8883",
        "--set", "influxdb.url=https://influx.example.com/",
        "--set", "tdengine.url=http://taos:6041",
    )  # fmt: skip
    policies = by_component(docs, "NetworkPolicy")
    found = workloads(docs)
    assert set(policies) == set(found) == {"ingest", "processors", "sink-influxdb", "sink-tdengine"}
    kafka = {"ports": tcp(9093, 9094)}
    backends = {
        "ingest": [kafka, {"ports": tcp(8883)}],
        "processors": [kafka],
        "sink-influxdb": [kafka, {"ports": tcp(443)}],
        "sink-tdengine": [kafka, {"ports": tcp(6041)}],
    }
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["podSelector"] == found[name]["spec"]["selector"], name
        assert spec["policyTypes"] == ["Ingress", "Egress"], name
        assert spec["ingress"] == [
            {"ports": [{"port": "health", "protocol": "TCP"}], "from": MONITORING}
        ], name
        assert spec["egress"] == [{"ports": DNS, "to": KUBE_DNS}, *backends[name]], name
    # The named port the ingress rule allows is the one /metrics is served on.
    ports = found["ingest"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"name": "health", "containerPort": 9101, "protocol": "TCP"}]


def test_peers_ports_and_extra_rules_from_values(helm: str) -> None:
    docs = render(
        helm,
        "--set", "networkPolicy.enabled=true",
        "--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=obs",
        "--set", "networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prometheus",
        "--set", "networkPolicy.egress.dns.enabled=false",
        "--set", "networkPolicy.egress.kafka.ports={9095,9096}",
        "--set", "networkPolicy.egress.kafka.to[0].namespaceSelector.matchLabels.name=kafka",
        "--set", "networkPolicy.egress.extra[0].ports[0].port=4317",
        "--set", "ingest.enabled=false",
        "--set", "sinks.influxdb.enabled=false",
    )  # fmt: skip
    (policy,) = of_kind(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["ingress"][0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"team": "obs"}},
            "podSelector": {"matchLabels": {"app": "prometheus"}},
        }
    ]
    kafka_ns = {"namespaceSelector": {"matchLabels": {"name": "kafka"}}}
    assert spec["egress"] == [
        {"ports": tcp(9095, 9096), "to": [kafka_ns]},
        {"ports": [{"port": 4317}]},
    ]


def test_kafka_port_defaults_to_9092_without_one(helm: str) -> None:
    docs = render(
        helm, "--set", "networkPolicy.enabled=true", "--set", "kafka.bootstrapServers=kafka"
    )
    policies = by_component(docs, "NetworkPolicy")
    assert policies["processors"]["spec"]["egress"][1] == {"ports": tcp(9092)}
