"""Mosquitto from Debian's packages, with persistence and one MQTT user per role.

Users and what they may do live in the dynamic-security plugin (stack/mqtt_access.py)."""

from __future__ import annotations

import getpass
import re
import subprocess
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from stack.debian import ensure_debian_packages, installed_binary
from stack.mqtt_access import plugin_path, write_config
from stack.processes import start_process, wait_until
from stack.service import Service


class Mosquitto(Service):
    name = "mosquitto"
    port_setting = "TELEMETRY_STACK_MQTT_PORT"

    @property
    def port(self) -> int:
        return self.settings.stack_mqtt_port

    @property
    def address(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def version(self) -> str:
        binary = installed_binary("mosquitto")  # status must not install: `stack up` may be at it
        if binary is None:
            return "not installed"
        try:
            out = subprocess.run(
                [binary, "-h"], capture_output=True, text=True, timeout=10
            ).stdout
        except OSError:
            return "not installed"
        m = re.search(r"version (\S+)", out)
        return m.group(1) if m else "unknown"

    def _binary(self) -> str:
        return ensure_debian_packages(
            "mosquitto", ["mosquitto", "mosquitto-clients"], self.settings
        )

    def install(self) -> None:
        self._binary()

    def launch(self) -> None:
        binary = self._binary()
        data = self.run_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        dynsec = self.run_dir / "dynamic-security.json"
        write_config(dynsec, self.creds)
        conf = self.run_dir / "mosquitto.conf"
        conf.write_text(
            f"""# written by `telemetry stack up`
user {getpass.getuser()}
listener {self.port} 127.0.0.1
allow_anonymous false
plugin {plugin_path()}
plugin_opt_config_file {dynsec}
persistence true
persistence_location {data}/
autosave_interval 10
max_queued_messages 100000
max_inflight_messages 1000
log_dest file {self.log_file}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
"""
        )
        start_process([binary, "-c", str(conf)], self.pid_file, self.run_dir / "stdout.log")

    def is_ready(self) -> bool:
        return connack_code(
            self.port, self.creds.mqtt_ingest_username, self.creds.mqtt_ingest_password
        ) == 0

    def wait_ready(self) -> None:
        wait_until(self.is_ready, 30, "mosquitto", self.pid_file, self.log_file)


def connack_code(
    port: int,
    username: str | None,
    password: str | None,
    timeout: float = 5.0,
    client_id: str = "",
) -> int | None:
    """Connects with MQTT 3.1.1 and returns the CONNACK reason code (0 = accepted).

    No username means an anonymous connection. The session is a clean one: connecting with
    the `client_id` of a persistent session ends that session (and drops what it queued).
    """
    result: list[int] = []
    got = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
    )
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        result.append(int(getattr(rc, "value", rc)))  # type: ignore[call-overload]
        got.set()

    client.on_connect = on_connect
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return None
    client.loop_start()
    got.wait(timeout)
    client.loop_stop()
    client.disconnect()
    return result[0] if result else None


def open_persistent_session(
    port: int,
    username: str | None,
    password: str | None,
    client_id: str,
    topic: str,
    qos: int = 1,
    timeout: float = 5.0,
) -> bool:
    """Leaves a persistent MQTT 3.1.1 session (`clean_session=False`) for `client_id` in the
    broker, subscribed to `topic`; True once the broker acknowledged the subscription.

    A client that later connects with that id finds the session present, and the broker
    delivers to it from its CONNACK on, with no SUBSCRIBE of its own to wait for. Any earlier
    session of the id must be ended first (`connack_code(..., client_id=...)`): resumed, it
    would hand this connection what it had queued.
    """
    subacked = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
        clean_session=False,
    )  # fmt: skip
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(
        c: mqtt.Client, u: object, flags: object, rc: ReasonCode, props: object
    ) -> None:
        if not rc.is_failure:
            c.subscribe(topic, qos)

    def on_subscribe(
        c: mqtt.Client, u: object, mid: int, codes: list[ReasonCode], props: object
    ) -> None:
        if codes and not any(code.is_failure for code in codes):
            subacked.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    client.loop_start()
    subacked.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return subacked.is_set()
