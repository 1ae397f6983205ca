"""The Helm chart, rendered by a real `helm template`: what a cluster would be given.

Needs the helm binary (PATH, ~/go/bin or ~/.cache/helm/bin; helm/install-helm.sh puts it
there); without it the rendering tests skip and say so. The dashboards are checked either way.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tests.support.helm import (
    CHART,
    container,
    env_of,
    lint,
    of_kind,
    render,
    render_error,
    require_helm,
    workloads,
)

DASHBOARDS = CHART / "dashboards"
HEALTH_PORTS = {"ingest": 9101, "processors": 9102, "sink-influxdb": 9103, "sink-tdengine": 9104}
#: Each component's own settings field for its port (see its settings.py), besides the generic one.
HEALTH_PORT_ENV = {
    "ingest": "TELEMETRY_INGEST_HEALTH_PORT",
    "processors": "TELEMETRY_PROCESS_HEALTH_PORT",
    "sink-influxdb": "TELEMETRY_SINK_INFLUXDB_HEALTH_PORT",
    "sink-tdengine": "TELEMETRY_SINK_TDENGINE_HEALTH_PORT",
}
CONTRACT_TOPICS = {
    "telemetry.raw",
    "telemetry.enriched",
    "telemetry.alerts",
    "telemetry.dlq",
    "devices.metadata",
}


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def test_lint_passes_strict(helm: str) -> None:
    proc = lint(helm)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_components_and_kinds(helm: str) -> None:
    found = workloads(render(helm))
    assert {name: w["kind"] for name, w in found.items()} == {
        "ingest": "StatefulSet",
        "processors": "StatefulSet",
        "sink-influxdb": "Deployment",
    }, "tdengine sink must be off by default"
    assert container(found["processors"])["args"] == ["process"]
    assert container(found["sink-influxdb"])["args"] == ["sink", "influxdb"]


def test_every_workload_probes_healthz_and_readyz_on_its_health_port(helm: str) -> None:
    docs = render(helm, "--set", "sinks.tdengine.enabled=true", "--set", "ingest.kind=Deployment")
    found = workloads(docs)
    assert set(found) == set(HEALTH_PORTS)
    for name, workload in found.items():
        c = container(workload)
        port = HEALTH_PORTS[name]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}, name
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}], name
        assert env_of(c)["TELEMETRY_HEALTH_PORT"]["value"] == str(port), name
        assert env_of(c)[HEALTH_PORT_ENV[name]]["value"] == str(port), name
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(port), name


def test_secrets_never_land_in_configmaps(helm: str) -> None:
    secrets = {
        "mqtt.password": f"mqtt-{uuid.uuid4().hex}",
        "influxdb.token": f"influx-{uuid.uuid4().hex}",
        "tdengine.password": f"taos-{uuid.uuid4().hex}",
        "kafka.sasl.password": f"sasl-{uuid.uuid4().hex}",
    }
    args = ["--set", "sinks.tdengine.enabled=true", "--set", "kafka.sasl.mechanism=SCRAM-SHA-512"]
    for key, value in secrets.items():
        args += ["--set", f"{key}={value}"]
    docs = render(helm, *args)

    for cm in of_kind(docs, "ConfigMap"):
        text = json.dumps(cm)
        for value in secrets.values():
            assert value not in text, f"{value} leaked into ConfigMap {cm['metadata']['name']}"
            assert base64.b64encode(value.encode()).decode() not in text
        if cm["metadata"]["name"].endswith("-config"):
            for key in cm["data"]:
                assert not any(w in key for w in ("PASSWORD", "TOKEN", "SECRET")), key

    stored = {
        base64.b64decode(v).decode()
        for s in of_kind(docs, "Secret")
        if not s["metadata"].get("annotations", {}).get("helm.sh/hook")
        for v in s["data"].values()
    }
    assert stored == set(secrets.values())
    for workload in workloads(docs).values():
        for e in container(workload)["env"]:
            assert "value" not in e or e["value"] not in secrets.values(), e["name"]


def test_each_component_gets_only_its_own_secrets(helm: str) -> None:
    docs = render(helm, "--set", "sinks.tdengine.enabled=true")
    secret_envs = {
        name: {e["name"] for e in container(w)["env"] if "secretKeyRef" in e.get("valueFrom", {})}
        for name, w in workloads(docs).items()
    }
    assert secret_envs == {
        "ingest": {"TELEMETRY_MQTT_PASSWORD"},
        "processors": set(),
        "sink-influxdb": {"TELEMETRY_INFLUXDB_TOKEN"},
        "sink-tdengine": {"TELEMETRY_TDENGINE_PASSWORD"},
    }


def test_existing_secret_replaces_the_chart_secret(helm: str) -> None:
    docs = render(helm, "--set", "secrets.existingSecret=prod-creds")
    assert of_kind(docs, "Secret") == []
    ingest = env_of(container(workloads(docs)["ingest"]))
    ref = ingest["TELEMETRY_MQTT_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "prod-creds"
    assert ref["key"] == "mqtt-password"


def test_configmap_carries_the_connection_settings(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "kafka.bootstrapServers=k1:9092\\,k2:9092",
        "--set",
        "extraConfig.TELEMETRY_PROCESS_TAG_ALLOW_LIST=site",
    )
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-config")]
    data = cm["data"]
    assert data["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"] == "k1:9092,k2:9092"
    assert data["TELEMETRY_LOG_FORMAT"] == "json"
    assert data["TELEMETRY_INFLUXDB_BUCKET"] == "telemetry"
    assert data["TELEMETRY_MQTT_SHARED_GROUP"] == "telemetry-ingest"
    assert data["TELEMETRY_PROCESS_TAG_ALLOW_LIST"] == "site"
    for w in workloads(docs).values():
        refs = [s["configMapRef"]["name"] for s in container(w)["envFrom"] if "configMapRef" in s]
        assert refs == [cm["metadata"]["name"]]


def test_secret_looking_extra_config_is_refused(helm: str) -> None:
    err = render_error(helm, "--set", "extraConfig.TELEMETRY_MQTT_TLS_KEY_PASSWORD=x")
    assert "looks like a secret" in err
    err = render_error(helm, "--set", "extraConfig.MQTT_HOST=x")
    assert "does not start with TELEMETRY_" in err


@pytest.mark.parametrize("kind", ["StatefulSet", "Deployment"])
def test_ingest_client_id_is_the_pod_name(helm: str, kind: str) -> None:
    docs = render(helm, "--set", f"ingest.kind={kind}", "--set", "ingest.clientIdPrefix=eu1-")
    ingest = workloads(docs)["ingest"]
    assert ingest["kind"] == kind
    env_list = container(ingest)["env"]
    names = [e["name"] for e in env_list]
    env = env_of(container(ingest))
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["TELEMETRY_MQTT_CLIENT_ID"]["value"] == "eu1-$(POD_NAME)"
    # $(VAR) only expands from variables defined earlier in the list.
    assert names.index("POD_NAME") < names.index("TELEMETRY_MQTT_CLIENT_ID")


def test_ingest_kind_is_validated(helm: str) -> None:
    assert "kind must be Deployment or StatefulSet" in render_error(
        helm, "--set", "ingest.kind=DaemonSet"
    )


def test_pods_run_non_root_with_read_only_root_and_graceful_stop(helm: str) -> None:
    docs = render(helm, "--set", "sinks.tdengine.enabled=true")
    for name, w in workloads(docs).items():
        pod = w["spec"]["template"]["spec"]
        c = container(w)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        assert pod["terminationGracePeriodSeconds"] >= 60, name
        assert pod["automountServiceAccountToken"] is False, name
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, name
        assert c["resources"]["requests"], name


def test_processors_keep_table_state_on_a_volume(helm: str) -> None:
    processors = workloads(render(helm))["processors"]
    c = container(processors)
    assert c["workingDir"] == "/var/lib/telemetry"
    assert env_of(c)["TELEMETRY_PROCESS_DATA_DIR"]["value"] == "/var/lib/telemetry/faust"
    assert {"name": "state", "mountPath": "/var/lib/telemetry"} in c["volumeMounts"]
    spec = processors["spec"]
    assert "volumeClaimTemplates" not in spec
    assert {"name": "state", "emptyDir": {}} in spec["template"]["spec"]["volumes"]

    persistent = workloads(render(helm, "--set", "processors.persistence.enabled=true"))
    (claim,) = persistent["processors"]["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    volumes = persistent["processors"]["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["tmp"]


def test_custom_agent_image_and_command(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "processors.image.repository=registry.example/my-agents",
        "--set",
        "processors.image.tag=1.2.3",
        "--set",
        "processors.command[0]=python",
        "--set",
        "processors.args={-m,my_agents}",
    )
    c = container(workloads(docs)["processors"])
    assert c["image"] == "registry.example/my-agents:1.2.3"
    assert c["command"] == ["python"]
    assert c["args"] == ["-m", "my_agents"]
    assert "command" not in container(workloads(docs)["ingest"])
    assert container(workloads(docs)["ingest"])["image"] == "telemetry-pipeline:0.1.0"


def test_pdbs_select_their_component(helm: str) -> None:
    docs = render(helm)
    pdbs = {p["metadata"]["name"]: p for p in of_kind(docs, "PodDisruptionBudget")}
    for name, w in workloads(docs).items():
        pdb = pdbs[w["metadata"]["name"]]
        assert pdb["spec"]["selector"] == w["spec"]["selector"], name
        assert pdb["spec"]["maxUnavailable"] == 1


def test_topics_job_creates_the_contract_topics(helm: str) -> None:
    (job,) = of_kind(render(helm), "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][:2] == ["python", "-c"]
    compile(c["command"][2], "create_topics", "exec")  # the inline program is valid Python
    spec = json.loads(env_of(c)["TOPICS_SPEC"]["value"])
    assert {t["name"] for t in spec} == CONTRACT_TOPICS
    assert {t["partitions"] for t in spec} == {6}
    by_name = {t["name"]: t for t in spec}
    assert by_name["devices.metadata"]["config"]["cleanup.policy"] == "compact"
    assert "cleanup.policy" not in by_name["telemetry.raw"]["config"]
    assert of_kind(render(helm, "--set", "topics.create=false"), "Job") == []


def test_topics_job_with_sasl_reads_the_password_from_a_hook_secret(helm: str) -> None:
    docs = render(
        helm, "--set", "kafka.sasl.mechanism=PLAIN", "--set", "kafka.sasl.password=pw-123"
    )
    (job,) = of_kind(docs, "Job")
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    ref = env["TELEMETRY_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    (hook_secret,) = [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == ref["name"]]
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    assert base64.b64decode(hook_secret["data"][ref["key"]]).decode() == "pw-123"


def test_service_monitor_is_optional(helm: str) -> None:
    assert of_kind(render(helm), "ServiceMonitor") == []
    docs = render(helm, "--set", "metrics.serviceMonitor.enabled=true")
    (sm,) = of_kind(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "health"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    for svc in of_kind(docs, "Service"):
        assert [p["name"] for p in svc["spec"]["ports"]] == ["health"]


def test_dashboards_configmap_for_the_grafana_sidecar(helm: str) -> None:
    (cm,) = [c for c in of_kind(render(helm), "ConfigMap") if "dashboards" in c["metadata"]["name"]]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(cm["data"]) == {p.name for p in DASHBOARDS.glob("*.json")}
    titles = {json.loads(body)["title"] for body in cm["data"].values()}
    assert titles == {"Telemetry data", "Pipeline health"}


# --- the dashboards themselves: need no helm -------------------------------------------------


def load_dashboard(name: str) -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / name).read_text()))


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        t.get("query") or t.get("expr") or ""
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    ]


def test_dashboards_are_valid_json_with_unique_uids() -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert len(files) == 2
    uids = [json.loads(f.read_text())["uid"] for f in files]
    assert len(set(uids)) == len(uids)


def test_data_dashboard_queries_the_contract_layout() -> None:
    dash = load_dashboard("telemetry-data.json")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["query"] == "influxdb"
    assert variables["bucket"]["query"] == "telemetry"
    assert "device_id" in variables and "field" in variables
    flux = queries(dash)
    assert flux, "no queries"
    for q in flux:
        assert 'from(bucket: "${bucket}")' in q
        assert 'r._measurement == "telemetry"' in q
        assert "${device_id:regex}" in q
    titles = {p["title"] for p in dash["panels"]}
    assert {"Latest values", "Readings per device", "$field"} <= titles
    (per_field,) = [p for p in dash["panels"] if p["title"] == "$field"]
    assert per_field["repeat"] == "field"


def test_health_dashboard_counts_rejects_by_stage_and_reason() -> None:
    dash = load_dashboard("pipeline-health.json")
    promql = queries(dash)
    assert any(
        "sum by (stage, reason) (rate(telemetry_rejected_total[$__rate_interval]))" in q
        for q in promql
    )
    joined = "\n".join(promql)
    for family in ("telemetry_ingest_", "telemetry_sink_", "lag"):
        assert family in joined, family
    for p in dash["panels"]:
        for t in p.get("targets", []):
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
