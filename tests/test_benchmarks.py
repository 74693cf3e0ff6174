"""The benchmark runner works end to end (timings are never asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
ROWS = (
    "hop.per-hop",
    "hop.job",
    "hop.marginal",
    "hop.skeleton",
    "hop.job-setup",
    "stream.throughput",
    "stream.skeleton",
    "stream.joined",
    "fanout.job",
    "fanout.wide",
    "fanout.skeleton",
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
    assert [row["name"] for row in json.loads(result.stdout)["rows"]] == [
        "fanout.job",
        "fanout.skeleton",
        "fanout.wide",
    ]


def test_unknown_workload_is_refused() -> None:
    """--only with a name that is not registered exits with a usage error naming it."""
    result = run_bench("--only", "no-such-workload")
    assert result.returncode == 2
    assert "no-such-workload" in result.stderr


def _service_bench() -> ModuleType:
    """benchmarks/service_bench.py, imported from its file (benchmarks is not a test import)."""
    spec = importlib.util.spec_from_file_location("service_bench", RUN.parent / "service_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stream(*statuses: str, through: int = 3, end: str = "completed") -> list[Any]:
    progress = ("progress", {"routines": {"total": {"calls": through}}})
    return [*(("status", {"status": s}) for s in statuses), progress, ("end", {"status": end})]


def test_service_check_accepts_a_complete_event_stream() -> None:
    """A stream with every status change, all items through and its end passes the load check."""
    check = _service_bench().stream_problem
    assert check(_stream("queued", "running", "completed"), 3) is None
    assert check(_stream("running", "completed"), 3) is None


@pytest.mark.parametrize(
    "events",
    [
        _stream("queued", "completed"),
        _stream("running", "completed", through=2),
        _stream("running", "completed")[:-1],
        _stream("running", "failed", end="failed"),
    ],
)
def test_service_check_refuses_an_incomplete_event_stream(events: list[Any]) -> None:
    """A missing status change, a short last progress, no end, or a failed job is a problem."""
    assert _service_bench().stream_problem(events, 3) is not None


def test_service_check_refuses_an_inexact_job_result() -> None:
    """A completed job whose total is off by one is reported, an exact one is not."""
    bench = _service_bench()
    exact = {"total": 2 * sum(range(bench.SPAN, bench.SPAN + 4)), "count": 4}
    detail = {"status": "completed", "errors": [], "routines": {"total": {"stats": exact}}}
    assert bench.job_problem(detail, 1, 4) is None
    detail["routines"]["total"]["stats"] = {**exact, "total": exact["total"] + 1}
    assert bench.job_problem(detail, 1, 4) is not None


def _skeleton() -> ModuleType:
    """benchmarks/skeleton.py, imported from its file like the service benchmark."""
    spec = importlib.util.spec_from_file_location("skeleton", RUN.parent / "skeleton.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["skeleton"] = module  # its annotations name its own classes
    spec.loader.exec_module(module)
    return module


def test_skeleton_fan_out_calls_the_join_once_with_every_branch() -> None:
    """The floor under fanout.job does the work of the job: 16 branches, one join call."""
    skeleton = _skeleton()
    routines, routes = skeleton.skeleton_fan_out(16)
    calls: list[Any] = []
    join = routines["join"]
    join.handle = lambda value: calls.append(value)
    skeleton.run_skeleton(routines, routes, 1, skeleton.joins_of(routines))
    assert calls == [[2] * 16]


def test_skeleton_join_pairs_each_source_in_arrival_order() -> None:
    """A source ahead of the others waits in its own queue until they catch up."""
    skeleton = _skeleton()
    waiting: dict[str, list[dict[str, Any]]] = {}

    def deliver(source: str, value: int) -> Any:
        return skeleton._join(
            ("a", "b"), waiting, skeleton._Record(0, "j", "in", {"v": value}, source)
        )

    assert [deliver("a", 1), deliver("a", 2), deliver("b", 10)] == [None, None, {"v": [1, 10]}]
    assert deliver("b", 20) == {"v": [2, 20]}
    assert waiting == {}


def test_instruction_counter_runs_a_workload_and_refuses_an_unknown_figure() -> None:
    """benchmarks/instructions.py: its inner run (what callgrind counts) completes,
    and an unknown figure is refused with a usage error whether or not valgrind is here."""
    script = str(RUN.parent / "instructions.py")
    inner = subprocess.run(
        [sys.executable, script, "--inner", "fanout", "2"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=RUN.parent.parent,
    )
    assert inner.returncode == 0, inner.stderr
    refused = subprocess.run(
        [sys.executable, script, "no-such-figure"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=RUN.parent.parent,
    )
    assert refused.returncode == 2
    assert "no-such-figure" in refused.stderr or "valgrind" in refused.stderr
