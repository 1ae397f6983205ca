"""Creates the pipeline's missing Kafka topics and checks the existing ones (idempotent).

Run by the chart's topics Job as `python -c`. Reads TELEMETRY_KAFKA_* connection env vars and
TOPICS_SPEC, a JSON list of {"name", "partitions", "replicationFactor", "config"}. Exits 1 when
a topic could not be created, or when an existing topic has another partition count or is not
compacted where it must be: those need a person, not a silent retry.
"""

import json
import os
import sys

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

conf = {
    "bootstrap.servers": os.environ["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"],
    "security.protocol": os.environ.get("TELEMETRY_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
}
if os.environ.get("TELEMETRY_KAFKA_SASL_MECHANISM"):
    conf["sasl.mechanism"] = os.environ["TELEMETRY_KAFKA_SASL_MECHANISM"]
    conf["sasl.username"] = os.environ.get("TELEMETRY_KAFKA_SASL_USERNAME", "")
    conf["sasl.password"] = os.environ.get("TELEMETRY_KAFKA_SASL_PASSWORD", "")
spec = json.loads(os.environ["TOPICS_SPEC"])
admin = AdminClient(conf)
existing = admin.list_topics(timeout=60).topics
problems = []

wanted = [
    NewTopic(
        t["name"],
        num_partitions=int(t["partitions"]),
        replication_factor=int(t["replicationFactor"]),
        config={k: str(v) for k, v in t.get("config", {}).items()},
    )
    for t in spec
    if t["name"] not in existing
]
if wanted:
    for name, future in admin.create_topics(wanted, operation_timeout=60).items():
        try:
            future.result()
            print(f"created topic {name}", flush=True)
        except Exception as exc:  # noqa: BLE001 - reported per topic, then exit 1
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                print(f"topic {name} was created meanwhile by someone else", flush=True)
            else:
                problems.append(f"{name}: could not create: {exc}")

for t in spec:
    meta = existing.get(t["name"])
    if meta is None:
        continue
    have = len(meta.partitions)
    if have != int(t["partitions"]):
        problems.append(
            f"{t['name']}: has {have} partitions, the chart wants {t['partitions']}. Set "
            f"topics.partitions to {have}, or repartition deliberately (it moves devices "
            "between partitions and breaks Faust co-partitioning until every topic matches)"
        )
    want_policy = t.get("config", {}).get("cleanup.policy")
    if want_policy:
        resource = ConfigResource(ConfigResource.Type.TOPIC, t["name"])
        configs = admin.describe_configs([resource])[resource].result(timeout=60)
        got = configs["cleanup.policy"].value if "cleanup.policy" in configs else None
        if got != want_policy:
            problems.append(
                f"{t['name']}: cleanup.policy is {got!r}, must be {want_policy!r}; fix with "
                f"kafka-configs --alter --entity-type topics --entity-name {t['name']} "
                f"--add-config cleanup.policy={want_policy}"
            )
    print(f"topic {t['name']} exists with {have} partitions", flush=True)

for problem in problems:
    print(f"ERROR {problem}", file=sys.stderr, flush=True)
sys.exit(1 if problems else 0)
