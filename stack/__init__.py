"""The local stack: real Mosquitto, Kafka (KRaft), InfluxDB and Prometheus on 127.0.0.1.

Installed on first use from the registries the machine reaches, cached outside the checkout,
started and stopped by PID. `telemetry stack up|down|status` and the pytest session fixture
both drive `LocalStack`.
"""
