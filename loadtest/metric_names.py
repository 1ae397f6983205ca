"""Which Prometheus metrics the live view and the benchmark read: the one place to adjust.

The components' metric names are owned by their packages, so each figure is found by words in
the family name rather than an exact name; alternatives are tried in order and the first that
matches a family wins. A figure no alternative matches is shown as "n/a".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricMatch:
    """A family matches when its name contains every word of `words` and none of `unless`."""

    words: tuple[str, ...]
    unless: tuple[str, ...] = ("bytes", "seconds", "latency", "error", "fail", "batches")
    #: only samples with these label values count (a sample without the label counts too)
    where: tuple[tuple[str, str], ...] = ()

    def matches(self, family_name: str) -> bool:
        name = family_name.lower()
        return all(w in name for w in self.words) and not any(u in name for u in self.unless)


#: MQTT telemetry messages ingest received (ingest/metrics.py:
#: telemetry_ingest_messages_received_total{kind="telemetry"|"metadata"}).
INGEST_RECEIVED: tuple[MetricMatch, ...] = (
    MetricMatch(("ingest", "messages", "received"), where=(("kind", "telemetry"),)),
    MetricMatch(("ingest", "received")),
    MetricMatch(("mqtt", "messages")),
)
#: Points the InfluxDB sink wrote (sinks/metrics.py: telemetry_sink_points_written_total). It
#: counts derived points too (dew_point), which InfluxDB merges into the measured point.
SINK_POINTS_WRITTEN: tuple[MetricMatch, ...] = (
    MetricMatch(("sink", "points", "written")),
    MetricMatch(("points", "written")),
    MetricMatch(("points", "stored")),
)
#: Readings the processors took in from telemetry.raw (processors/metrics.py:
#: telemetry_processor_records_in_total{agent="readings"}, the one-hop chain; `validate` was
#: the first of the four agents before it).
PROCESSOR_IN: tuple[MetricMatch, ...] = (
    MetricMatch(("processor", "records", "in"), where=(("agent", "readings"),)),
    MetricMatch(("processor", "records", "in"), where=(("agent", "validate"),)),
)
#: Histogram of ingest receive time -> database accepted, per point (sinks/metrics.py:
#: telemetry_sink_end_to_end_seconds).
SINK_END_TO_END: tuple[MetricMatch, ...] = (MetricMatch(("sink", "end_to_end"), unless=()),)
#: Telemetry messages the simulator sent (its own metric, see loadtest/simulator.py).
SIMULATOR_SENT: tuple[MetricMatch, ...] = (MetricMatch(("simulator", "messages", "sent")),)
#: Rejects by reason, counted by every component (plumbing/dead_letters.py).
REJECTED: tuple[MetricMatch, ...] = (MetricMatch(("telemetry", "rejected")),)
REJECTED_REASON_LABEL = "reason"
