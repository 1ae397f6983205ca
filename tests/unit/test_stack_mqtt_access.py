"""The stack's MQTT users: old credential files gain the new users, and the plugin's config
keeps provisioned devices across restarts while the stack's own roles are rewritten."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from stack.credentials import Credentials
from stack.mqtt_access import device_role, hashed_client, write_config


def test_an_old_credentials_file_gains_the_role_users_and_keeps_influxdb(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    old = {"mqtt_username": "telemetry", "mqtt_password": "p", "influxdb_org": "o",
           "influxdb_bucket": "b", "influxdb_token": "t", "influxdb_username": "u",
           "influxdb_password": "pw"}
    path.write_text(json.dumps(old))
    creds = Credentials.load_or_create(path)
    assert (creds.influxdb_token, creds.influxdb_password) == ("t", "pw")
    assert creds.mqtt_ingest_username == "ingest" and creds.mqtt_fleet_username == "fleet"
    assert len({creds.mqtt_ingest_password, creds.mqtt_fleet_password,
                creds.mqtt_admin_password}) == 3
    stored = json.loads(path.read_text())
    assert "mqtt_username" not in stored
    assert stored["mqtt_fleet_password"] == creds.mqtt_fleet_password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Credentials.load_or_create(path) == creds  # stable from then on


def test_the_hash_is_the_plugins_pbkdf2() -> None:
    entry = hashed_client("dev-1", "secret", ["device:dev-1"])
    salt = base64.b64decode(entry["salt"])
    digest = hashlib.pbkdf2_hmac("sha512", b"secret", salt, entry["iterations"])
    assert base64.b64decode(entry["password"]) == digest
    assert entry["roles"] == [{"rolename": "device:dev-1"}]


def test_config_keeps_devices_and_rewrites_the_stacks_roles(tmp_path: Path) -> None:
    creds = Credentials.generate()
    path = tmp_path / "dynsec.json"
    device = hashed_client("dev-1", "pw", ["device:dev-1"])
    stale_ingest = {"rolename": "ingest", "acls": [
        {"acltype": "subscribePattern", "topic": "#", "allow": True}]}
    path.write_text(json.dumps({"clients": [device, hashed_client("ingest", "old", ["ingest"])],
                                "roles": [device_role("dev-1"), stale_ingest]}))
    write_config(path, creds)
    config = json.loads(path.read_text())
    users = [c["username"] for c in config["clients"]]
    assert sorted(users) == sorted(["admin", "ingest", "fleet", "dev-1"])
    ingest = next(c for c in config["clients"] if c["username"] == "ingest")
    digest = hashlib.pbkdf2_hmac("sha512", creds.mqtt_ingest_password.encode(),
                                 base64.b64decode(ingest["salt"]), 101)
    assert base64.b64decode(ingest["password"]) == digest
    roles = {r["rolename"]: r for r in config["roles"]}
    assert "#" not in [a["topic"] for a in roles["ingest"]["acls"]]
    assert [a["topic"] for a in roles["device:dev-1"]["acls"]] == [
        "devices/dev-1/telemetry", "devices/dev-1/metadata"]
    assert config["defaultACLAccess"]["subscribe"] is False
    assert config["defaultACLAccess"]["publishClientSend"] is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "a\0b"])
def test_a_device_role_needs_a_topic_level_for_an_id(bad: str) -> None:
    with pytest.raises(ValueError):
        device_role(bad)
