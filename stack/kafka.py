"""Apache Kafka in KRaft mode (one broker+controller node) from the jars on Maven Central."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from plumbing.topics import CONTRACT_TOPICS
from stack.builds import run_step, say
from stack.processes import StackError, start_process, wait_until
from stack.service import Service


class Kafka(Service):
    name = "kafka"
    port_setting = "TELEMETRY_STACK_KAFKA_PORT"

    @property
    def port(self) -> int:
        return self.settings.stack_kafka_port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        return self.settings.stack_kafka_version

    def extra_ports(self) -> dict[int, str]:
        return {self.settings.stack_kafka_controller_port: "TELEMETRY_STACK_KAFKA_CONTROLLER_PORT"}

    @property
    def lib_dir(self) -> Path:
        return self.settings.stack_cache_dir / f"kafka-{self.version}" / "lib"

    def install(self) -> None:
        marker = self.lib_dir / ".complete"
        if marker.exists():
            return
        for tool in ("mvn", "java"):
            if shutil.which(tool) is None:
                raise StackError(
                    f"{tool} is not on PATH: the Kafka broker needs a JDK 17+ and Maven."
                )
        pom = resources.files("stack").joinpath("kafka-pom.xml")
        with resources.as_file(pom) as pom_path:
            run_step(
                f"resolving Apache Kafka {self.version} jars from Maven Central",
                [
                    "mvn",
                    "-B",
                    "-q",
                    "-f",
                    str(pom_path),
                    f"-Dkafka.version={self.version}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.lib_dir}",
                ],
                self.install_log,
            )
        marker.write_text(self.version)

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        log4j = resources.files("stack").joinpath("kafka-log4j2.properties")
        return [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.run_dir / 'logs'}",
            "-cp",
            f"{self.lib_dir}/*",
            main,
            *args,
        ]

    def _write_config(self) -> Path:
        s = self.settings
        conf = self.run_dir / "server.properties"
        conf.write_text(
            f"""# written by `telemetry stack up`
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{s.stack_kafka_controller_port}
listeners=PLAINTEXT://127.0.0.1:{s.stack_kafka_port},CONTROLLER://127.0.0.1:{s.stack_kafka_controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{s.stack_kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.run_dir / "data"}
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
log.segment.bytes=104857600
log.cleaner.min.compaction.lag.ms=0
"""
        )
        return conf

    def launch(self) -> None:
        conf = self._write_config()
        data = self.run_dir / "data"
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            out = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(conf)),
                capture_output=True,
                text=True,
            )
            self.install_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.install_log, "a") as log:
                log.write(out.stdout + out.stderr)
            if out.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{out.stdout}{out.stderr}")
        start_process(
            self._java("kafka.Kafka", str(conf), heap=self.settings.stack_kafka_heap),
            self.pid_file,
            self.log_file,
        )

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": 5000})

    def is_ready(self) -> bool:
        # Probe the port first: a librdkafka client on a closed port logs an error a retry.
        with socket.create_connection(("127.0.0.1", self.port), timeout=2):
            pass
        md = self.admin().list_topics(timeout=3)
        return bool(md.brokers)

    def wait_ready(self) -> None:
        wait_until(self.is_ready, 120, "kafka", self.pid_file, self.log_file)

    def after_ready(self) -> None:
        create_contract_topics(self.admin())


def create_contract_topics(admin: AdminClient) -> None:
    """Creates the contract's topics that do not exist yet (idempotent)."""
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=1, config=cfg)
        for name, (parts, cfg) in CONTRACT_TOPICS.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, fut in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            fut.result()
            say(f"created topic {name}")
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
