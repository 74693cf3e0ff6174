"""Scheduling overhead per task of a 1,000-task DAG, beside a plain topological loop.

The DAG: task ``i`` depends on tasks ``i - 1``, ``i // 2`` and ``i // 3``
(those that exist and differ), so it has roots, long chains and fan-in. Every
task calls the same cheap function with its dependencies' results by name.
The baseline runs the same calls in a :class:`graphlib.TopologicalSorter`
loop, in one thread, with no job state. The figure is the job's time per
task (sequential executor, the flow built once beforehand), and the ratio is
FlowForge's time over the baseline's. Building the flow (1,000
``flow.task`` calls, each checking for cycles) is reported on its own.
"""

from __future__ import annotations

import graphlib
import time
from typing import Any

from flowforge import Flow

from .harness import Settings, benchmark, best_of


def work(**results: Any) -> int:
    """One task: 1 + the sum of its dependencies' results (mod a prime)."""
    return (1 + sum(results.values())) % 1_000_003


def dependencies(count: int) -> dict[str, list[str]]:
    """Each task's dependencies, by name."""
    return {
        f"t{i}": [f"t{d}" for d in sorted({i - 1, i // 2, i // 3}) if 0 <= d < i]
        for i in range(count)
    }


def build(dag: dict[str, list[str]]) -> Flow:
    """The DAG as a flow of tasks."""
    flow = Flow(flow_id="task-bench", retention=10)
    for name, deps in dag.items():
        flow.task(work, name=name, depends_on=deps)
    return flow


def run_flow(flow: Flow, count: int) -> Any:
    """One job; its result for the last task."""
    job = flow.execute()
    if job.status != "completed":
        raise RuntimeError(f"benchmark job ended {job.status}: {job.reason}")
    return job.output(f"t{count - 1}")


def run_plain(dag: dict[str, list[str]]) -> Any:
    """The same calls in a topological-sort loop."""
    results: dict[str, int] = {}
    for name in graphlib.TopologicalSorter(dag).static_order():
        results[name] = work(**{d: results[d] for d in dag[name]})
    return results[f"t{len(dag) - 1}"]


@benchmark("tasks", "a 1,000-task DAG: per-task overhead beside a graphlib loop")
def tasks(settings: Settings) -> list[dict[str, Any]]:
    """Per-task time of a DAG job, and of building the flow."""
    count, repeat = settings.pick((1000, 5), (50, 1))
    dag = dependencies(count)
    start = time.perf_counter()
    flow = build(dag)
    built = time.perf_counter() - start
    if run_flow(flow, count) != run_plain(dag):
        raise RuntimeError("the flow and the plain loop disagree")
    job = best_of(lambda: run_flow(flow, count), repeat) / count
    plain = best_of(lambda: run_plain(dag), max(repeat, 3)) / count
    edges = sum(len(d) for d in dag.values())
    return [
        {
            "name": "tasks.per-task",
            "label": f"DAG job, per task ({count:,} tasks)",
            "value": job * 1e6,
            "unit": "µs/task",
            "baseline": plain * 1e6,
            "ratio": job / plain,
            "note": f"{count:,} tasks, {edges:,} dependencies, sequential executor, best of "
            f"{repeat}; baseline: graphlib.TopologicalSorter loop calling the same function",
        },
        {
            "name": "tasks.build",
            "label": f"building the flow, per task ({count:,} tasks)",
            "value": built / count * 1e6,
            "unit": "µs/task",
            "note": "flow.task() with depends_on, cycle check included, once",
        },
    ]


if __name__ == "__main__":
    for row in tasks(Settings()):
        baseline = row.get("baseline")
        extra = f"  plain {baseline:.2f} µs, ratio {row['ratio']:.1f}x" if baseline else ""
        print(f"{row['label']:<45} {row['value']:>9.2f} {row['unit']}{extra}")
