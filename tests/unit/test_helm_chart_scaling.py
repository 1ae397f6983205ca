"""Autoscaling and replica limits of the chart, rendered by a real `helm template`.

HPAs (autoscaling/v2) for ingest and the sinks, KEDA ScaledObjects for the sinks, and the
processors' replica count held to the partition count of telemetry.raw.
"""

from __future__ import annotations

import pytest

from tests.support.helm import by_component, of_kind, render, render_error, require_helm, workloads


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def test_no_autoscaler_by_default_and_replicas_stay_in_the_workloads(helm: str) -> None:
    docs = render(helm, "--set", "sinks.tdengine.enabled=true")
    assert of_kind(docs, "HorizontalPodAutoscaler", "ScaledObject") == []
    replicas = {name: w["spec"]["replicas"] for name, w in workloads(docs).items()}
    assert replicas == {"ingest": 2, "processors": 2, "sink-influxdb": 2, "sink-tdengine": 1}


def test_hpas_for_ingest_and_each_sink_on_cpu(helm: str) -> None:
    docs = render(
        helm,
        "--set", "sinks.tdengine.enabled=true",
        "--set", "ingest.autoscaling.enabled=true",
        "--set", "ingest.autoscaling.maxReplicas=4",
        "--set", "sinks.influxdb.autoscaling.enabled=true",
        "--set", "sinks.influxdb.autoscaling.targetCPUUtilizationPercentage=60",
        "--set", "sinks.tdengine.autoscaling.enabled=true",
    )  # fmt: skip
    hpas = by_component(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"ingest", "sink-influxdb", "sink-tdengine"}
    found = workloads(docs)
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2", name
        target = hpa["spec"]["scaleTargetRef"]
        assert target == {
            "apiVersion": "apps/v1",
            "kind": found[name]["kind"],
            "name": found[name]["metadata"]["name"],
        }, name
        # The HPA owns the count: a rendered `replicas` would reset it on every upgrade.
        assert "replicas" not in found[name]["spec"], name
    assert hpas["ingest"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert hpas["ingest"]["spec"]["maxReplicas"] == 4
    (metric,) = hpas["sink-influxdb"]["spec"]["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
    }
    assert found["processors"]["spec"]["replicas"] == 2, "processors are never autoscaled"


def test_hpa_follows_ingest_kind_and_behavior(helm: str) -> None:
    docs = render(
        helm,
        "--set", "ingest.kind=Deployment",
        "--set", "ingest.autoscaling.enabled=true",
        "--set", "ingest.autoscaling.behavior.scaleDown.stabilizationWindowSeconds=600",
    )  # fmt: skip
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}


def test_min_above_max_is_refused(helm: str) -> None:
    err = render_error(
        helm,
        "--set", "sinks.influxdb.autoscaling.enabled=true",
        "--set", "sinks.influxdb.autoscaling.minReplicas=5",
        "--set", "sinks.influxdb.autoscaling.maxReplicas=3",
    )  # fmt: skip
    assert "minReplicas (5) is above maxReplicas (3)" in err


def test_keda_scaled_objects_replace_the_sinks_hpas(helm: str) -> None:
    docs = render(
        helm,
        "--set", "keda.enabled=true",
        "--set", "keda.authenticationRef=kafka-sasl",
        "--set", "kafka.bootstrapServers=k1:9092\\,k2:9092",
        "--set", "ingest.autoscaling.enabled=true",
        "--set", "sinks.influxdb.autoscaling.enabled=true",
        "--set", "sinks.influxdb.autoscaling.lag.lagThreshold=5000",
        "--set", "sinks.tdengine.enabled=true",
        "--set", "sinks.tdengine.autoscaling.enabled=true",
        "--set", "extraConfig.TELEMETRY_SINK_TDENGINE_GROUP_ID=taos-group",
    )  # fmt: skip
    # Ingest reads MQTT, not Kafka: it keeps its CPU HPA; KEDA makes the sinks' HPAs itself.
    assert set(by_component(docs, "HorizontalPodAutoscaler")) == {"ingest"}
    scaled = by_component(docs, "ScaledObject")
    assert set(scaled) == {"sink-influxdb", "sink-tdengine"}
    found = workloads(docs)
    for name, so in scaled.items():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        assert so["spec"]["scaleTargetRef"]["name"] == found[name]["metadata"]["name"]
        assert "replicas" not in found[name]["spec"], name
    influx = scaled["sink-influxdb"]["spec"]
    assert (influx["minReplicaCount"], influx["maxReplicaCount"]) == (2, 6)
    cpu, kafka = influx["triggers"]
    assert cpu == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "75"}}
    assert kafka["type"] == "kafka"
    assert kafka["authenticationRef"] == {"name": "kafka-sasl"}
    assert kafka["metadata"] == {
        "bootstrapServers": "k1:9092,k2:9092",
        "consumerGroup": "telemetry-sink-influxdb",
        "topic": "telemetry.enriched",
        "lagThreshold": "5000",
        "offsetResetPolicy": "earliest",
    }
    taos_kafka = scaled["sink-tdengine"]["spec"]["triggers"][1]
    assert taos_kafka["metadata"]["consumerGroup"] == "taos-group"


def test_keda_without_lag_scales_on_cpu_only(helm: str) -> None:
    docs = render(
        helm,
        "--set", "keda.enabled=true",
        "--set", "sinks.influxdb.autoscaling.enabled=true",
        "--set", "sinks.influxdb.autoscaling.lag.enabled=false",
    )  # fmt: skip
    (so,) = of_kind(docs, "ScaledObject")
    assert [t["type"] for t in so["spec"]["triggers"]] == ["cpu"]
    assert "authenticationRef" not in so["spec"]["triggers"][0]


def test_processors_replicas_above_the_raw_partitions_are_refused(helm: str) -> None:
    err = render_error(helm, "--set", "processors.replicas=7")
    assert "processors.replicas (7) is above the partition count of telemetry.raw (6)" in err
    assert "1 worker(s) would sit idle" in err
    assert workloads(render(helm, "--set", "processors.replicas=6"))["processors"]["spec"][
        "replicas"
    ] == 6
    raised = render(helm, "--set", "processors.replicas=12", "--set", "topics.partitions=12")
    assert workloads(raised)["processors"]["spec"]["replicas"] == 12


def test_the_raw_topics_own_partition_count_is_the_limit(helm: str) -> None:
    args = ["--set", "topics.list[0].name=telemetry.raw", "--set", "topics.list[0].partitions=3"]
    err = render_error(helm, *args, "--set", "processors.replicas=4")
    assert "partition count of telemetry.raw (3)" in err
