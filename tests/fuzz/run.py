"""`make fuzz`: a million (by default) MQTT messages through ingest, the processors and the
InfluxDB line encoder, checked against InfluxDB's own parser; several processes.

    python -m tests.fuzz.run [--inputs N] [--processes P] [--seed S]

Prints inputs, rejects by reason, crashes and injected points (a line InfluxDB would read as
anything but the reading it was written for), with the first examples of each; exits 1 on
any crash or injected point. Worker k of a run uses seed S+k, so a finding can be replayed.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter

from tests.fuzz.pipeline import Outcome

#: Examples of each kind of failure a worker keeps (all are counted).
EXAMPLES_KEPT = 20
#: Dead-letter bytes one input may cause, per input byte (plus a fixed allowance per letter).
MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE = 64


def work(args: tuple[int, int]) -> tuple[Outcome, Counter[str], int, int]:
    """(outcome, inputs by source, crashes, injected) of `count` inputs from `seed`."""
    seed, count = args
    from tests.fuzz.inputs import Inputs
    from tests.fuzz.pipeline import Pipeline

    # the crashes are counted and shown once at the end, not logged as they happen
    for name in ("processors", "sinks", "ingest"):
        logging.getLogger(name).propagate = False
    pipeline = Pipeline()
    outcome = Outcome()
    sources: Counter[str] = Counter()
    crashes = injected = 0
    for n, (source, topic, payload) in enumerate(Inputs(seed)):
        if n >= count:
            break
        sources[source] += 1
        before = (len(outcome.crashes), len(outcome.injected))
        pipeline.run(topic, payload, outcome)
        crashes += len(outcome.crashes) - before[0]
        injected += len(outcome.injected) - before[1]
        del outcome.crashes[EXAMPLES_KEPT:], outcome.injected[EXAMPLES_KEPT:]
    before_flush = len(outcome.injected)
    pipeline.flush(outcome)
    injected += len(outcome.injected) - before_flush
    pipeline.close()
    return outcome, sources, crashes, injected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--chunk", type=int, default=20_000, help="inputs per task")
    args = parser.parse_args(argv)

    started = time.monotonic()
    tasks = []
    left, k = args.inputs, 0
    while left > 0:
        n = min(args.chunk, left)
        tasks.append((args.seed + k, n))
        left -= n
        k += 1
    total = Outcome()
    sources: Counter[str] = Counter()
    crashes = injected = 0
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        for outcome, by_source, c, i in pool.imap_unordered(work, tasks):
            total.merge(outcome)
            sources.update(by_source)
            crashes += c
            injected += i
            print(f"  {total.inputs:>9,} inputs, {crashes} crashes, {injected} injected "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    elapsed = time.monotonic() - started

    print(f"\nfuzz: seeds {args.seed}..{args.seed + len(tasks) - 1}, {args.processes} processes, "
          f"{elapsed:.0f} s ({total.inputs / elapsed:,.0f} inputs/s)")
    print(f"inputs: {total.inputs:,} ({total.input_bytes:,} bytes)")
    for source, n in sorted(sources.items()):
        print(f"  {source:<14} {n:>10,}")
    print(f"stored points (encoded and parsed back): {total.stored_points:,}")
    print(f"dead letters: {total.dead_letters:,} ({total.dead_letter_bytes:,} bytes); worst "
          f"input: {total.worst_dead_letter_ratio:.1f} dead-letter bytes per input byte")
    print("rejects by reason:")
    for reason, n in sorted(total.rejects.items(), key=lambda kv: -kv[1]):
        print(f"  {reason:<22} {n:>10,}")
    print(f"crashes: {crashes}")
    for example in total.crashes[:EXAMPLES_KEPT]:
        print("  " + example.replace("\n", "\n    "))
    print(f"injected points: {injected}")
    for example in total.injected[:EXAMPLES_KEPT]:
        print("  " + example)
    # a dead letter carries its original (cut to 512 KiB), a detail (cut to 8,000 chars) and
    # the metrics listed (cut to 256 KiB): bounded per input byte
    too_big = total.worst_dead_letter_ratio > MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE
    if too_big:
        print(f"dead letters above {MAX_DEAD_LETTER_BYTES_PER_INPUT_BYTE} bytes per input byte")
    return 1 if crashes or injected or too_big else 0


if __name__ == "__main__":
    sys.exit(main())
