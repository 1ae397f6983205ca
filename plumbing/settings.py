"""Typed settings from environment variables with the `TELEMETRY_` prefix, or a YAML file.

Every component declares one subclass of `TelemetrySettings`. Values come, highest first,
from: keyword arguments, environment variables (`TELEMETRY_<FIELD>`), the YAML file named by
`TELEMETRY_CONFIG_FILE`, then the field defaults. Field docstrings are the documentation:
`telemetry config` prints every option with its default.
"""

from __future__ import annotations

import os
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
        return conf


class ObservabilitySettings(TelemetrySettings):
    """Logging and the health/metrics port."""

    log_format: str = Field(default="auto")
    """`json` (one object a line), `text`, or `auto` (text on a terminal, JSON otherwise)."""
    log_level: str = "INFO"
    """Python log level name."""
