"""Interpreter instructions per job, per hop and per item, counted by callgrind.

Wall-clock figures move with the load on the machine; instruction counts do
not, so they show what a change to the engine's hot path is worth even on a
shared host. Needs valgrind; not part of ``make bench``::

    PYTHONPATH=$PWD python benchmarks/instructions.py             # every workload
    PYTHONPATH=$PWD python benchmarks/instructions.py hop stream  # some

Each workload builds its flow, runs 20 jobs to warm up, turns the garbage
collector off, then runs N jobs; the figure is the difference between two
values of N, divided by the difference (so start-up and the build cancel
out). ``hop`` is the marginal hop: a 40-routine chain's job minus a
10-routine chain's, over the 30 extra routines.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

#: Flow -> (maker in benchmarks.routines, its size, entry routine, entry params).
_FLOWS = {
    "chain1": ("chain_flow", 1, "s0", {"value": 0}),
    "chain10": ("chain_flow", 10, "s0", {"value": 0}),
    "chain40": ("chain_flow", 40, "s0", {"value": 0}),
    "stream": ("stream_flow", 3, "source", {"count": 1000}),
    "fanout": ("fan_out_flow", 16, "source", {"value": 0}),
}

#: Reported figure -> (label, [(flow, sign)], units per job).
FIGURES: dict[str, tuple[str, list[tuple[str, int]], int]] = {
    "job1": ("1-routine job, per job", [("chain1", 1)], 1),
    "job10": ("10-routine chain, per job", [("chain10", 1)], 1),
    "hop": ("marginal hop ((40-hop job - 10-hop job) / 30)", [("chain40", 1), ("chain10", -1)], 30),
    "stream": ("stream through 3 relays, per item", [("stream", 1)], 1000),
    "fanout": ("fan-out 1 -> 16 -> join, per job", [("fanout", 1)], 1),
}

_FEW, _MANY = 20, 120


def run_inner(flow_name: str, jobs: int) -> None:
    """Build ``flow_name``'s flow, warm it up, then run ``jobs`` jobs with the collector off."""
    from benchmarks import routines

    maker, size, entry, params = _FLOWS[flow_name]
    flow: Any = getattr(routines, maker)(size)
    for _ in range(20):
        flow.execute(entry, params)
    gc.collect()
    gc.disable()
    for _ in range(jobs):
        flow.execute(entry, params)


def count(flow_name: str, jobs: int) -> int:
    """Instructions callgrind counts for a whole run of ``run_inner(flow_name, jobs)``."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--inner",
            flow_name,
            str(jobs),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def per_job(flow_name: str) -> float:
    """Instructions per job of ``flow_name`` (the difference of two runs)."""
    return (count(flow_name, _MANY) - count(flow_name, _FEW)) / (_MANY - _FEW)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--inner"]:
        run_inner(argv[1], int(argv[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    names = argv or list(FIGURES)
    unknown = [name for name in names if name not in FIGURES]
    if unknown:
        print(f"unknown figure(s) {unknown}; known: {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    jobs: dict[str, float] = {}
    for name in names:
        label, parts, units = FIGURES[name]
        total = 0.0
        for flow_name, sign in parts:
            if flow_name not in jobs:
                jobs[flow_name] = per_job(flow_name)
            total += sign * jobs[flow_name]
        print(f"{name:8s} {total / units:>12,.0f} instructions  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
