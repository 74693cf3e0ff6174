"""CPU-bound work on the process and Dask executors, and what a remote call costs.

``cpu``
    200 items of ~20 ms pure-Python arithmetic each, ``numbers -> crunch``,
    run sequentially, on the process executor and on a local Dask cluster
    (two workers each, or one per CPU if fewer). Each parallel executor's
    first job (which starts its workers) is timed apart, as ``startup``;
    the figures are of the warm jobs after it. Speedup is sequential time
    over warm time; the target is 1.7x on two cores.
``cpu.coarse``
    The same with 20 items of ~100 ms, where a call's fixed cost matters less.
``dask.vs-plain``
    40 calls of ~60 ms as a flow on the Dask executor against the same
    function through ``client.map`` on the same local cluster: the flow's
    speedup as a share of plain Dask's, best of five rounds each (target 90%).
``remote-call``
    A tiny handler (count one, emit nothing) over many items, with one call
    in flight (``round-trip``: the latency of a remote call) and with eight
    (``pipelined``: its cost when calls overlap). The figure is the job's time
    per item minus the sequential executor's for the same job.

:func:`rows` returns plain dicts (``name``, ``label``, ``value``, ``unit``,
``target``, ``met``, ``note``) for ``benchmarks/run.py``; ``python -m benchmarks.cpu_bench
[--quick]`` prints them. The routines live in this module so worker
processes can import them (the repository root must be on ``sys.path``, as
``run.py`` arranges).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from flowforge import Executor, Flow, JobState, Routine

SPEEDUP_TARGET = 1.7
_US = 1e6


# -- routines --------------------------------------------------------------------------


class Numbers(Routine):
    """Entry: emits ``number(value)`` for ``range(count)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.start)
        self.define_event("number", ["value"])

    def start(self, count: int) -> None:
        """Emit ``count`` numbers."""
        for value in range(count):
            self.emit("number", value=value)


class Crunch(Routine):
    """Spends ``loops`` (config) steps of integer arithmetic on each number.

    It counts results and sums their digests in ``self._stats``: numeric
    counters are merged as deltas, so calls may run at the same time anywhere.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.crunch)

    def crunch(self, value: int) -> None:
        """Mix the number and add the digest up."""
        digest = mix(value, self.get_config("loops", 1000))
        self._stats["results"] = self._stats.get("results", 0) + 1
        self._stats["checksum"] = self._stats.get("checksum", 0) + digest


class Tick(Routine):
    """The tiny handler: counts the call and emits nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.tick)

    def tick(self, value: int) -> None:
        """Count one call."""
        self._stats["ticks"] = self._stats.get("ticks", 0) + 1


def mix(seed: int, loops: int) -> int:
    """Pure-Python busy work: ``loops`` steps of a linear congruential generator."""
    state = seed
    for _ in range(loops):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
    return state


def loops_for(seconds: float) -> int:
    """How many :func:`mix` steps take about ``seconds`` here (best of three)."""
    loops = 50_000
    best = min(_time(lambda: mix(1, loops)) for _ in range(3))
    return max(1, int(loops * seconds / best))


# -- flows -------------------------------------------------------------------------------


def workers() -> int:
    """Worker processes for the parallel executors: two, or one per CPU if fewer."""
    return max(1, min(2, os.cpu_count() or 1))


def parallel_executor(kind: str) -> Executor:
    """A ``"process"`` or ``"dask"`` executor of :func:`workers` workers.

    Its workers start with its first job.
    """
    return Flow(executor=kind, max_workers=workers()).executor


@contextlib.contextmanager
def quiet_start() -> Iterator[None]:
    """Starting a local Dask cluster warns when another one holds its HTTP port
    (8787) and takes another port; that does not concern the figures."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
        warnings.filterwarnings("ignore", r"unclosed <socket", ResourceWarning)
        yield


def cpu_flow(executor: str | Executor, loops: int) -> Flow:
    """``numbers -> crunch``, with up to two crunch calls per worker at once."""
    flow = Flow(executor=executor)
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Crunch(), "crunch")
    flow.connect("numbers", "number", "crunch", "input")
    crunch = flow.routines["crunch"]
    crunch.set_config(loops=loops)
    # Enough calls in flight that no worker waits on a round trip; the Dask
    # executor sends what is ready in one task per worker.
    crunch.max_concurrency = 8 * workers()
    return flow


def tick_flow(executor: str | Executor, in_flight: int) -> Flow:
    """``numbers -> tick`` with ``in_flight`` tick calls at most at once."""
    flow = Flow(executor=executor)
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Tick(), "tick")
    flow.connect("numbers", "number", "tick", "input")
    flow.routines["tick"].max_concurrency = in_flight
    return flow


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_job(flow: Flow, count: int) -> float:
    """Seconds one job over ``count`` numbers takes; it must complete."""
    start = time.perf_counter()
    job: JobState = flow.execute("numbers", {"count": count})
    elapsed = time.perf_counter() - start
    if job.status != "completed":
        raise RuntimeError(
            f"benchmark job on {flow.executor.name} ended {job.status}: {job.reason}"
        )
    return elapsed


# -- rows ---------------------------------------------------------------------------------


def row(
    name: str,
    label: str,
    value: float,
    unit: str,
    note: str,
    target: float | None = None,
    judged: bool = True,
) -> dict[str, Any]:
    """One result row; ``target`` is a minimum (``>=``)."""
    return {
        "name": name,
        "label": label,
        "value": value,
        "unit": unit,
        "target": None if target is None else f">= {target}",
        "met": None if target is None or not judged else value >= target,
        "note": note,
    }


#: (items, seconds per call) of the CPU-bound jobs, full and quick: the workload
#: the target is set for, and a coarser one where each call does more work.
_CPU = {"cpu": ((200, 0.02), (20, 0.005)), "cpu.coarse": ((20, 0.1), (4, 0.02))}


def cpu_rows(quick: bool, executors: dict[str, Executor]) -> list[dict[str, Any]]:
    """Sequential vs process vs Dask on the CPU-bound flows.

    The executors take turns, round after round, and each keeps its best
    round, so a moment of load on the machine does not favour one of them.
    """
    repeat = 1 if quick else 2
    rows = []
    for name, sizes in _CPU.items():
        items, call = sizes[quick]
        loops = loops_for(call)
        flows = {"sequential": cpu_flow("sequential", loops)}
        flows.update((kind, cpu_flow(executor, loops)) for kind, executor in executors.items())
        with quiet_start():
            startup = {kind: timed_job(flow, 2 * workers()) for kind, flow in flows.items()}
        best = dict.fromkeys(flows, float("inf"))
        for _ in range(repeat):
            for kind, flow in flows.items():
                best[kind] = min(best[kind], timed_job(flow, items))
        size = f"{items} items x ~{call * 1000:.0f} ms, {workers()} workers, best of {repeat}"
        if name == "cpu":
            rows.append(
                row("cpu.sequential", "CPU-bound job, sequential", best["sequential"], "s", size)
            )
        for kind in executors:
            if name == "cpu":
                rows += [
                    row(
                        f"cpu.{kind}.startup",
                        f"first job on {kind}, starting its workers",
                        startup[kind],
                        "s",
                        f"{2 * workers()} items",
                    ),
                    row(
                        f"cpu.{kind}",
                        f"CPU-bound job, {kind}",
                        best[kind],
                        "s",
                        f"{size}; after the first job",
                    ),
                ]
            rows.append(
                row(
                    f"{name}.{kind}.speedup",
                    f"{kind} speedup over sequential" + (", coarse calls" if name != "cpu" else ""),
                    best["sequential"] / best[kind],
                    "x",
                    f"{size}: sequential {best['sequential']:.2f} s / {kind} {best[kind]:.2f} s",
                    SPEEDUP_TARGET if name == "cpu" else None,
                    judged=not quick,
                )
            )
    return rows


#: Items per remote-call measurement: (round trip, pipelined), full and quick.
_TICKS = {"process": ((1000, 3000), (50, 100)), "dask": ((200, 600), (20, 40))}


def overhead_rows(quick: bool, executors: dict[str, Executor]) -> list[dict[str, Any]]:
    """Per-activation cost of a remote call, one call in flight and eight."""
    rows = []
    for kind, executor in executors.items():
        for label, in_flight, items in zip(
            ("round-trip", "pipelined"), (1, 8), _TICKS[kind][quick], strict=True
        ):
            local = timed_job(tick_flow("sequential", in_flight), items) / items
            flow = tick_flow(executor, in_flight)
            timed_job(flow, 2 * workers())
            remote = timed_job(flow, items) / items
            rows.append(
                row(
                    f"remote-call.{kind}.{label}",
                    f"cost of a remote call on {kind}, {in_flight} in flight",
                    (remote - local) * _US,
                    "µs/call",
                    f"tiny handler, {items} items, {in_flight} in flight: "
                    f"{remote * _US:.0f} µs/call minus sequential {local * _US:.1f} µs/call",
                )
            )
    return rows


#: (items, seconds per call, rounds) of the flow-against-plain-Dask comparison.
_VS_DASK = ((40, 0.06, 5), (8, 0.01, 1))
VS_DASK_TARGET = 0.9


def vs_dask_rows(quick: bool, executor: Executor) -> list[dict[str, Any]]:
    """The Dask executor against plain Dask (``client.map``) on the same cluster.

    Each round times the same CPU-bound calls three ways: sequentially here,
    as a flow on the Dask executor, and as ``client.map`` + ``gather`` of the
    same function. The figure is the flow's speedup as a share of plain
    Dask's, ``plain time / flow time`` over the best round of each (so a
    moment of load on a shared machine does not decide it); the note lists
    every round's share.
    """
    items, call, rounds = _VS_DASK[quick]
    loops = loops_for(call)
    flow = cpu_flow(executor, loops)
    client = executor.client()  # type: ignore[attr-defined]
    with quiet_start():
        timed_job(flow, 2 * workers())
    times: dict[str, list[float]] = {"sequential": [], "flow": [], "plain": []}
    for _ in range(rounds):
        times["sequential"].append(_time(lambda: [mix(i, loops) for i in range(items)]))
        times["flow"].append(timed_job(flow, items))
        times["plain"].append(
            _time(lambda: client.gather(client.map(mix, range(items), [loops] * items)))
        )
    best = {kind: min(seconds) for kind, seconds in times.items()}
    shares = [p / f for p, f in zip(times["plain"], times["flow"], strict=True)]
    spread = ", ".join(f"{s:.0%}" for s in shares)
    return [
        row(
            "dask.vs-plain",
            "Dask executor's speedup as a share of plain Dask's",
            best["plain"] / best["flow"],
            "x",
            f"{items} calls x ~{call * 1000:.0f} ms, {workers()} workers, best of {rounds}: "
            f"speedup over sequential {best['sequential'] / best['flow']:.2f}x as a flow, "
            f"{best['sequential'] / best['plain']:.2f}x with client.map; "
            f"share round by round: {spread}",
            VS_DASK_TARGET,
            judged=not quick,
        )
    ]


def rows(quick: bool) -> list[dict[str, Any]]:
    """Every row of this module: the CPU-bound workloads, remote-call overhead, and
    the Dask executor against plain Dask."""
    executors = {kind: parallel_executor(kind) for kind in ("process", "dask")}
    try:
        return (
            cpu_rows(quick, executors)
            + overhead_rows(quick, executors)
            + vs_dask_rows(quick, executors["dask"])
        )
    finally:
        for executor in executors.values():
            executor.close()


if __name__ == "__main__":
    for result in rows(quick="--quick" in sys.argv):
        print(f"{result['name']:<32} {result['value']:>10.3f} {result['unit']:<8} {result['note']}")
