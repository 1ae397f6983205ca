"""TLS settings reach each client library, and no log line carries a URL's password."""

from __future__ import annotations

import logging
import ssl
import sys
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient
from pydantic import SecretStr

from plumbing.logs import JsonFormatter, TextFormatter, redact_urls
from plumbing.settings import KafkaSettings, tls_context
from sinks.settings import InfluxDBSinkSettings
from tests.support.tls import Certificates, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_kafka_tls_files_reach_librdkafka_and_the_python_clients(certs: Certificates) -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SSL", kafka_ssl_ca_file=str(certs.ca),
        kafka_ssl_cert_file=str(certs.client_cert), kafka_ssl_key_file=str(certs.client_key),
        kafka_ssl_key_password=SecretStr("not-needed"))
    conf = settings.confluent_config()
    assert conf["ssl.ca.location"] == str(certs.ca)
    assert conf["ssl.certificate.location"] == str(certs.client_cert)
    assert conf["ssl.key.location"] == str(certs.client_key)
    assert conf["ssl.key.password"] == "not-needed"
    context = settings.kafka_ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert settings.redacted()["kafka_ssl_key_password"] == "**********"
    plain = KafkaSettings()
    assert plain.kafka_ssl_context() is None
    assert not any(key.startswith("ssl.") for key in plain.confluent_config())


def test_a_client_certificate_that_does_not_load_fails_at_start(certs: Certificates) -> None:
    with pytest.raises(ssl.SSLError):  # the key of another certificate
        tls_context(str(certs.ca), str(certs.client_cert), str(certs.server_key), None)
    with pytest.raises(FileNotFoundError):
        tls_context(str(certs.ca) + ".missing", None, None, None)


def test_influxdb_tls_options_are_influxdb_clients(certs: Certificates) -> None:
    settings = InfluxDBSinkSettings(
        influxdb_url="https://127.0.0.1:8086", influxdb_ssl_ca_file=str(certs.ca),
        influxdb_ssl_cert_file=str(certs.client_cert),
        influxdb_ssl_key_file=str(certs.client_key))
    options = settings.influxdb_tls_options()
    assert options == {"ssl_ca_cert": str(certs.ca), "cert_file": str(certs.client_cert),
                       "cert_key_file": str(certs.client_key)}
    client = InfluxDBClient(url=settings.influxdb_url, token="t", org="o", **options)
    try:
        configuration = client.api_client.configuration
        assert configuration.ssl_ca_cert == str(certs.ca)
        assert configuration.cert_file == str(certs.client_cert)
    finally:
        client.close()
    assert InfluxDBSinkSettings().influxdb_tls_options() == {}


@pytest.mark.parametrize("text, shown", [
    ("https://admin:s3cr%40t@influx:8086/api/v2", "https://admin:***@influx:8086/api/v2"),
    ("mqtts://device-1:pw@broker:8883 then kafka://u:p@k:9093",
     "mqtts://device-1:***@broker:8883 then kafka://u:***@k:9093"),
    ("http://127.0.0.1:8086/ping", "http://127.0.0.1:8086/ping"),
    ("user@host and a:b@c", "user@host and a:b@c"),
])
def test_url_passwords_are_redacted(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_no_log_line_carries_a_url_password(formatter: logging.Formatter) -> None:
    try:
        raise ConnectionError("cannot reach https://writer:hunter2@influx.example:8086")
    except ConnectionError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "sinks.influxdb", logging.ERROR, __file__, 1,
        "write to %s failed", ("https://writer:hunter2@influx.example:8086",), exc_info)
    record.url = "https://writer:hunter2@influx.example:8086"
    line = formatter.format(record)
    assert "hunter2" not in line
    assert line.count("writer:***@influx.example") >= 3  # message, extra, traceback


def test_the_certificates_are_files(certs: Certificates) -> None:
    assert all(Path(p).stat().st_size > 0 for p in vars(certs).values())
