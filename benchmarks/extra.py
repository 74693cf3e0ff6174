"""Registers the durable-store, live-job, worker, CPU-bound and service workloads.

Their modules (``store_bench``, ``live_bench``, ``worker_bench``, ``cpu_bench``,
``service_bench``) measure
and return rows; this module only names them for ``run.py`` and ``--only``.
"""

from __future__ import annotations

from typing import Any

from benchmarks import cpu_bench, live_bench, service_bench, store_bench, worker_bench
from benchmarks.harness import Settings, benchmark


@benchmark("store", "the stream workload with no store, grouped commits, a commit per call")
def store(settings: Settings) -> list[dict[str, Any]]:
    """Stream throughput with and without the SQLite store."""
    return store_bench.rows(settings.quick)


@benchmark("live", "submit throughput into an open job vs queue.Queue; submit latency")
def live(settings: Settings) -> list[dict[str, Any]]:
    """Live jobs: submit rate, latency and bounded memory."""
    return live_bench.rows(settings.quick)


@benchmark(
    "workers",
    "queued jobs drained by 1, 2 and 4 worker processes, on SQLite and PostgreSQL",
    cpu_bound=False,
)
def workers(settings: Settings) -> list[dict[str, Any]]:
    """Queued-job throughput per number of workers."""
    return worker_bench.rows(settings.quick)


@benchmark(
    "cpu",
    "CPU-bound handlers: sequential vs process vs Dask, remote-call overhead",
    cpu_bound=False,
)
def cpu(settings: Settings) -> list[dict[str, Any]]:
    """Speedups of the parallel executors on pure-Python work."""
    return [_as_row(row) for row in cpu_bench.rows(settings.quick)]


@benchmark(
    "service",
    "flowforge serve under load: 50 pollers and 20 event streams while 10 jobs run",
    cpu_bound=False,
)
def service(settings: Settings) -> list[dict[str, Any]]:
    """Poll latency and rate of the REST API, with exact job results and complete streams."""
    return service_bench.rows(settings.quick)


def _as_row(row: dict[str, Any]) -> dict[str, Any]:
    # cpu_bench writes targets as text (">= 1.7") and has no separate label.
    out = {"label": row["name"], **row}
    target = row.get("target")
    if isinstance(target, str):
        op, _, limit = target.partition(" ")
        out["target"] = {"op": op, "limit": float(limit)}
    return out
