"""The benchmark runner works end to end (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
ROWS = (
    "hop.per-hop",
    "hop.job",
    "hop.marginal",
    "hop.job-setup",
    "stream.throughput",
    "fanout.job",
    "threads.speedup",
    "big-chain.build",
    "big-chain.job",
    "big-chain.memory",
    "big-chain.rss",
    "tasks.per-task",
    "tasks.build",
    "workers.sqlite.1",
    "service.requests",
    "service.p50",
    "service.p99",
    "service.sse-events",
    "service.errors",
)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/run.py --quick`` with ``args`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, str(RUN), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=RUN.parent.parent,
    )


def test_quick_run_exits_zero_and_prints_every_row() -> None:
    """A quick run succeeds and its table names every benchmark row."""
    result = run_bench()
    assert result.returncode == 0, result.stderr
    missing = [name for name in ROWS if name not in result.stdout]
    assert not missing, result.stdout


def test_json_output_has_every_known_row_once() -> None:
    """--json prints one JSON document naming each known row exactly once."""
    result = run_bench("--json")
    assert result.returncode == 0, result.stderr
    names = [row["name"] for row in json.loads(result.stdout)["rows"]]
    assert set(ROWS) <= set(names)
    assert len(names) == len(set(names))


def test_table_prints_every_row_the_json_lists() -> None:
    """Rows added by any workload show up in the table, not only the known ones."""
    listed = run_bench("--json")
    table = run_bench()
    assert listed.returncode == table.returncode == 0, listed.stderr + table.stderr
    missing = [
        r["name"] for r in json.loads(listed.stdout)["rows"] if r["name"] not in table.stdout
    ]
    assert not missing, table.stdout


def test_only_runs_the_named_workload() -> None:
    """--only NAME runs that workload alone."""
    result = run_bench("--json", "--only", "fanout")
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)["rows"]] == ["fanout.job"]


def test_unknown_workload_is_refused() -> None:
    """--only with a name that is not registered exits with a usage error naming it."""
    result = run_bench("--only", "no-such-workload")
    assert result.returncode == 2
    assert "no-such-workload" in result.stderr
