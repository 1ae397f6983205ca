"""Peak memory and CPU time from /proc, including awkward command names."""

from __future__ import annotations

import os
from pathlib import Path

from loadtest.proc_stats import cpu_seconds, peak_rss_mib, rss_mib


def test_reads_a_process_whose_name_has_spaces_and_parentheses(tmp_path: Path) -> None:
    pid_dir = tmp_path / "4242"
    pid_dir.mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    # fields 14 and 15 (utime, stime) are 3 and 2 seconds' worth of ticks
    (pid_dir / "stat").write_text(
        f"4242 (evil ) name (x)) S 1 1 1 0 -1 0 0 0 0 0 {3 * ticks} {2 * ticks} 0 0 20 0 1 0\n"
    )
    (pid_dir / "status").write_text("Name:\tevil\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n")
    assert cpu_seconds(4242, tmp_path) == 5.0
    assert peak_rss_mib(4242, tmp_path) == 200.0
    assert rss_mib(4242, tmp_path) == 100.0


def test_a_gone_process_reads_as_none(tmp_path: Path) -> None:
    assert cpu_seconds(99999, tmp_path) is None
    assert peak_rss_mib(99999, tmp_path) is None


def test_this_process_has_memory_and_has_used_cpu() -> None:
    sum(i * i for i in range(200_000))
    peak, now = peak_rss_mib(os.getpid()), rss_mib(os.getpid())
    assert peak is not None and now is not None and peak >= now > 1
    cpu = cpu_seconds(os.getpid())
    assert cpu is not None and cpu > 0
