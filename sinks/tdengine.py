"""`telemetry sink tdengine`: the same points into TDengine 3.x through taosAdapter.

Points go to taosAdapter's InfluxDB-compatible schemaless endpoint
(`POST /influxdb/v1/write?db=<db>&precision=us`), which creates the super table `telemetry`
with the same tags (NCHAR) and fields (DOUBLE; `seq` BIGINT). The database is created at start
(and again if a write finds it missing) with `POST /rest/sql`.

UNVERIFIED against a live TDengine: no server can be had on the machines this was built on.
The request and answer formats follow taosAdapter's source (plugin/influxdb/plugin.go) and
TDengine's REST documentation, and tests/unit/test_sink_tdengine_http.py checks them against
a local HTTP server that answers the same way.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import re
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

from plumbing.logs import setup_logging
from sinks.batching import BatchingSink, Destination
from sinks.line_protocol import Dialect, request_bodies
from sinks.settings import TDengineSinkSettings
from sinks.write_errors import RefusedWriteError, RetryableWriteError, retry_after_seconds

log = logging.getLogger(__name__)

#: taosAdapter reports a failed schemaless write as HTTP 500 with the TDengine error as
#: `[0x<code>] <text>`. These codes are about the data (syntax, types, lengths, ranges):
#: the points are refused. Every other code is retried (nothing is lost while it lasts).
REFUSED_CODES = frozenset(
    {
        0x0203,  # TSC_INVALID_VALUE: e.g. a column's type differs from the super table's
        0x0216,  # TSC_SQL_SYNTAX_ERROR
        0x021B,  # TSC_LINE_SYNTAX_ERROR
        0x021E,  # TSC_INVALID_TAG_LENGTH
        0x021F,  # TSC_INVALID_COLUMN_LENGTH (names longer than 64 bytes)
        0x0220,  # TSC_DUP_TAG_NAMES / duplicated names
        0x0223,  # TSC_VALUE_OUT_OF_RANGE (3.0 numbering)
        0x0224,  # TSC_VALUE_OUT_OF_RANGE (3.x REST docs numbering)
        0x060B,  # TDB_TIMESTAMP_OUT_OF_RANGE
        0x3002,  # SML_INVALID_DATA
        0x3004,  # SML_NOT_SAME_TYPE
    }
)
_PARSER_CODES = range(0x2600, 0x2700)  # PAR_*: the line parsed into something invalid
_TAOS_CODE = re.compile(r"\[0x([0-9a-fA-F]+)\]")


class TDengineDestination(Destination):
    name = "tdengine"
    dialect = Dialect.TDENGINE

    def __init__(self, settings: TDengineSinkSettings) -> None:
        self.settings = settings
        url = urlsplit(settings.tdengine_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"tdengine_url must be http(s)://host[:port], not {url.geturl()!r}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 6041)
        self._prefix = url.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._auth: dict[str, str] = {}
        self._token_query: dict[str, str] = {}
        if settings.tdengine_token is not None and settings.tdengine_token.get_secret_value():
            self._token_query = {"token": settings.tdengine_token.get_secret_value()}
        else:
            pair = f"{settings.tdengine_username}:{settings.tdengine_password.get_secret_value()}"
            self._auth = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        self.database_ready = False

    # -- database -----------------------------------------------------------------------------

    def setup(self) -> None:
        self.ensure_database()

    def ensure_database(self) -> None:
        sql = f"CREATE DATABASE IF NOT EXISTS {self.settings.tdengine_database} PRECISION 'us'"
        status, headers, body = self._request("/rest/sql", {}, sql.encode())
        if status == 401:
            raise RetryableWriteError(f"TDengine refused the credentials: {_text(body)}")
        answer = _json(body)
        code = answer.get("code") if isinstance(answer, dict) else None
        if status != 200 or code != 0:
            desc = answer.get("desc") if isinstance(answer, dict) else None
            raise RetryableWriteError(
                f"CREATE DATABASE failed (HTTP {status}, code {code}): {desc or _text(body)}",
                retry_after_seconds(headers),
            )
        self.database_ready = True
        log.info("TDengine database %s is there", self.settings.tdengine_database)

    # -- writes -------------------------------------------------------------------------------

    def write(self, batch: Sequence[str]) -> None:
        if not self.database_ready:
            self.ensure_database()
        query = {"db": self.settings.tdengine_database, "precision": "us"}
        for body in request_bodies(batch):
            status, headers, answer = self._request("/influxdb/v1/write", query, body)
            if status not in (200, 204):
                raise self.classify(status, headers, answer)

    def classify(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> RefusedWriteError | RetryableWriteError:
        """The error for a taosAdapter answer to a write."""
        answer = _json(body)
        message = str(answer.get("message")) if isinstance(answer, dict) else _text(body)
        if status == 500:
            match = _TAOS_CODE.search(message)
            code = int(match.group(1), 16) if match else None
            if code is not None and (code in REFUSED_CODES or code in _PARSER_CODES):
                return RefusedWriteError(f"TDengine error {message}")
            if "database not exist" in message.lower() or "db not exist" in message.lower():
                self.database_ready = False
                return RetryableWriteError(f"database missing, creating it first: {message}")
            return RetryableWriteError(f"TDengine error {message}")
        if status == 401:
            return RetryableWriteError(f"taosAdapter refused the credentials: {message}")
        if status == 400:
            # taosAdapter answers 400 only for the request itself (missing db, bad params).
            return RetryableWriteError(
                f"taosAdapter refused the request (check the settings): {_text(body)}"
            )
        return RetryableWriteError(
            f"taosAdapter answered HTTP {status}: {message}", retry_after_seconds(headers)
        )

    # -- HTTP -----------------------------------------------------------------------------------

    def _request(
        self, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        params = {**query, **self._token_query}
        target = self._prefix + path + ("?" + urlencode(params) if params else "")
        headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth}
        for attempt in (1, 2):
            fresh = self._conn is None
            conn = self._connection()
            try:
                conn.request("POST", target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self._drop_connection()
                return resp.status, dict(resp.getheaders()), data
            except (http.client.HTTPException, OSError) as exc:
                self._drop_connection()
                # A kept-alive connection the server closed: try once on a new one (writes
                # are idempotent, so a repeat is harmless).
                if attempt == 1 and not fresh:
                    continue
                raise RetryableWriteError(
                    f"taosAdapter at {self.settings.tdengine_url} unreachable: {exc!r}"
                ) from None
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.settings.tdengine_timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop_connection()


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace").strip()[:2000] or "(empty body)"


def run(args: argparse.Namespace) -> int:
    settings = TDengineSinkSettings()
    setup_logging(settings.log_format, settings.log_level)
    return BatchingSink(settings, TDengineDestination(settings)).run()
