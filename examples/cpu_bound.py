"""A CPU-bound flow run on the sequential, process and Dask executors.

The flow::

    numbers -> crunch

``crunch`` spends about 20 ms of pure-Python arithmetic per number, which
threads cannot speed up (the interpreter runs one thread's Python at a
time). The process executor runs it in two worker processes; the Dask
executor starts a local cluster of two worker processes. The routines do
not change: only ``Flow(executor=...)`` does. ``crunch`` counts its results
and sums them in ``self._stats``; the job adds up those numeric changes
wherever the calls ran, so two calls may run at once.

Starting workers takes a moment, so each executor first runs a short job
(timed apart, as the start-up); the timings printed are of the job after it.

Run it with ``python examples/cpu_bound.py``. It must be run as a script
(the ``if __name__ == "__main__":`` guard below), because worker processes
import this file to find the routines.
"""

from __future__ import annotations

import time
from typing import Any

from flowforge import Flow, JobState, Routine

ITEMS = 100
CALL_SECONDS = 0.02


# [routines]
class Numbers(Routine):
    """Entry: emits ``number(value)`` for 0, 1, ... ``count - 1``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.start)
        self.define_event("number", ["value"])

    def start(self, count: int) -> None:
        for value in range(count):
            self.emit("number", value=value)


class Crunch(Routine):
    """Mixes each number ``loops`` (config) times; counts and sums the results."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.crunch)

    def crunch(self, value: int) -> None:
        digest = mix(value, self.get_config("loops", 1000))
        self._stats["results"] = self._stats.get("results", 0) + 1
        self._stats["checksum"] = self._stats.get("checksum", 0) + digest


def mix(seed: int, loops: int) -> int:
    """Pure-Python busy work: ``loops`` steps of a linear congruential generator."""
    state = seed
    for _ in range(loops):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
    return state


# [/routines]


def loops_per_call(seconds: float) -> int:
    """How many :func:`mix` steps take about ``seconds`` on this machine."""
    loops, best = 50_000, float("inf")
    for _ in range(3):
        start = time.perf_counter()
        mix(1, loops)
        best = min(best, time.perf_counter() - start)
    return max(1, int(loops * seconds / best))


# [main]
def build(executor: str, loops: int) -> Flow:
    """The flow on ``executor``, with two workers for the parallel ones."""
    options: dict[str, Any] = {} if executor == "sequential" else {"max_workers": 2}
    flow = Flow(flow_id=f"crunch-{executor}", executor=executor, **options)
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Crunch(), "crunch")
    flow.connect("numbers", "number", "crunch", "input")
    crunch = flow.routines["crunch"]
    crunch.set_config(loops=loops)
    # Two calls per worker at once: one runs while the next is on its way.
    crunch.max_concurrency = 4
    return flow


def timed(flow: Flow, count: int) -> tuple[JobState, float]:
    """Run one job over ``count`` numbers; the job and its wall time."""
    start = time.perf_counter()
    job = flow.execute("numbers", {"count": count})
    return job, time.perf_counter() - start


def main() -> None:
    loops = loops_per_call(CALL_SECONDS)
    print(f"CPU-bound flow: {ITEMS} items of ~{CALL_SECONDS * 1000:.0f} ms pure-Python work")
    jobs: dict[str, JobState] = {}
    times: dict[str, float] = {}
    for executor in ("sequential", "process", "dask"):
        with build(executor, loops) as flow:  # closing the flow stops its workers
            _, startup = timed(flow, 4)
            jobs[executor], times[executor] = timed(flow, ITEMS)
        speedup = times["sequential"] / times[executor]
        print(
            f"  {executor:<10} {times[executor]:5.2f} s  ({speedup:.1f}x)"
            f"  start-up job: {startup:.2f} s"
        )
    # The counters carry over from job to job, so these include the warm-up job's.
    totals = [job.routine_states["crunch"]["stats"] for job in jobs.values()]
    print("completed on every executor:", all(job.status == "completed" for job in jobs.values()))
    print(
        "calls per executor:",
        [job.routine_states["crunch"]["activations"] for job in jobs.values()],
    )
    print("same results on every executor:", all(t == totals[0] for t in totals))


# [/main]

if __name__ == "__main__":
    main()
