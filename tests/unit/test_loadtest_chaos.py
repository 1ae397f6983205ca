"""The chaos harness's counting and fault plan, on plain numbers: a reading deleted from what
is stored must count as lost, one stored twice as duplicated."""

from __future__ import annotations

import pytest

from loadtest.chaos import plan_faults
from loadtest.faults import FAULTS, KillComponent, PauseServer, RestartServer, parse_faults
from loadtest.seq_audit import audit_seqs


def test_a_complete_run_has_nothing_lost_or_duplicated() -> None:
    audit = audit_seqs({"a": 3, "b": 2}, {"a": [3, 1, 2], "b": [1, 2]})
    assert (audit.expected, audit.stored_points, audit.lost, audit.duplicated) == (5, 5, 0, 0)


def test_a_deleted_point_counts_as_lost() -> None:
    stored = {"a": [1, 2, 3, 4, 5], "b": [1, 2]}
    del stored["a"][2]  # seq 3 of device a never reached the database
    audit = audit_seqs({"a": 5, "b": 2}, stored)
    assert audit.lost == 1 and audit.duplicated == 0
    assert audit.lost_by_device == {"a": [3]}


def test_a_device_with_nothing_stored_loses_all_its_seqs_and_stretches_read_as_ranges() -> None:
    audit = audit_seqs({"a": 4, "b": 6}, {"b": [1, 2, 6]})
    assert audit.lost == 4 + 3
    assert audit.as_dict()["lost_by_device"] == {"a": ["1-4"], "b": ["3-5"]}


def test_a_seq_stored_twice_or_three_times_counts_each_extra_point() -> None:
    audit = audit_seqs({"a": 3}, {"a": [1, 2, 2, 3, 3, 3]})
    assert audit.lost == 0 and audit.duplicated == 3
    assert audit.duplicated_by_device == {"a": [2, 3]}


def test_seqs_beyond_the_last_sent_or_of_unknown_devices_are_unexpected() -> None:
    audit = audit_seqs({"a": 2}, {"a": [1, 2, 7], "z": [1]})
    assert audit.unexpected == 2 and audit.lost == 0


def test_faults_parse_in_order_with_pause_seconds() -> None:
    faults = parse_faults("kill-ingest, pause-kafka:15,restart-influxdb")
    assert [f.name for f in faults] == ["kill-ingest", "pause-kafka", "restart-influxdb"]
    assert isinstance(faults[0], KillComponent) and faults[0].component == "ingest"
    assert isinstance(faults[1], PauseServer) and faults[1].seconds == 15
    assert isinstance(faults[2], RestartServer) and faults[2].server == "influxdb"


def test_all_is_every_fault_in_order() -> None:
    assert [f.name for f in parse_faults("all")] == list(FAULTS)


@pytest.mark.parametrize("text", ["", "kill-everything", "kill-ingest:3", "pause-kafka:0"])
def test_bad_fault_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_faults(text)


def test_the_plan_repeats_the_faults_in_order_with_even_gaps() -> None:
    plan = plan_faults(parse_faults("kill-ingest,kill-process"), times=2, duration_s=50)
    assert [f.name for f in plan.faults] == [
        "kill-ingest", "kill-process", "kill-ingest", "kill-process",
    ]
    assert plan.gap_s == 10
