# The image of every pipeline component: `telemetry ingest`, `telemetry process`,
# `telemetry sink influxdb|tdengine` (the Helm chart in helm/ sets the arguments).
#   docker build -t telemetry-pipeline:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the distribution and its dependencies into a virtualenv -----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# Non-editable install: the image holds the built package, not the source tree. The build
# backend (setuptools, per pyproject.toml) is fetched by pip's build isolation.
RUN pip install . \
 && telemetry --help > /dev/null

# --- runtime: the virtualenv only, run as an unprivileged user -------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TELEMETRY_LOG_FORMAT=json
# uid/gid 10001 match the chart's securityContext (runAsUser/runAsGroup/fsGroup).
RUN groupadd --system --gid 10001 telemetry \
 && useradd --system --uid 10001 --gid telemetry --home-dir /home/telemetry --create-home \
      --shell /usr/sbin/nologin telemetry \
 && mkdir -p /var/lib/telemetry \
 && chown telemetry:telemetry /var/lib/telemetry
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/telemetry
USER 10001:10001
# Health/metrics ports: ingest, process, sink influxdb, sink tdengine, simulate.
EXPOSE 9101 9102 9103 9104 9105
ENTRYPOINT ["telemetry"]
CMD ["--help"]
