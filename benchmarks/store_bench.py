"""Stream throughput with no store, with grouped commits, and with a commit per activation.

The workload is the engine's stream benchmark: one handler emits ``count``
items through 3 relaying routines (``count * 3`` deliveries), run with the
sequential executor. Each variant runs the same flow; the stores are
:class:`~flowforge.store.SQLiteStore` files in a temporary directory, with
their default settings (``synchronous="normal"``, WAL), and a
:class:`~flowforge.store.PostgresStore` with grouped commits (its default),
on the server ``FLOWFORGE_BENCH_POSTGRES`` names (a URL) or else, in full
runs where PostgreSQL is installed, a throwaway local server started as the
tests start theirs (``tests/pg_server.py``, ``fsync=off``). Runs of the
variants are interleaved and the best of each is kept, so a busy machine
slows them alike.

:func:`rows` returns plain dicts shaped like ``benchmarks.harness.Row``
(``target`` is ``{"op": ..., "limit": ...}`` or ``None``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowforge import Flow
from flowforge.store import SQLiteStore, Store, open_store
from tests import pg_server

from .routines import stream_flow

_RELAYS = 3
_VARIANTS = ("memory", "grouped", "activation", "postgres")
_POSTGRES_URL = "FLOWFORGE_BENCH_POSTGRES"
_SCHEMA = "flowforge_bench"


def _run(flow: Flow, count: int, store: Store | None) -> float:
    gc.collect()
    start = time.perf_counter()
    job = flow.execute("source", {"count": count}, store=store)
    elapsed = time.perf_counter() - start
    if job.status != "completed":
        raise RuntimeError(f"benchmark job ended {job.status}: {job.reason}")
    return elapsed


def measure(count: int, repeat: int, postgres: str | None = None) -> dict[str, float]:
    """Best seconds per variant over ``repeat`` interleaved rounds.

    A commit per activation is slow and steady, so it runs once. The
    PostgreSQL variant runs only given a server's URL (``postgres``).
    """
    flow = stream_flow(_RELAYS)
    best = dict.fromkeys(_VARIANTS, float("inf"))
    with tempfile.TemporaryDirectory(prefix="flowforge-bench-") as tmp:
        for round_ in range(repeat):
            for variant in _VARIANTS:
                if (variant == "activation" and round_ > 0) or (
                    variant == "postgres" and postgres is None
                ):
                    continue
                seconds = _timed(flow, count, variant, Path(tmp), postgres)
                best[variant] = min(best[variant], seconds)
    return best


def _timed(flow: Flow, count: int, variant: str, tmp: Path, postgres: str | None) -> float:
    if variant == "memory":
        return _run(flow, count, None)
    if variant == "postgres":
        assert postgres is not None
        with open_store(postgres, schema=_SCHEMA) as store:
            seconds = _run(flow, count, store)
            store.prune(0)
        return seconds
    path = tmp / f"{variant}-{time.monotonic_ns()}.db"
    with SQLiteStore(path, durability=variant) as store:  # type: ignore[arg-type]
        return _run(flow, count, store)


@contextlib.contextmanager
def postgres_server(quick: bool) -> Iterator[str | None]:
    """A PostgreSQL URL to measure on, or ``None`` to leave PostgreSQL out.

    ``FLOWFORGE_BENCH_POSTGRES`` if set; else, in a full run on a machine with
    PostgreSQL installed, a throwaway server, stopped afterwards.
    """
    url = os.environ.get(_POSTGRES_URL)
    if url or quick:
        yield url or None
        return
    try:
        server = pg_server.start()
    except pg_server.NoPostgres:
        yield None
        return
    try:
        yield server.dsn
    finally:
        server.stop()


def rows(quick: bool) -> list[dict[str, Any]]:
    """The three figures (messages per second), each beside the no-store one."""
    count, repeat = (300, 1) if quick else (10_000, 5)
    messages = count * _RELAYS
    with postgres_server(quick) as postgres:
        best = measure(count, repeat, postgres)
    memory = messages / best["memory"]
    out = [
        _row("store.none", "stream, no store", memory, None, None, count, best["memory"], repeat)
    ]
    labels = {
        "grouped": "SQLiteStore, grouped commits (default)",
        "activation": "SQLiteStore, a commit per activation",
        "postgres": "PostgresStore, grouped commits (default)",
    }
    for variant, label in labels.items():
        if best[variant] == float("inf"):
            continue
        rate = messages / best[variant]
        target = {"op": ">=", "limit": memory / 2} if variant == "grouped" else None
        out.append(
            _row(
                f"store.{variant}",
                f"stream, {label}",
                rate,
                memory,
                target,
                count,
                best[variant],
                repeat,
            )
        )
    return out


def _row(
    name: str,
    label: str,
    rate: float,
    memory: float | None,
    target: dict[str, Any] | None,
    count: int,
    seconds: float,
    repeat: int,
) -> dict[str, Any]:
    share = "" if memory is None else f"; {rate / memory:.0%} of the no-store rate"
    return {
        "name": name,
        "label": label,
        "value": rate,
        "unit": "msg/s",
        "baseline": memory,
        "baseline_unit": "msg/s" if memory is not None else "",
        "ratio": None if memory is None else memory / rate,
        "target": target,
        "note": f"{count:,} items x {_RELAYS} routines in {seconds * 1e3:.1f} ms, best of "
        f"{repeat if name != 'store.activation' else 1}{share}",
    }


if __name__ == "__main__":
    for row in rows(quick=False):
        print(f"{row['label']:<55} {row['value']:>10,.0f} msg/s  {row['note']}")
