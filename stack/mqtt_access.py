"""Who may do what on the local Mosquitto: one MQTT user per role, enforced by the broker.

Mosquitto's dynamic-security plugin (shipped in Debian's `mosquitto` package) holds the users
and their roles. Not a `password_file` + `acl_file`: with those, Mosquitto 2.0 grants every
SUBSCRIBE and only filters messages on delivery, so a device that joins ingest's shared
subscription is handed its share of the telemetry and drops it (measured: half of it). The
plugin refuses such a SUBSCRIBE outright. Its 2.0 releases have no `%u` topic patterns, so a
device gets a role of its own naming its two topics (`device_role`).

Roles (the stack writes them at every start; `README.md`, "MQTT users"):

- `ingest` (ingest and Telegraf): subscribe to `<root>/+/telemetry` (also as
  `$share/<group>/...`) and `<root>/+/metadata`; receives what it subscribed; publishes nothing.
  Any root and group: `telemetry benchmark --component ingest` runs ingest on a root and group
  of its own.
- `fleet` (the simulated fleet, `dlq replay`): a gateway that publishes for any device, to
  `<root>/<id>/telemetry` and `<root>/<id>/metadata` only; subscribes to nothing. The
  simulator sends thousands of devices over one connection per process, so it cannot log in
  as each device.
- `device:<id>` (one per provisioned device, username = the device id): publish to
  `devices/<id>/telemetry` and `devices/<id>/metadata` only; subscribes to nothing.
- `admin`: the plugin's control topic only, to provision devices (`DynsecAdmin`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from stack.credentials import Credentials

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
#: the plugin's default: PBKDF2-SHA512 with 101 iterations and a 12-byte salt
PBKDF2_ITERATIONS = 101
DEVICE_ROLE_PREFIX = "device:"
#: roles and clients the stack owns; every other one (devices) is kept across restarts
STACK_ROLES = ("admin", "ingest", "fleet")


class DynsecError(RuntimeError):
    """The plugin refused a command, or did not answer."""


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def stack_roles() -> list[dict[str, Any]]:
    """The `admin`, `ingest` and `fleet` roles (module docstring)."""
    return [
        {"rolename": "admin", "acls": [
            _acl("publishClientSend", f"{CONTROL_TOPIC}/#"),
            _acl("publishClientReceive", f"{CONTROL_TOPIC}/#"),
            _acl("subscribePattern", f"{CONTROL_TOPIC}/#"),
        ]},
        {"rolename": "ingest", "acls": [
            _acl("subscribePattern", "$share/+/+/+/telemetry"),
            _acl("subscribePattern", "+/+/telemetry"),
            _acl("subscribePattern", "+/+/metadata"),
        ]},
        {"rolename": "fleet", "acls": [
            _acl("publishClientSend", "+/+/telemetry"),
            _acl("publishClientSend", "+/+/metadata"),
        ]},
    ]  # fmt: skip


def device_role(device_id: str) -> dict[str, Any]:
    """The role of one device: publish to its own two topics, nothing else."""
    if not device_id or any(c in device_id for c in "/+#\0"):
        raise ValueError(f"{device_id!r} cannot be a device id (empty, or has / + # NUL)")
    return {"rolename": DEVICE_ROLE_PREFIX + device_id, "acls": [
        _acl("publishClientSend", f"devices/{device_id}/telemetry"),
        _acl("publishClientSend", f"devices/{device_id}/metadata"),
    ]}  # fmt: skip


def hashed_client(username: str, password: str, roles: list[str]) -> dict[str, Any]:
    """A client entry of the plugin's config file, password hashed as the plugin does."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return {
        "username": username,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PBKDF2_ITERATIONS,
        "roles": [{"rolename": r} for r in roles],
    }


def write_config(path: Path, creds: Credentials) -> None:
    """Writes the plugin's config file (the broker is stopped): the stack's users and roles as
    they are now, plus the devices an earlier run provisioned."""
    old: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    stack_users = {creds.mqtt_admin_username, creds.mqtt_ingest_username,
                   creds.mqtt_fleet_username}
    clients = [
        hashed_client(creds.mqtt_admin_username, creds.mqtt_admin_password, ["admin"]),
        hashed_client(creds.mqtt_ingest_username, creds.mqtt_ingest_password, ["ingest"]),
        hashed_client(creds.mqtt_fleet_username, creds.mqtt_fleet_password, ["fleet"]),
    ]
    clients += [c for c in old.get("clients", []) if c.get("username") not in stack_users]
    roles = stack_roles()
    roles += [r for r in old.get("roles", []) if r.get("rolename") not in STACK_ROLES]
    config = {
        "clients": clients,
        "groups": old.get("groups", []),
        "roles": roles,
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT sets the mode of a new file only
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=1)


def plugin_path() -> str:
    """Where Debian's `mosquitto` package puts the dynamic-security plugin."""
    for libdir in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
        candidate = Path(libdir) / "mosquitto_dynamic_security.so"
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(
        "mosquitto_dynamic_security.so not found (Debian's mosquitto package ships it)"
    )


class DynsecAdmin:
    """Provisions device users at runtime through the plugin's control topic, as `admin`.

    A device user is a username (the device id), a password and its own role; the broker
    keeps it in its config file, so it survives restarts."""

    def __init__(self, port: int, creds: Credentials, host: str = "127.0.0.1",
                 timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.reserved = {creds.mqtt_admin_username, creds.mqtt_ingest_username,
                         creds.mqtt_fleet_username}
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._answered = threading.Condition()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=f"telemetry-dynsec-{uuid.uuid4().hex[:8]}",
                                   protocol=mqtt.MQTTv5)
        self._client.username_pw_set(creds.mqtt_admin_username, creds.mqtt_admin_password)
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.on_connect = lambda c, *a: c.subscribe(RESPONSE_TOPIC, qos=1)
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        if not subscribed.wait(timeout_s):
            self.close()
            raise DynsecError(f"no answer from the dynamic-security plugin on port {port}")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        responses = json.loads(msg.payload).get("responses", [])
        with self._answered:
            for r in responses:
                self._answers.setdefault(r.get("correlationData", ""), []).append(r)
            self._answered.notify_all()

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sends the commands in one message; returns the plugin's answer to each."""
        tag = uuid.uuid4().hex
        for i, c in enumerate(commands):
            c["correlationData"] = f"{tag}-{i}"
        self._client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
        keys = [c["correlationData"] for c in commands]
        with self._answered:
            if not self._answered.wait_for(lambda: all(k in self._answers for k in keys),
                                           self.timeout_s):
                raise DynsecError(f"the plugin did not answer {[c['command'] for c in commands]}")
            return [self._answers.pop(k)[0] for k in keys]

    def add_device(self, device_id: str, password: str) -> None:
        """Creates (or re-creates) the user `device_id` with its own role."""
        role = device_role(device_id)
        if device_id in self.reserved:
            raise ValueError(f"{device_id!r} is one of the stack's own MQTT users")
        self.remove_device(device_id)
        answers = self.run([
            {"command": "createRole", **role},
            {"command": "createClient", "username": device_id, "password": password,
             "roles": [{"rolename": role["rolename"]}]},
        ])  # fmt: skip
        errors = [a["error"] for a in answers if a.get("error")]
        if errors:
            raise DynsecError(f"provisioning {device_id!r}: {'; '.join(errors)}")

    def remove_device(self, device_id: str) -> None:
        """Deletes the user and its role; a device that does not exist is no error."""
        self.run([
            {"command": "deleteClient", "username": device_id},
            {"command": "deleteRole", "rolename": DEVICE_ROLE_PREFIX + device_id},
        ])  # fmt: skip

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> DynsecAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
