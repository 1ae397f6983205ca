"""Which InfluxDB answers refuse the data (dead letters) and which are retried."""

from __future__ import annotations

import pytest

from sinks.influxdb import classify
from sinks.write_errors import RefusedWriteError, RetryableWriteError


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"code":"invalid","message":"unable to parse \'x\': invalid field format"}'),
        (422, b'{"code":"unprocessable entity","message":"partial write: field type conflict"}'),
        (413, b'{"code":"request too large","message":"too large"}'),
    ],
)
def test_refusals_carry_influxdbs_own_words(status: int, body: bytes) -> None:
    err = classify(status, body)
    assert isinstance(err, RefusedWriteError)
    assert err.reason.startswith(f"HTTP {status}: ")
    assert err.reason.split(": ", 1)[1] in body.decode()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"code":"unauthorized","message":"unauthorized access"}'),
        (404, b'{"code":"not found","message":"bucket \\"nope\\" not found"}'),
        (500, b"internal error"),
        (503, b""),
        (429, None),
    ],
)
def test_config_and_server_trouble_is_retried(status: int, body: bytes | None) -> None:
    err = classify(status, body)
    assert isinstance(err, RetryableWriteError)
    assert f"HTTP {status}" in err.reason


def test_retry_after_is_honoured() -> None:
    err = classify(429, b"", {"Retry-After": "7"})
    assert isinstance(err, RetryableWriteError) and err.retry_after_s == 7.0
    err = classify(503, b"", {"retry-after": "soon"})
    assert isinstance(err, RetryableWriteError) and err.retry_after_s is None
