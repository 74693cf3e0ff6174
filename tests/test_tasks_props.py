"""Property tests of task DAGs: random graphs, failures, skips and strategies.

A random DAG has up to 30 tasks ``t0 .. tN``; each depends on a few earlier
ones and either succeeds, skips, or fails under STOP, CONTINUE or SKIP. A
small model says what every task must end as when no failure stops the job;
runs on the sequential, thread and process executors must all agree with it.
"""

from __future__ import annotations

import functools
import itertools
import json
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowforge import DefinitionError, Flow, JobState, JobStatus, Skip
from flowforge.runtime.executors import Executor
from flowforge.store import MemoryStore, SQLiteStore

#: What a task does: succeed, skip, or fail under a strategy.
BEHAVIOURS = ("ok", "skip", "stop", "continue", "skip-on-error")
BASE = 7
_log: list[tuple[str, str]] = []
_log_lock = threading.Lock()
#: The task that pauses its job (once), and the flow it pauses.
_pause: dict[str, Any] = {}


def node(_me: str, _how: str, **inputs: Any) -> int:
    """A task of a random DAG: its value is 1 + its dependencies' values (mod a prime)."""
    with _log_lock:
        _log.append((_me, "start"))
    if _pause.get("at") == _me:
        _pause.pop("at")
        _pause["flow"].pause(reason=f"paused at {_me}")
    if _how == "skip":
        raise Skip(f"{_me} skips")
    if _how not in ("ok",):
        raise ValueError(f"{_me} fails")
    value = (
        1 + sum(v for k, v in inputs.items() if k.startswith("t")) + inputs["base"]
    ) % 1_000_003
    with _log_lock:
        _log.append((_me, "ok"))
    return value


@dataclass
class Dag:
    """A random DAG: each task's dependencies (earlier tasks) and behaviour."""

    deps: list[list[int]]
    how: list[str]

    def build(self, flow: Flow) -> None:
        """Add the tasks to ``flow``, last first (so dependencies are named before defined)."""
        strategies = {"stop": "stop", "continue": "continue", "skip-on-error": "skip"}
        for i in reversed(range(len(self.deps))):
            how = self.how[i]
            flow.task(
                functools.partial(node, _me=f"t{i}", _how=how),
                name=f"t{i}",
                depends_on=[f"t{d}" for d in self.deps[i]],
                error_strategy=strategies.get(how),
            )

    @property
    def stops(self) -> bool:
        """True when a task that fails under STOP can run."""
        return any(how == "stop" for how in self.how)

    def model(self) -> tuple[dict[str, str], dict[str, int]]:
        """What each task ends as, and the outputs, when nothing stops the job."""
        status: dict[str, str] = {}
        values: dict[str, int] = {}
        for i, deps in enumerate(self.deps):
            name, how = f"t{i}", self.how[i]
            if any(status[f"t{d}"] != "succeeded" for d in deps):
                status[name] = "skipped"
            elif how == "ok":
                status[name] = "succeeded"
                values[name] = (1 + sum(values[f"t{d}"] for d in deps) + BASE) % 1_000_003
            else:
                status[name] = "failed" if how == "continue" else "skipped"
        return status, values


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 30, stop: bool = True) -> Dag:
    """Random DAGs of 1 to ``max_tasks`` tasks."""
    n = draw(st.integers(1, max_tasks))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)]
    weights = BEHAVIOURS if stop else tuple(b for b in BEHAVIOURS if b != "stop")
    how = [draw(st.sampled_from(("ok",) * 6 + weights)) for _ in range(n)]
    return Dag(deps, how)


def statuses(job: JobState, dag: Dag) -> dict[str, str]:
    """Each task's status in ``job``."""
    return {f"t{i}": job.task_status(f"t{i}") for i in range(len(dag.deps))}


def run(dag: Dag, executor: str | Executor = "sequential", **options: Any) -> JobState:
    """One job of ``dag``."""
    flow = Flow(executor=executor, max_workers=2, **options)
    dag.build(flow)
    return flow.execute(entry_params={"base": BASE})


def check_order(dag: Dag) -> None:
    """Every task started at most once, and only after each dependency succeeded."""
    seen: set[str] = set()
    succeeded: set[str] = set()
    for name, what in _log:
        if what == "ok":
            succeeded.add(name)
            continue
        assert name not in seen, f"{name} ran twice"
        seen.add(name)
        deps = {f"t{d}" for d in dag.deps[int(name[1:])]}
        assert deps <= succeeded, f"{name} started before {deps - succeeded} succeeded"


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    _log.clear()
    _pause.clear()
    yield
    _log.clear()
    _pause.clear()


PROPS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPS
@given(dag=dags(stop=False))
def test_sequential_and_thread_agree_with_the_model(dag: Dag) -> None:
    """Without STOP failures both executors end every task as the model says."""
    expected, values = dag.model()
    for executor in ("sequential", "thread"):
        _log.clear()
        job = run(dag, executor)
        assert job.status == JobStatus.COMPLETED
        assert statuses(job, dag) == expected, executor
        assert job.outputs == values
        check_order(dag)


@PROPS
@given(dag=dags())
def test_invariants_hold_with_stop_failures(dag: Dag) -> None:
    """With STOP failures too: each task runs at most once, after its dependencies,
    and ends in a final status; a failure under STOP fails the job."""
    for executor in ("sequential", "thread"):
        _log.clear()
        job = run(dag, executor)
        check_order(dag)
        found = statuses(job, dag)
        assert set(found.values()) <= {"succeeded", "failed", "skipped", "cancelled"}
        stopped = any(s == "failed" and dag.how[int(n[1:])] == "stop" for n, s in found.items())
        assert (job.status == JobStatus.FAILED) == stopped
        if not stopped:
            assert found == dag.model()[0]
        for name, status in found.items():
            if status == "succeeded":
                assert all(found[f"t{d}"] == "succeeded" for d in dag.deps[int(name[1:])])


@pytest.fixture(scope="module")
def process_executor() -> Iterator[Executor]:
    """One pool of two worker processes for the module."""
    flow = Flow(executor="process", max_workers=2)
    yield flow.executor
    flow.close()


@settings(max_examples=6, deadline=None)
@given(dag=dags(max_tasks=12, stop=False))
def test_process_executor_agrees_with_the_model(dag: Dag, process_executor: Executor) -> None:
    """The process executor ends every task as the model says."""
    expected, values = dag.model()
    job = run(dag, process_executor)
    assert statuses(job, dag) == expected and job.outputs == values


@st.composite
def cyclic(draw: st.DrawFn) -> tuple[Dag, int, int]:
    """A DAG and a back edge ``(ancestor, descendant)`` that would close a cycle."""
    dag = draw(dags(max_tasks=15, stop=False))
    chains = [(d, i) for i, deps in enumerate(dag.deps) for d in deps]
    if not chains:
        dag.deps.append([len(dag.deps) - 1])
        dag.how.append("ok")
        chains = [(len(dag.deps) - 2, len(dag.deps) - 1)]
    ancestor, descendant = draw(st.sampled_from(chains))
    return dag, ancestor, descendant


@settings(max_examples=40, deadline=None)
@given(case=cyclic())
def test_cycles_are_always_detected(case: tuple[Dag, int, int]) -> None:
    """A dependency making a cycle is refused by @flow.task, else found by validate and execute."""
    dag, ancestor, descendant = case
    flow = Flow()
    dag.build(flow)
    flow.connect(f"t{descendant}", "done", f"t{ancestor}", "input")
    errors = [p for p in flow.validate() if p.severity == "error"]
    assert errors and "dependency cycle" in errors[0].message
    with pytest.raises(DefinitionError, match="dependency cycle") as raised:
        flow.execute(entry_params={"base": BASE})
    assert _log == []
    cycle = str(raised.value).split("cycle: ")[1].split(". ")[0].split(" -> ")
    edges = {(f"t{d}", f"t{i}") for i, deps in enumerate(dag.deps) for d in deps}
    edges.add((f"t{descendant}", f"t{ancestor}"))
    assert cycle[0] == cycle[-1] and all(pair in edges for pair in itertools.pairwise(cycle))
    looped = Flow()
    dag.deps[ancestor] = [*dag.deps[ancestor], descendant]
    with pytest.raises(DefinitionError, match="closes a dependency cycle"):
        dag.build(looped)


def open_store(how: str, folder: Path) -> MemoryStore | SQLiteStore | None:
    """The store a job of the resume test runs against, if any."""
    if how == "memory":
        return MemoryStore()
    return SQLiteStore(folder / "jobs.db") if how == "sqlite" else None


@settings(max_examples=25, deadline=None)
@given(
    dag=dags(max_tasks=12, stop=False),
    at=st.integers(0, 11),
    executor=st.sampled_from(("sequential", "thread")),
    how=st.sampled_from(("direct", "json", "memory", "sqlite")),
)
def test_a_paused_and_resumed_job_ends_like_an_uninterrupted_one(
    dag: Dag, at: int, executor: str, how: str
) -> None:
    """Pausing at a random task and resuming (from memory, JSON or a store) gives the
    outputs of a run without a pause."""
    _pause.clear()
    expected = run(dag).outputs
    flow = Flow(executor=executor, max_workers=2)
    dag.build(flow)
    pause_at = at % len(dag.deps)
    _pause.update(at=f"t{pause_at}", flow=flow)
    runs = all(dag.model()[0][f"t{d}"] == "succeeded" for d in dag.deps[pause_at])
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(how, Path(folder))
        job = flow.execute(entry_params={"base": BASE}, store=store)
        assert job.status == JobStatus.COMPLETED or (job.status == JobStatus.PAUSED and runs)
        while job.status == JobStatus.PAUSED:
            if store is not None:
                job = flow.resume(store.load(job.job_id), store=store)
            elif how == "json":
                job = flow.resume(JobState.from_dict(json.loads(json.dumps(job.serialize()))))
            else:
                job = flow.resume(job)
        if store is not None:
            assert store.load(job.job_id).outputs == expected
            store.close()
    assert job.status == JobStatus.COMPLETED
    assert job.outputs == expected
    assert statuses(job, dag) == dag.model()[0]
