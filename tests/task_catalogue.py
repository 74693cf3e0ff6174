"""A catalogue of task DAGs with what each job must end with, on any executor.

The functions are module-level so that worker processes (process and Dask
executors) can import them. Each entry builds its tasks into a given flow and
states the job status, each task's status (a set when it depends on timing,
as a task running beside a failure may finish or never start) and the
outputs of the tasks that must succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowforge import Flow, Skip


def numbers(n: int) -> list[int]:
    """``[0, 1, ..., n - 1]``."""
    return list(range(n))


def double(numbers: list[int]) -> list[int]:
    """Each number doubled."""
    return [x * 2 for x in numbers]


def square(numbers: list[int]) -> list[int]:
    """Each number squared."""
    return [x * x for x in numbers]


def total(double: list[int]) -> int:
    """The sum of the doubled numbers."""
    return sum(double)


def combine(double: list[int], square: list[int]) -> int:
    """The sum of both branches of a diamond."""
    return sum(double) + sum(square)


def offset(numbers: list[int], shift: int = 100) -> list[int]:
    """Each number plus ``shift`` (a job param with a default)."""
    return [x + shift for x in numbers]


def gather(**results: Any) -> dict[str, int]:
    """The length of every list it receives (``**kwargs`` gets everything)."""
    return {k: len(v) for k, v in sorted(results.items()) if isinstance(v, list)}


def boom(numbers: list[int]) -> None:
    """Always fails."""
    raise ValueError(f"boom on {len(numbers)} numbers")


def after_boom(boom: Any) -> str:
    """Never runs: its dependency always fails."""
    return "unreachable"


def nonempty(numbers: list[int]) -> list[int]:
    """Skips when there are no numbers."""
    if not numbers:
        raise Skip("no numbers")
    return numbers


def after_skip(nonempty: list[int]) -> int:
    """Never runs when ``nonempty`` skipped."""
    return len(nonempty)


@dataclass
class Case:
    """One DAG and what a job of it ends with."""

    build: Callable[[Flow], None]
    params: dict[str, Any]
    status: str
    statuses: dict[str, set[str]]
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _linear(flow: Flow) -> None:
    flow.task(numbers)
    flow.task(double, depends_on=["numbers"])
    flow.task(total, depends_on=["double"])


def _diamond(flow: Flow) -> None:
    flow.task(combine, depends_on=["double", "square"])  # defined before its dependencies
    flow.task(numbers)
    flow.task(double, depends_on=["numbers"])
    flow.task(square, depends_on=["numbers"])


def _fan(flow: Flow) -> None:
    flow.task(numbers)
    for fn in (double, square, offset):
        flow.task(fn, depends_on=["numbers"])
    flow.task(gather, depends_on=["double", "square", "offset"])


def _failure(strategy: str | None) -> Callable[[Flow], None]:
    def build(flow: Flow) -> None:
        flow.task(numbers)
        flow.task(boom, depends_on=["numbers"], error_strategy=strategy)
        flow.task(after_boom, depends_on=["boom"])
        flow.task(double, depends_on=["numbers"])
        flow.task(total, depends_on=["double"])

    return build


def _skip(flow: Flow) -> None:
    flow.task(numbers)
    flow.task(nonempty, depends_on=["numbers"])
    flow.task(after_skip, depends_on=["nonempty"])
    flow.task(square, depends_on=["numbers"])


DONE = {"succeeded"}
CATALOGUE: dict[str, Case] = {
    "linear": Case(
        _linear,
        {"n": 4},
        "completed",
        {"numbers": DONE, "double": DONE, "total": DONE},
        {"numbers": [0, 1, 2, 3], "double": [0, 2, 4, 6], "total": 12},
    ),
    "diamond": Case(
        _diamond,
        {"n": 3},
        "completed",
        {"numbers": DONE, "double": DONE, "square": DONE, "combine": DONE},
        {"double": [0, 2, 4], "square": [0, 1, 4], "combine": 11},
    ),
    "fan_out_in": Case(
        _fan,
        {"n": 2, "shift": 10},
        "completed",
        {name: DONE for name in ("numbers", "double", "square", "offset", "gather")},
        {"offset": [10, 11], "gather": {"double": 2, "offset": 2, "square": 2}},
    ),
    "failure_stop": Case(
        _failure(None),
        {"n": 2},
        "failed",
        {
            "numbers": DONE,
            "boom": {"failed"},
            "after_boom": {"cancelled"},
            # beside the failure: finished if it was already running, else never started
            "double": {"succeeded", "cancelled"},
            "total": {"succeeded", "cancelled"},
        },
        {"numbers": [0, 1]},
        ["boom"],
    ),
    "failure_continue": Case(
        _failure("continue"),
        {"n": 2},
        "completed",
        {
            "numbers": DONE,
            "boom": {"failed"},
            "after_boom": {"skipped"},
            "double": DONE,
            "total": DONE,
        },
        {"double": [0, 2], "total": 2},
        ["boom"],
    ),
    "skip": Case(
        _skip,
        {"n": 0},
        "completed",
        {"numbers": DONE, "nonempty": {"skipped"}, "after_skip": {"skipped"}, "square": DONE},
        {"numbers": [], "square": []},
    ),
}


def check(case: Case, job: Any) -> None:
    """Assert that ``job`` ended as ``case`` says."""
    statuses = {name: job.task_status(name) for name in case.statuses}
    assert str(job.status) == case.status, (job.status, job.reason, statuses)
    for name, allowed in case.statuses.items():
        assert statuses[name] in allowed, (name, statuses)
    for name, value in case.outputs.items():
        assert job.output(name) == value, name
    assert sorted({e.routine_id for e in job.errors}) == case.errors
    assert set(job.outputs) == {n for n, s in statuses.items() if s == "succeeded"}
