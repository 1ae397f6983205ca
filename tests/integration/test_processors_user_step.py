"""A step from a separately installed package runs in the chain by name; an unknown name
stops the worker at start with a message saying what to fix.

The package is built and installed (pip, into a folder on the worker's PYTHONPATH) by the
test, as a user would install theirs next to this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from plumbing.topics import ENRICHED, METADATA, RAW
from processors.forwarder import HEADER_PROCESSOR
from schemas.codec import default_codec
from tests.support.components import Component, free_port
from tests.support.kafka_helpers import commit_end_offsets, end_offsets

CODEC = default_codec()
PARTITIONS = 6


USER_STEP = '''
"""A user's step: marks hot readings, rejects readings from a banned site."""
from processors.steps import Reject, StepResult
from plumbing.reasons import Reason


def make_step(context):
    limit = float(context.settings.process_max_future_seconds)  # proves it got the context

    def mark_hot(reading):
        fields = reading["fields"]
        if fields.get("temperature", 0.0) > 30.0:
            fields = {**fields, "hot": 1.0, "context_limit": limit}
        return StepResult(records=[{**reading, "fields": fields}])

    return mark_hot
'''


def build_user_package(tmp: Path) -> Path:
    """pip-installs a one-module package declaring a `telemetry.steps` entry point."""
    source = tmp / "mark-hot"
    source.mkdir()
    (source / "mark_hot.py").write_text(USER_STEP)
    (source / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61", "wheel"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mark-hot"
        version = "0.1.0"

        [project.entry-points."telemetry.steps"]
        mark_hot = "mark_hot:make_step"

        [tool.setuptools]
        py-modules = ["mark_hot"]
    """))
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(site), str(source)],
        check=True,
    )
    return site


def test_a_step_from_another_package_runs_in_the_chain_by_name(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    site = build_user_package(tmp_path)
    bootstrap = stack_env["TELEMETRY_KAFKA_BOOTSTRAP_SERVERS"]
    app_id = f"it-user-step-{uuid.uuid4().hex[:10]}"
    commit_end_offsets(bootstrap, app_id, [RAW, METADATA])
    port = free_port()
    worker = Component(
        ["process"],
        {
            **stack_env,
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "TELEMETRY_PROCESS_APP_ID": app_id,
            "TELEMETRY_PROCESS_STEPS": "validate,normalize,mark_hot,enrich,dew_point",
            "TELEMETRY_PROCESS_HEALTH_PORT": str(port),
            "TELEMETRY_PROCESS_DATA_DIR": str(tmp_path / "faust-data"),
        },
        tmp_path / "logs",
        health_port=port,
    ).start(ready_timeout=120)
    try:
        hot, cold = f"it-hot-{uuid.uuid4().hex[:8]}", f"it-cold-{uuid.uuid4().hex[:8]}"
        reader = end_reader(bootstrap, ENRICHED)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for device, degf in ((hot, 100.0), (cold, 50.0)):
            producer.produce(RAW, key=device.encode(), value=raw(device, degf))
        assert producer.flush(30) == 0

        got: dict[str, dict[str, float]] = {}
        deadline = time.monotonic() + 120
        while len(got) < 2 and time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None or msg.error() or msg.key() not in (hot.encode(), cold.encode()):
                continue
            if dict(msg.headers() or []).get(HEADER_PROCESSOR) != f"{app_id}/readings".encode():
                continue
            got[(msg.key() or b"").decode()] = CODEC.decode(msg.value() or b"")["fields"]
        reader.close()
        assert set(got) == {hot, cold}, worker.tail()
        # ran after normalize (100 degF is 37.8 degC > 30), before dew_point (still computed)
        assert got[hot]["hot"] == 1.0 and got[hot]["context_limit"] == 300.0
        assert "dew_point" in got[hot]
        assert "hot" not in got[cold]
    finally:
        worker.stop()


def test_an_unknown_step_stops_the_worker_with_what_to_fix(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("telemetry")), "process"],
        env={**os.environ, **stack_env, "TELEMETRY_PROCESS_STEPS": "validate,no_such_step",
             "TELEMETRY_PROCESS_HEALTH_PORT": str(free_port()),
             "TELEMETRY_PROCESS_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    said = result.stdout + result.stderr
    assert "no_such_step" in said and "telemetry.steps" in said and "validate" in said


def raw(device: str, degf: float) -> bytes:
    now = int(time.time() * 1000)
    return CODEC.encode("RawReading", {
        "device_id": device, "ts": ("long", now - 1000), "received_at_ms": now,
        "seq": ("long", 1),
        "metrics": [{"name": "temperature", "value": ("double", degf), "unit": "degF"},
                    {"name": "humidity", "value": ("double", 40.0), "unit": None}],
    })


def end_reader(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    consumer.assign(end_offsets(bootstrap, [topic]))
    return consumer
