"""Run the FlowForge benchmarks and print a table (``make bench``).

Every FlowForge figure is printed beside a plain-Python baseline measured in
the same run, with its target and whether it is met. Targets are
informational: a missed one never changes the exit status.

Usage::

    python benchmarks/run.py                 # everything
    python benchmarks/run.py --only stream   # one workload (repeatable)
    python benchmarks/run.py --json          # machine-readable output
    python benchmarks/run.py --quick         # tiny sizes, for smoke tests
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/run.py``), the ``benchmarks`` package is
# importable only once the repository root is on the path. It goes last, so a
# ``flowforge`` put first on PYTHONPATH (another checkout) is the one measured.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from benchmarks.harness import BENCHMARKS, Row, Settings, Timing  # noqa: E402

#: Modules whose import registers workloads, in the order they run.
WORKLOAD_MODULES = ("benchmarks.engine", "benchmarks.extra", "benchmarks.task_bench")


def load_workloads() -> None:
    """Import every workload module so their benchmarks register."""
    for name in WORKLOAD_MODULES:
        importlib.import_module(name)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--only`` is checked against the registry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=list(BENCHMARKS),
        help=f"run only this workload (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and few repeats (smoke test; targets not judged)",
    )
    return parser.parse_args(argv)


def run(names: Sequence[str], settings: Settings) -> tuple[list[Row], list[Timing]]:
    """Run the named workloads in registry order; their rows and timings."""
    rows: list[Row] = []
    timings: list[Timing] = []
    for name, bench in BENCHMARKS.items():
        if name not in names:
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        rows.extend(Row.coerce(row) for row in bench.run(settings))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        timings.append(Timing(name, wall, cpu, bench.cpu_bound))
    return rows, timings


def cpu_report(timings: Sequence[Timing]) -> str:
    """One line per run: each workload's CPU share, and a warning if the machine was busy."""
    shares = ", ".join(f"{t.name} {t.cpu_share:.0%}" for t in timings)
    line = f"CPU share (process CPU time / wall time): {shares}"
    busy = [t.name for t in timings if t.contended]
    if busy:
        line += (
            f"\nWARNING: {', '.join(busy)} got less than 90% of a CPU: the machine was busy, "
            "so those figures are pessimistic. Run again on an idle machine."
        )
    return line


def environment() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10_000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def _target(row: Row) -> str:
    if row.target is None:
        return "-"
    if row.target.of == "ratio":
        return f"ratio {row.target.op} {row.target.limit:g}x"
    return f"{row.target.op} {_number(row.target.limit, row.unit)}"


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def table(rows: Sequence[Row], judged: bool) -> str:
    """The rows as an aligned text table, followed by their notes."""
    head = ("benchmark", "FlowForge", "plain Python", "ratio", "target", "met")
    lines = [
        (
            row.name,
            _number(row.value, row.unit),
            _number(row.baseline, row.baseline_unit or row.unit),
            "-" if row.ratio is None else f"{row.ratio:.1f}x",
            _target(row),
            _verdict(row.met(judged)),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(len(head))]
    out = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [head, tuple("-" * w for w in widths), *lines]
    ]
    out += ["", "ratio: how many times the plain-Python baseline's time FlowForge takes.", ""]
    out += [f"{row.name}: {row.label}. {row.note}".rstrip() for row in rows]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, and return 0 (missed targets are informational)."""
    load_workloads()
    args = parse_args(argv)
    settings = Settings(quick=args.quick)
    names = args.only or list(BENCHMARKS)
    start = time.perf_counter()
    rows, timings = run(names, settings)
    elapsed = time.perf_counter() - start
    judged = not args.quick
    if args.json:
        print(
            json.dumps(
                {
                    "environment": environment(),
                    "quick": args.quick,
                    "seconds": elapsed,
                    "rows": [r.to_json(judged) for r in rows],
                    "workloads": [
                        {"name": t.name, "seconds": t.seconds, "cpu_share": t.cpu_share}
                        for t in timings
                    ],
                },
                indent=2,
            )
        )
        return 0
    env = environment()
    mode = " (quick mode: tiny sizes, targets not judged)" if args.quick else ""
    print(
        f"FlowForge benchmarks: Python {env['python']} on {env['platform']}, "
        f"{env['cpus']} CPUs{mode}"
    )
    print()
    print(table(rows, judged))
    print()
    print(cpu_report(timings))
    print(f"{len(rows)} rows in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
