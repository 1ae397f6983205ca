"""The CPU table (µs per reading per process) and the steady window of a backlog replay."""

from __future__ import annotations

import pytest

from loadtest.cpu_table import CpuProbe, CpuSample, cpu_table
from loadtest.steady_window import STEADY, WHOLE, steady_window


def test_cpu_per_reading_per_process_and_the_pipeline_total() -> None:
    before = CpuSample(10.0, {"ingest": 1.0, "process": 2.0, "sink": 0.5, "mosquitto": 3.0,
                              "kafka": 100.0, "influxdb": 50.0})
    after = CpuSample(30.0, {"ingest": 3.0, "process": 12.0, "sink": 1.0, "mosquitto": 4.0,
                             "kafka": 104.0, "influxdb": 52.0})
    table = cpu_table(before, after, readings=100_000, extra_seconds={"simulate": 8.0})
    rows = table["rows"]
    assert list(rows) == ["ingest", "process", "sink", "mosquitto", "kafka", "influxdb",
                          "simulate"]
    assert rows["ingest"] == {"role": "component", "cpu_seconds": 2.0, "us_per_reading": 20.0}
    assert rows["process"]["us_per_reading"] == 100.0
    assert rows["kafka"] == {"role": "server", "cpu_seconds": 4.0, "us_per_reading": 40.0}
    assert rows["simulate"]["role"] == "load" and rows["simulate"]["us_per_reading"] == 80.0
    # components and servers, not the load
    assert table["pipeline_us_per_reading"] == 20 + 100 + 5 + 10 + 40 + 20
    assert table["complete"] and table["window_s"] == 20.0 and table["readings"] == 100_000


def test_a_process_not_seen_in_both_samples_gets_no_figure_rather_than_zero() -> None:
    before = CpuSample(0.0, {"sink-influxdb": None, "kafka": 1.0})
    after = CpuSample(5.0, {"sink": 2.0, "kafka": 0.5})  # kafka restarted: its clock went back
    table = cpu_table(before, after, readings=1000)
    assert table["rows"]["sink"]["us_per_reading"] is None
    assert table["rows"]["kafka"]["cpu_seconds"] is None
    assert table["pipeline_us_per_reading"] is None and not table["complete"]
    assert cpu_table(after, after, readings=0)["rows"]["sink"]["us_per_reading"] is None


def test_the_probe_reads_each_named_pid_and_names_the_sink_sink() -> None:
    seconds = {11: 1.5, 12: 7.25}
    probe = CpuProbe(lambda: {"sink-influxdb": 11, "kafka": 12, "process": None},
                     read=seconds.get)
    sample = probe.sample(3.0)
    assert sample.seconds == {"sink": 1.5, "kafka": 7.25, "process": None}


def test_the_steady_window_is_10_to_90_percent_of_the_backlog() -> None:
    done = [0, 0, 0, 500, 1500, 3000, 4500, 6000, 7500, 9000, 10_000, 10_000]
    w = steady_window(done, 10_000)
    assert w is not None and (w.start, w.end, w.how) == (4, 9, STEADY) and w.steady


def test_too_few_progress_steps_give_the_whole_run_and_say_so() -> None:
    # Faust committing a small backlog in two commits: one step inside 10%-90% is no rate
    w = steady_window([0, 0, 0, 0, 1800, 1800, 2000], 2000)
    assert w is not None and (w.start, w.end, w.how) == (0, 6, WHOLE) and not w.steady
    w = steady_window([0, 0, 2000, 2000], 2000)
    assert w is not None and (w.start, w.end) == (0, 2)
    w = steady_window([0, 0, 0], 2000)  # nothing done at all
    assert w is not None and w.how == WHOLE and w.end > w.start
    assert steady_window([0], 10) is None
    assert "larger --count" in WHOLE


def test_commit_steps_inside_the_window_count_as_progress() -> None:
    w = steady_window([0, 0, 1000, 1000, 4000, 4000, 7000, 7000, 10_000], 10_000)
    assert w is not None and (w.start, w.end, w.how) == (2, 8, STEADY)


@pytest.mark.parametrize("done", [[0, 0, 7, 7], [0, 3, 3], [0, 0], [5, 5, 5], [0, 1, 2, 3, 4]])
def test_a_window_never_runs_backwards(done: list[int]) -> None:
    w = steady_window(done, max(done) or 1)
    assert w is not None and w.end > w.start
