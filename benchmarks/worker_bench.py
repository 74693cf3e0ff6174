"""Queued-job throughput: ``flowforge worker`` processes draining a queue, 1, 2 and 4 of them.

``jobs`` small jobs (``items`` values through ``flowforge.testing`` routines:
Source -> Double -> Collect) are submitted to a store; then ``n`` worker
processes (``flowforge worker --drain``, one job at a time each) claim and
run them until the queue is empty. The figure is jobs per second from the
first job's start to the last job's end, as the store recorded them, so
the workers' start-up (importing Python) is not counted. Claiming, leases,
heartbeats and every commit are.

Stores: an SQLite file in a temporary directory, and PostgreSQL on the server
``FLOWFORGE_BENCH_POSTGRES`` names, or else (full runs) a throwaway local one
as ``store_bench`` starts it. A quick run measures one worker on SQLite only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from flowforge import Flow
from flowforge.store import open_store
from flowforge.testing import Collect, Double, Source

from .store_bench import postgres_server

_ROOT = Path(__file__).resolve().parent.parent


def job_flow() -> Flow:
    """``src -> double -> sink``, the flow every queued job runs."""
    flow = Flow(flow_id="bench-queue")
    flow.add_routine(Source(), "src")
    flow.add_routine(Double(), "double")
    flow.add_routine(Collect(), "sink")
    flow.connect("src", "out", "double", "in")
    flow.connect("double", "out", "sink", "in")
    return flow


def drain(url: str, jobs: int, items: int, workers: int) -> float:
    """Queue ``jobs`` jobs in ``url``, drain them with ``workers`` processes; jobs per second."""
    with open_store(url) as store:
        flow = job_flow()
        for _ in range(jobs):
            flow.submit({"values": list(range(items))}, entry_routine_id="src", store=store)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*sys.path]))}
        command = [sys.executable, "-m", "flowforge.cli", "worker", "--store", url]
        procs = [
            subprocess.Popen([*command, "--drain", "-q", "--poll", "0.05"], env=env, cwd=_ROOT)
            for _ in range(workers)
        ]
        for proc in procs:
            if proc.wait(timeout=600) != 0:
                raise RuntimeError(f"a benchmark worker exited {proc.returncode}")
        done = store.list_jobs(flow_id="bench-queue")
    if len(done) != jobs or any(s.status != "completed" for s in done):
        raise RuntimeError("benchmark jobs did not all complete")
    first = min(s.started_at or s.created_at for s in done)
    last = max(s.finished_at or s.updated_at for s in done)
    return jobs / max(last - first, 1e-9)


def rows(quick: bool) -> list[dict[str, Any]]:
    """Jobs per second per store and number of workers, beside one worker's rate."""
    jobs, items, counts = (4, 5, (1,)) if quick else (120, 20, (1, 2, 4))
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flowforge-bench-") as tmp:
        urls = {"sqlite": lambda: f"sqlite:///{Path(tmp) / f'{uuid.uuid4().hex}.db'}"}
        with postgres_server(quick) as postgres:
            if postgres is not None:
                base = postgres
                urls["postgres"] = lambda: f"{base}?schema=bench_{uuid.uuid4().hex[:10]}"
            for kind, make in urls.items():
                single = None
                for count in counts:
                    rate = drain(make(), jobs, items, count)
                    single = rate if single is None else single
                    out.append(_row(kind, count, rate, single, jobs, items))
    return out


def _row(
    kind: str, workers: int, rate: float, single: float, jobs: int, items: int
) -> dict[str, Any]:
    return {
        "name": f"workers.{kind}.{workers}",
        "label": f"queued jobs, {workers} worker process(es), {kind}",
        "value": rate,
        "unit": "jobs/s",
        "baseline": single if workers > 1 else None,
        "baseline_unit": "jobs/s" if workers > 1 else "",
        "ratio": None if workers == 1 else single / rate,
        "target": None,
        "note": f"{jobs} jobs of {items} items; baseline: 1 worker"
        + (f"; {rate / single:.2f}x" if workers > 1 else ""),
    }


if __name__ == "__main__":
    for row in rows(quick=False):
        print(f"{row['label']:<55} {row['value']:>8,.1f} jobs/s  {row['note']}")
