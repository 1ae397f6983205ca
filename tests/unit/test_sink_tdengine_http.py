"""The TDengine sink at its HTTP boundary, against a local server that answers like taosAdapter.

No TDengine server can be had here, so this is NOT an integration test: the fake follows
taosAdapter's source (plugin/influxdb/plugin.go: 204 on success, 400 `{code, message, op,
err, line}` for bad requests, 401 `{code: "forbidden", message}`, 500 `{code: "internal
error", message: "[0x<code>] <text>"}` when TDengine fails the write, 503 with Retry-After
when memory is short) and TDengine's REST docs for /rest/sql (`{"code": 0, "column_meta",
"data", "rows"}` or `{"code": <n>, "desc": <text>}`, HTTP 200 either way by default).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from sinks.refusals import write_isolating_refused
from sinks.settings import TDengineSinkSettings
from sinks.tdengine import TDengineDestination
from sinks.write_errors import RefusedWriteError, RetryableWriteError
from tests.support.components import free_port

BASIC = "Basic " + base64.b64encode(b"root:taosdata").decode()
CREATE = "CREATE DATABASE IF NOT EXISTS telemetry PRECISION 'us'"


@dataclass
class FakeTaosAdapter:
    databases: set[str] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sql_error: tuple[int, str] | None = None
    overloaded: bool = False
    close_after_each: bool = False
    token: str | None = None

    def handle(self, h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        self.requests.append(
            {"path": url.path, "query": query, "body": body, "headers": dict(h.headers)}
        )
        authorized = (
            query.get("token") == self.token
            if self.token
            else h.headers.get("Authorization") == BASIC
        )
        if url.path == "/rest/sql":
            if not authorized:
                return 401, {}, _j({"code": 0x0357, "desc": "Authentication failure"})
            if self.sql_error:
                code, desc = self.sql_error
                return 200, {}, _j({"code": code, "desc": desc})
            sql = body.decode()
            if sql.startswith("CREATE DATABASE IF NOT EXISTS "):
                self.databases.add(sql.split()[5])
                return 200, {}, _j({"code": 0, "column_meta": [["affected_rows", "INT", 4]],
                                    "data": [[0]], "rows": 1})
            return 200, {}, _j({"code": 0x2600, "desc": "syntax error"})
        if url.path == "/influxdb/v1/write":
            if self.overloaded:
                return 503, {"Retry-After": "120"}, _j("memory exceeds threshold")
            if not authorized:
                return 401, {}, _j({"code": "forbidden", "message": "Authentication failure"})
            db = query.get("db", "")
            if not db:
                return 400, {}, _j({"code": "not found", "message": "db required",
                                    "op": "get db query", "err": "db required", "line": 0})
            if db not in self.databases:
                return 500, {}, _j({"code": "internal error",
                                    "message": "[0x388] Database not exist"})
            text = body.decode()
            good = [ln for ln in text.split("\n") if "BAD" not in ln]
            self.lines.extend(good)  # schemaless writes are not atomic
            if len(good) != len(text.split("\n")):
                return 500, {}, _j({"code": "internal error",
                                    "message": "[0x3002] Invalid data format: BAD"})
            return 204, {}, b""
        return 404, {}, b"404 page not found"


def _j(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture()
def adapter() -> Iterator[tuple[FakeTaosAdapter, str]]:
    fake = FakeTaosAdapter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            status, headers, body = fake.handle(self)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)
            if fake.close_after_each:
                self.close_connection = True  # without saying so: the client finds out

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield fake, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def destination(url: str, **over: Any) -> TDengineDestination:
    return TDengineDestination(TDengineSinkSettings(tdengine_url=url, **over))


LINES = [
    "telemetry,device_id=d1,site=s temperature=21.5,seq=1i 1763701200000001",
    "telemetry,device_id=d2 humidity=40.0 1763701200000002",
]


def test_setup_creates_the_database_with_microsecond_precision(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url)
    dest.setup()
    [req] = fake.requests
    assert req["path"] == "/rest/sql" and req["body"].decode() == CREATE
    assert req["headers"]["Authorization"] == BASIC
    assert fake.databases == {"telemetry"} and dest.database_ready


def test_write_posts_line_protocol_to_the_influxdb_endpoint(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url)
    dest.setup()
    dest.write(LINES)
    write = fake.requests[-1]
    assert write["path"] == "/influxdb/v1/write"
    assert write["query"] == {"db": "telemetry", "precision": "us"}
    assert write["body"] == "\n".join(LINES).encode()
    assert write["headers"]["Content-Type"].startswith("text/plain")
    assert fake.lines == LINES


def test_a_line_tdengine_refuses_is_isolated_and_the_rest_stored(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url)
    dest.setup()
    lines = [f"telemetry,device_id=d{i} v={i}.0 {1763701200000000 + i}" for i in range(40)]
    lines[13] = "telemetry,device_id=BAD v=x 1"
    refused = write_isolating_refused(lines, dest.write)
    assert refused == [(lines[13], "TDengine error [0x3002] Invalid data format: BAD")]
    assert set(fake.lines) == set(lines) - {lines[13]}


def test_missing_database_is_created_again_before_the_retry(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url)
    dest.setup()
    fake.databases.clear()  # someone dropped it
    with pytest.raises(RetryableWriteError, match="database missing"):
        dest.write(LINES)
    assert not dest.database_ready
    dest.write(LINES)
    assert fake.databases == {"telemetry"} and fake.lines == LINES
    assert [r["path"] for r in fake.requests[-2:]] == ["/rest/sql", "/influxdb/v1/write"]


def test_write_before_setup_succeeded_creates_the_database_first(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url)
    dest.write(LINES)
    assert [r["path"] for r in fake.requests] == ["/rest/sql", "/influxdb/v1/write"]


def test_wrong_password_is_retried_not_dead_lettered(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url, tdengine_password=SecretStr("wrong"))
    with pytest.raises(RetryableWriteError, match="credentials"):
        dest.setup()
    fake.databases.add("telemetry")
    dest.database_ready = True
    with pytest.raises(RetryableWriteError, match=r"credentials.*Authentication failure"):
        dest.write(LINES)
    assert fake.lines == []


def test_overloaded_adapter_asks_to_come_back_later(adapter: Any) -> None:
    fake, url = adapter
    dest = destination(url)
    dest.setup()
    fake.overloaded = True
    with pytest.raises(RetryableWriteError) as info:
        dest.write(LINES)
    assert info.value.retry_after_s == 120.0 and "503" in info.value.reason


def test_rest_error_answer_is_reported_with_its_desc(adapter: Any) -> None:
    fake, url = adapter
    fake.sql_error = (0x0382, "Too many databases")
    with pytest.raises(RetryableWriteError, match="Too many databases"):
        destination(url).setup()


def test_token_goes_in_the_query_instead_of_basic_auth(adapter: Any) -> None:
    fake, url = adapter
    fake.token = "cloud-token-1"
    dest = destination(url, tdengine_token=SecretStr("cloud-token-1"))
    dest.write(LINES)
    assert all(r["query"]["token"] == "cloud-token-1" for r in fake.requests)
    assert all("Authorization" not in r["headers"] for r in fake.requests)
    assert fake.lines == LINES


def test_connection_closed_by_the_server_is_reopened(adapter: Any) -> None:
    fake, url = adapter
    fake.close_after_each = True
    dest = destination(url)
    for _ in range(3):
        dest.write(LINES)
    assert fake.lines == LINES * 3


def test_unreachable_adapter_is_retryable() -> None:
    dest = destination(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableWriteError, match="unreachable"):
        dest.write(LINES)


@pytest.mark.parametrize(
    ("status", "message", "refused"),
    [
        (500, "[0x3004] Not the same type like before", True),
        (500, "[0x203] Invalid value in client", True),
        (500, "[0x2653] Invalid binary/nchar column length", True),
        (500, "[0xb] Unable to establish connection", False),
        (500, "[0x3005] Internal error", False),
        (500, "no code at all", False),
        (502, "bad gateway", False),
    ],
)
def test_error_codes_decide_refused_or_retried(status: int, message: str, refused: bool) -> None:
    dest = destination("http://127.0.0.1:6041")
    err = dest.classify(status, {}, _j({"code": "internal error", "message": message}))
    assert isinstance(err, RefusedWriteError if refused else RetryableWriteError)
    assert message in err.reason


def test_bad_request_answer_is_a_settings_problem() -> None:
    dest = destination("http://127.0.0.1:6041")
    err = dest.classify(400, {}, _j({"code": "not found", "message": "db required"}))
    assert isinstance(err, RetryableWriteError) and "db required" in err.reason


def test_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        destination("taos://127.0.0.1:6030")
