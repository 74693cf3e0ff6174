"""Live jobs: submit throughput into an open job, and submit-to-last-stage latency.

Throughput: ``count`` items submitted one by one into an open job of a
3-stage pipeline (sequential executor, no store), beside the same items pushed
through a ``queue.Queue`` to plain worker threads doing the same three steps
(one thread per stage, joined by queues). Latency: one item submitted into an
idle open job, timed until the last stage has it, best of ``repeat``. A
tracemalloc peak of a long stream through a capacity-bounded pipeline shows
memory staying bounded.

:func:`rows` returns plain dicts shaped like ``benchmarks.harness.Row``.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
import tracemalloc
from typing import Any

from flowforge import Flow, Routine


class _Step(Routine):
    """Adds one to ``n`` and passes it on."""

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__()
        self.define_slot("in", handler=self.step, capacity=capacity)
        self.define_event("out", ["n"])

    def step(self, n: int) -> None:
        self.emit("out", n=n + 1)


class _Last(Routine):
    """Counts items; sets ``arrived`` on each."""

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__()
        self.define_slot("in", handler=self.last, capacity=capacity)
        self.count = 0
        self.arrived = threading.Event()

    def last(self, n: int) -> None:
        self.count += 1
        self.arrived.set()


def _pipeline(capacity: int | None = None) -> Flow:
    return Flow.pipeline(
        "live-bench",
        [("a", _Step(capacity)), ("b", _Step(capacity)), ("c", _Last(capacity))],
    )


def submit_rate(count: int) -> float:
    """Items per second submitted into (and processed by) an open job."""
    flow = _pipeline()
    gc.collect()
    start = time.perf_counter()
    with flow.start(keep_open=True) as job:
        for n in range(count):
            job.submit({"n": n})
    elapsed = time.perf_counter() - start
    last = flow.get_routine("c")
    assert isinstance(last, _Last) and last.count == count
    return count / elapsed


def queue_rate(count: int) -> float:
    """Items per second through three plain threads joined by ``queue.Queue``."""
    queues: list[queue.Queue[int | None]] = [queue.Queue() for _ in range(3)]
    done = [0]

    def stage(i: int) -> None:
        while (item := queues[i].get()) is not None:
            if i < 2:
                queues[i + 1].put(item + 1)
            else:
                done[0] += 1
        if i < 2:
            queues[i + 1].put(None)

    threads = [threading.Thread(target=stage, args=(i,)) for i in range(3)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for n in range(count):
        queues[0].put(n)
    queues[0].put(None)
    for thread in threads:
        thread.join()
    assert done[0] == count
    return count / (time.perf_counter() - start)


def latency(repeat: int) -> float:
    """Best seconds from ``submit`` to the last stage, for one item into an idle job."""
    flow = _pipeline()
    last = flow.get_routine("c")
    assert isinstance(last, _Last)
    best = float("inf")
    with flow.start(keep_open=True) as job:
        for n in range(repeat):
            last.arrived.clear()
            time.sleep(0.002)  # the job is idle, waiting for input
            start = time.perf_counter()
            job.submit({"n": n})
            last.arrived.wait(10)
            best = min(best, time.perf_counter() - start)
    return best


def bounded_peak(count: int, capacity: int = 100) -> float:
    """Peak traced memory (MiB) of ``count`` items through a capacity-bounded pipeline."""
    flow = _pipeline(capacity)
    tracemalloc.start()
    try:
        with flow.start(keep_open=True) as job:
            for n in range(count):
                job.submit({"n": n})
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def rows(quick: bool) -> list[dict[str, Any]]:
    """The live-job rows for the results table."""
    count = 5_000 if quick else 50_000
    ours = max(submit_rate(count) for _ in range(1 if quick else 3))
    plain = max(queue_rate(count) for _ in range(1 if quick else 3))
    seconds = latency(20 if quick else 200)
    peak = bounded_peak(count // 5)
    return [
        {
            "name": "live.submit",
            "label": "submit into an open 3-stage job",
            "value": ours,
            "unit": "items/s",
            "baseline": plain,
            "ratio": plain / ours,
            "note": f"{count} items; baseline: queue.Queue to 3 plain threads",
        },
        {
            "name": "live.latency",
            "label": "submit to last stage, one item",
            "value": seconds * 1e6,
            "unit": "µs",
            "note": "idle open job, sequential executor, best run",
        },
        {
            "name": "live.memory",
            "label": "tracemalloc peak, capacity 100 per stage",
            "value": peak,
            "unit": "MiB",
            "note": f"{count // 5} items streamed",
        },
    ]
