"""`telemetry stack up | down | status [--json] | env | device add|remove <id>`."""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
import sys

from stack.local_stack import LocalStack
from stack.mqtt_access import DynsecAdmin, DynsecError
from stack.processes import StackError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack",
        help="the local stack of real servers (Mosquitto, Kafka, InfluxDB; Telegraf optional)",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="install on first use, start, wait until ready")
    up.add_argument(
        "--with",
        dest="with_optional",
        action="append",
        default=[],
        choices=["telegraf"],
        help="also install (first use: built, ~2 min) and start an optional server; repeatable",
    )
    up.set_defaults(func=_up)
    actions.add_parser("down", help="stop what `up` started, by PID").set_defaults(func=_down)
    st = actions.add_parser("status", help="each server, its address and version")
    st.add_argument("--json", action="store_true", help="machine-readable, with credentials")
    st.set_defaults(func=_status)
    actions.add_parser(
        "env", help="print `export` lines pointing the pipeline at this stack"
    ).set_defaults(func=_env)
    dev = actions.add_parser(
        "device",
        help="an MQTT user for one real device (username = device id, may publish only to "
        "devices/<id>/telemetry and devices/<id>/metadata)",
    )
    dev.add_argument("change", choices=["add", "remove"])
    dev.add_argument("device_id")
    dev.add_argument("--password", help="default: a new random one, printed")
    dev.set_defaults(func=_device)


def _up(args: argparse.Namespace) -> int:
    stack = LocalStack()
    try:
        stack.up(with_optional=args.with_optional)
    except StackError as exc:
        print(f"stack up failed: {exc}", file=sys.stderr)
        return 1
    _print_table(stack)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = LocalStack().down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args: argparse.Namespace) -> int:
    stack = LocalStack()
    if args.json:
        print(json.dumps(stack.status(with_credentials=True), indent=2))
    else:
        _print_table(stack)
    return 0 if stack.is_up() else 3


def _env(args: argparse.Namespace) -> int:
    for key, value in LocalStack().client_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _device(args: argparse.Namespace) -> int:
    stack = LocalStack()
    try:
        with DynsecAdmin(stack.mosquitto.port, stack.creds) as admin:
            if args.change == "remove":
                admin.remove_device(args.device_id)
                print(f"removed MQTT user {args.device_id!r} (if it existed)")
                return 0
            password = args.password or secrets.token_urlsafe(18)
            admin.add_device(args.device_id, password)
    except (OSError, DynsecError, ValueError) as exc:
        print(f"stack device {args.change} failed: {exc}", file=sys.stderr)
        return 1
    print(f"MQTT user {args.device_id!r} may publish to devices/{args.device_id}/telemetry "
          f"and devices/{args.device_id}/metadata")
    if not args.password:
        print(f"password: {password}")
    return 0


def _print_table(stack: LocalStack) -> None:
    status = stack.status()
    print(f"{'SERVICE':<12}{'STATE':<10}{'PID':<9}{'ADDRESS':<28}VERSION")
    for name, s in status["services"].items():
        state = "running" if s["running"] else "stopped"
        print(f"{name:<12}{state:<10}{s['pid'] or '-'!s:<9}{s['address']:<28}{s['version']}")
    print(f"data and logs: {status['stack_dir']}   caches: {status['cache_dir']}")
    print("credentials: `telemetry stack status --json`; env: `eval $(telemetry stack env)`")
