"""The benchmark registry, the row type, and timing helpers.

A workload is a function ``(settings) -> list[Row]`` registered with
:func:`benchmark`. ``run.py`` imports the modules that hold workloads (see
``WORKLOAD_MODULES`` there), runs the selected ones and prints their rows.
To add a workload, write a registered function in a module under
``benchmarks/`` and list the module in ``WORKLOAD_MODULES``.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Operators a target can use, with how to check them.
_CHECKS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda value, limit: value <= limit,
    "<": lambda value, limit: value < limit,
    ">=": lambda value, limit: value >= limit,
    ">": lambda value, limit: value > limit,
}


@dataclass(frozen=True)
class Target:
    """A goal for a figure, such as ``Target("<=", 3.0)``.

    ``of="ratio"`` sets the goal for the row's ratio to plain Python (such as
    ``Target("<=", 30.0, of="ratio")``: at most 30 times the plain call).
    """

    op: str
    limit: float
    of: str = "value"

    def met_by(self, value: float) -> bool:
        """True when ``value`` reaches the goal."""
        return _CHECKS[self.op](value, self.limit)


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    Attributes:
        name: Stable id of the row (``workload.figure``), also used by tests.
        label: What was measured, in words.
        value: The FlowForge figure, in ``unit``.
        unit: Its unit (``µs/hop``, ``msg/s``, ``x``, ``s``, ``MiB`` ...).
        baseline: The plain-Python figure measured in the same run, or None.
        baseline_unit: Its unit (defaults to ``unit``).
        ratio: FlowForge cost over plain-Python cost, where that makes sense.
        target: The goal for ``value``, or None for an informational row.
        note: How the figure was obtained (sizes, repeats, caveats).
    """

    name: str
    label: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_unit: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, row: Row | Mapping[str, Any]) -> Row:
        """``row`` itself, or a Row built from a dict of its fields.

        A dict's ``target`` may be ``{"op": ..., "limit": ...}``; keys that are
        not fields (such as ``met`` or ``baseline_unit`` defaults) are ignored
        or filled in.
        """
        if isinstance(row, Row):
            return row
        fields = {name: row[name] for name in cls.__dataclass_fields__ if name in row}
        target = fields.get("target")
        if isinstance(target, Mapping):
            of = str(target.get("of", "value"))
            fields["target"] = Target(str(target["op"]), float(target["limit"]), of)
        return cls(**fields)

    def met(self, judged: bool = True) -> bool | None:
        """Whether the target is met; None without a target or when not judged."""
        if self.target is None or not judged:
            return None
        figure = self.ratio if self.target.of == "ratio" else self.value
        return None if figure is None else self.target.met_by(figure)

    def to_json(self, judged: bool = True) -> dict[str, Any]:
        """The row as plain data, with ``met`` filled in."""
        data = asdict(self)
        data["baseline_unit"] = self.baseline_unit or self.unit
        data["met"] = self.met(judged)
        return data


@dataclass(frozen=True)
class Settings:
    """How big and how often: ``quick`` uses tiny sizes for smoke tests."""

    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        """``full`` normally, ``quick`` in quick mode."""
        return quick if self.quick else full


#: A workload returns its rows (Row objects, or dicts of Row fields).
Workload = Callable[[Settings], "list[Row] | list[dict[str, Any]]"]


@dataclass(frozen=True)
class Benchmark:
    """A registered workload."""

    name: str
    description: str
    run: Workload
    cpu_bound: bool = True


@dataclass(frozen=True)
class Timing:
    """How long a workload ran, and how much of a CPU the process had meanwhile."""

    name: str
    seconds: float
    cpu_seconds: float
    cpu_bound: bool

    @property
    def cpu_share(self) -> float:
        """Process CPU time over wall time (near 1.0 when CPU-bound on an idle machine)."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def contended(self) -> bool:
        """True when a CPU-bound workload got clearly less than a whole CPU."""
        return self.cpu_bound and self.cpu_share < 0.9


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(
    name: str, description: str, *, cpu_bound: bool = True
) -> Callable[[Workload], Workload]:
    """Register a workload under ``name`` (what ``--only`` selects).

    ``cpu_bound=False`` marks workloads that mostly wait (sleeping handlers),
    so a low CPU share is not reported as a busy machine.
    """

    def register(run: Workload) -> Workload:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, description, run, cpu_bound)
        return run

    return register


def time_once(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_call(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best over ``repeat`` runs of the mean seconds per call over ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Fewest seconds one call of ``fn`` took over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        gc.collect()
        times.append(time_once(fn))
    return min(times)


def median_of(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of one call of ``fn`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        gc.collect()
        times.append(time_once(fn))
    return statistics.median(times)


def rss_bytes() -> int | None:
    """The process's resident set size now, or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
