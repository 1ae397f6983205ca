"""Typed settings from environment variables with the `TELEMETRY_` prefix, or a YAML file.

Every component declares one subclass of `TelemetrySettings`. Values come, highest first,
from: keyword arguments, environment variables (`TELEMETRY_<FIELD>`), the YAML file named by
`TELEMETRY_CONFIG_FILE`, then the field defaults. Field docstrings are the documentation:
`telemetry config` prints every option with its default.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "TELEMETRY_"


class TelemetrySettings(BaseSettings):
    """Base of every component's settings object."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", use_attribute_docstrings=True
    )
    component: ClassVar[str] = "telemetry"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(ENV_PREFIX + "CONFIG_FILE")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to log: secrets shown as '**********'."""
        return {
            k: ("**********" if isinstance(getattr(self, k), SecretStr) else v)
            for k, v in self.model_dump().items()
        }


class KafkaSettings(TelemetrySettings):
    """Connection options every Kafka client in the pipeline shares."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated Kafka bootstrap servers."""
    kafka_security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    kafka_sasl_mechanism: str | None = None
    """SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when SASL is on."""
    kafka_sasl_username: str | None = None
    """SASL user name."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password (never logged)."""
    kafka_ssl_ca_file: str | None = None
    """With SSL or SASL_SSL: the CA bundle (PEM) that signed the brokers' certificates; the
    system store when unset."""
    kafka_ssl_cert_file: str | None = None
    """With SSL or SASL_SSL: this client's certificate (PEM), for brokers that require one
    (mutual TLS)."""
    kafka_ssl_key_file: str | None = None
    """The private key (PEM) of `kafka_ssl_cert_file`."""
    kafka_ssl_key_password: SecretStr | None = None
    """Password of `kafka_ssl_key_file` when it is encrypted (never logged)."""

    def confluent_config(self) -> dict[str, Any]:
        """The librdkafka options for these settings."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            pw = self.kafka_sasl_password
            conf["sasl.password"] = pw.get_secret_value() if pw else ""
        if self.kafka_ssl_ca_file:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_file
        if self.kafka_ssl_cert_file:
            conf["ssl.certificate.location"] = self.kafka_ssl_cert_file
        if self.kafka_ssl_key_file:
            conf["ssl.key.location"] = self.kafka_ssl_key_file
        if self.kafka_ssl_key_password:
            conf["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return conf

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of Python Kafka clients (aiokafka, Faust): None without SSL."""
        if not self.kafka_security_protocol.upper().endswith("SSL"):
            return None
        return tls_context(self.kafka_ssl_ca_file, self.kafka_ssl_cert_file,
                           self.kafka_ssl_key_file, self.kafka_ssl_key_password)


def tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None,
    key_password: SecretStr | None,
) -> ssl.SSLContext:
    """A client TLS context: the server verified against `ca_file` (or the system store),
    and this client's certificate when one is given."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(
            cert_file, key_file, key_password.get_secret_value() if key_password else None)
    return context


class MqttTlsSettings(TelemetrySettings):
    """TLS options of every MQTT client of the pipeline that talks to the device broker."""

    mqtt_tls: bool = False
    """Connect to the broker with TLS."""
    mqtt_tls_ca_file: str | None = None
    """CA bundle (PEM) that signed the broker's certificate; the system store when unset."""
    mqtt_tls_cert_file: str | None = None
    """This client's certificate (PEM), for a broker that requires one (`require_certificate`
    in Mosquitto)."""
    mqtt_tls_key_file: str | None = None
    """The private key (PEM) of `mqtt_tls_cert_file`."""
    mqtt_tls_key_password: SecretStr | None = None
    """Password of `mqtt_tls_key_file` when it is encrypted (never logged)."""

    def mqtt_tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for paho/aiomqtt, or None when TLS is off."""
        if not self.mqtt_tls:
            return None
        return tls_context(self.mqtt_tls_ca_file, self.mqtt_tls_cert_file,
                           self.mqtt_tls_key_file, self.mqtt_tls_key_password)


class ObservabilitySettings(TelemetrySettings):
    """Logging and the health/metrics port."""

    log_format: str = Field(default="auto")
    """`json` (one object a line), `text`, or `auto` (text on a terminal, JSON otherwise)."""
    log_level: str = "INFO"
    """Python log level name."""
