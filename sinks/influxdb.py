"""`telemetry sink influxdb`: EnrichedReadings from Kafka into InfluxDB 2.x, bucket `telemetry`.

Writes go through influxdb-client's synchronous WriteApi with precision=us, on the base's
writer thread (the next batch is polled and encoded meanwhile). InfluxDB answers
400 when a line does not parse (2.9.1 then writes nothing of the request) and 422 for a
partial write (field type conflict, invalid field name: the other points are written); both
are refusals, and the batching base finds the refused points by writing halves.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from plumbing.logs import setup_logging
from sinks.batching import BatchingSink, Destination
from sinks.line_protocol import Dialect, request_bodies
from sinks.settings import InfluxDBSinkSettings
from sinks.write_errors import RefusedWriteError, RetryableWriteError, retry_after_seconds

log = logging.getLogger(__name__)

#: Statuses that mean "these points, as they are, will never be accepted".
REFUSED_STATUSES = frozenset({400, 413, 422})


def classify(
    status: int, body: bytes | str | None, headers: Mapping[str, str] | None = None
) -> RefusedWriteError | RetryableWriteError:
    """The error for an InfluxDB answer: refused for what the data is, or retryable.

    401/403/404 (token, org or bucket wrong) are retryable: the data is fine, the config is
    not, and Kafka keeps everything until an operator fixes it.
    """
    message = _message(body)
    if status in REFUSED_STATUSES:
        return RefusedWriteError(f"HTTP {status}: {message}")
    retry_after = retry_after_seconds(headers)
    return RetryableWriteError(f"InfluxDB answered HTTP {status}: {message}", retry_after)


def _message(body: bytes | str | None) -> str:
    if body is None:
        return "(no body)"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:2000] or "(empty body)"
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"])[:2000]
    return text.strip()[:2000]


class InfluxDBDestination(Destination):
    name = "influxdb"
    dialect = Dialect.INFLUXDB

    def __init__(self, settings: InfluxDBSinkSettings) -> None:
        self.settings = settings
        self.client = InfluxDBClient(
            url=settings.influxdb_url,
            token=settings.influxdb_token.get_secret_value(),
            org=settings.influxdb_org,
            timeout=int(settings.influxdb_timeout_s * 1000),
            enable_gzip=settings.influxdb_gzip,
            **settings.influxdb_tls_options(),
        )
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def setup(self) -> None:
        """Checks that InfluxDB answers; the bucket itself is the operator's (or the stack's)."""
        try:
            healthy = self.client.ping()
        except Exception as exc:  # ping wraps several transport errors
            raise RetryableWriteError(f"InfluxDB at {self.settings.influxdb_url}: {exc}") from exc
        if not healthy:
            raise RetryableWriteError(f"InfluxDB at {self.settings.influxdb_url} does not answer")
        log.info("InfluxDB at %s answers", self.settings.influxdb_url)

    def write(self, batch: Sequence[str]) -> None:
        for body in request_bodies(batch):
            try:
                self.write_api.write(
                    bucket=self.settings.influxdb_bucket,
                    org=self.settings.influxdb_org,
                    record=body,
                    write_precision=WritePrecision.US,  # type: ignore[arg-type]
                )
            except ApiException as exc:
                raise classify(exc.status or 0, exc.body, exc.headers) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise RetryableWriteError(
                    f"InfluxDB at {self.settings.influxdb_url} unreachable: {exc}"
                ) from None

    def close(self) -> None:
        self.write_api.close()
        self.client.close()


def run(args: argparse.Namespace) -> int:
    settings = InfluxDBSinkSettings()
    setup_logging(settings.log_format, settings.log_level)
    return BatchingSink(settings, InfluxDBDestination(settings)).run()
