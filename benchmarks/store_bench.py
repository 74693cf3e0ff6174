"""Stream throughput with no store, with grouped commits, and with a commit per activation.

The workload is the engine's stream benchmark: one handler emits ``count``
items through 3 relaying routines (``count * 3`` deliveries), run with the
sequential executor. Each variant runs the same flow; the stores are
:class:`~flowforge.store.SQLiteStore` files in a temporary directory, with
their default settings (``synchronous="normal"``, WAL). Runs of the three
variants are interleaved and the best of each is kept, so a busy machine
slows them alike.

:func:`rows` returns plain dicts shaped like ``benchmarks.harness.Row``
(``target`` is ``{"op": ..., "limit": ...}`` or ``None``).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from flowforge import Flow
from flowforge.store import SQLiteStore

from .routines import stream_flow

_RELAYS = 3
_VARIANTS = ("memory", "grouped", "activation")


def _run(flow: Flow, count: int, store: SQLiteStore | None) -> float:
    gc.collect()
    start = time.perf_counter()
    job = flow.execute("source", {"count": count}, store=store)
    elapsed = time.perf_counter() - start
    if job.status != "completed":
        raise RuntimeError(f"benchmark job ended {job.status}: {job.reason}")
    return elapsed


def measure(count: int, repeat: int) -> dict[str, float]:
    """Best seconds per variant over ``repeat`` interleaved rounds.

    A commit per activation is slow and steady, so it runs once.
    """
    flow = stream_flow(_RELAYS)
    best = dict.fromkeys(_VARIANTS, float("inf"))
    with tempfile.TemporaryDirectory(prefix="flowforge-bench-") as tmp:
        for round_ in range(repeat):
            for variant in _VARIANTS:
                if variant == "activation" and round_ > 0:
                    continue
                best[variant] = min(best[variant], _timed(flow, count, variant, Path(tmp)))
    return best


def _timed(flow: Flow, count: int, variant: str, tmp: Path) -> float:
    if variant == "memory":
        return _run(flow, count, None)
    path = tmp / f"{variant}-{time.monotonic_ns()}.db"
    with SQLiteStore(path, durability=variant) as store:  # type: ignore[arg-type]
        return _run(flow, count, store)


def rows(quick: bool) -> list[dict[str, Any]]:
    """The three figures (messages per second), each beside the no-store one."""
    count, repeat = (300, 1) if quick else (10_000, 5)
    messages = count * _RELAYS
    best = measure(count, repeat)
    memory = messages / best["memory"]
    out = [
        _row("store.none", "stream, no store", memory, None, None, count, best["memory"], repeat)
    ]
    labels = {"grouped": "grouped commits (default)", "activation": "a commit per activation"}
    for variant, label in labels.items():
        rate = messages / best[variant]
        target = {"op": ">=", "limit": memory / 2} if variant == "grouped" else None
        out.append(
            _row(
                f"store.{variant}",
                f"stream, SQLiteStore, {label}",
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
