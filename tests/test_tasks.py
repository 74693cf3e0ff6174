"""Tasks and DAGs: ``Flow.task``, dependencies, params, failures, skips and outputs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import task_catalogue
from conftest import calls
from task_catalogue import CATALOGUE

from flowforge import (
    DefinitionError,
    ErrorStrategy,
    Flow,
    HandlerTimeoutError,
    JobState,
    JobStatus,
    Routine,
    Skip,
    Task,
    ValidationError,
)
from flowforge.runtime.dask import DaskExecutor
from flowforge.runtime.executors import Executor
from flowforge.store import MemoryStore, SQLiteStore
from flowforge.task import TaskResultError
from flowforge.testing import Collect


def etl(executor: str = "sequential", **options: Any) -> Flow:
    """The spec's ``extract -> clean -> load`` flow, recording calls in ``flow.log``."""
    flow = Flow(flow_id="etl", executor=executor, **options)
    log: list[str] = []
    flow.log = log  # type: ignore[attr-defined]

    @flow.task
    def extract(path: str) -> list[dict[str, Any]]:
        log.append("extract")
        return [{"id": 1, "ok": True}, {"id": 2, "ok": False}]

    @flow.task(depends_on=[extract], retries=3, retry_delay=0.0)
    def clean(extract: list[dict[str, Any]]) -> list[dict[str, Any]]:
        log.append("clean")
        return [r for r in extract if r["ok"]]

    @flow.task(depends_on=["clean"], max_concurrency=4)
    def load(clean: list[dict[str, Any]], path: str) -> str:
        log.append("load")
        if not clean:
            raise Skip("nothing to load")
        return f"{len(clean)} row(s) to {path}"

    return flow


# -- declaring -------------------------------------------------------------------------


def test_bare_decorator_returns_a_task_named_after_the_function() -> None:
    """``@flow.task`` adds a Task routine under the function's name."""
    flow = etl()
    extract = flow.get_routine("extract")
    assert isinstance(extract, Task) and isinstance(extract, Routine)
    assert list(flow.routines) == ["extract", "clean", "load"]


def test_a_task_is_still_the_plain_function() -> None:
    """Calling a task calls its function, so it can be tested without a flow."""
    clean = etl().get_routine("clean")
    assert clean is not None
    assert clean(extract=[{"ok": True}, {"ok": False}]) == [{"ok": True}]
    assert clean.__name__ == "clean"


def test_a_task_has_an_input_slot_and_a_done_event_with_result() -> None:
    """Every task has slot ``input`` and event ``done(result)``."""
    task = etl().get_routine("load")
    assert task is not None
    assert list(task.slots) == ["input"]
    assert list(task.events) == ["done"] and task.events["done"].params == ("result",)


def test_name_option_overrides_the_function_name() -> None:
    """``name=`` sets the task's name."""
    flow = Flow()
    task = flow.task(task_catalogue.numbers, name="nums")
    assert task.name == "nums" and flow.get_routine("nums") is task


def test_depends_on_takes_names_defined_later() -> None:
    """A dependency named before it is defined is wired when it is added."""
    flow = Flow()
    flow.task(task_catalogue.double, depends_on=["numbers"])
    flow.task(task_catalogue.numbers)
    assert flow.execute(entry_params={"n": 2}).output("double") == [0, 2]


def test_depends_on_a_plain_routine_is_an_error() -> None:
    """A dependency that is a routine, not a task, says how to wire it instead."""
    flow = Flow()
    flow.add_routine(Collect(), "sink")
    with pytest.raises(DefinitionError, match=r"'sink', which is a Collect, not a task"):
        flow.task(task_catalogue.numbers, depends_on=["sink"])


def test_a_duplicate_task_name_is_an_error() -> None:
    """Two tasks cannot share a name."""
    flow = Flow()
    flow.task(task_catalogue.numbers)
    with pytest.raises(DefinitionError, match="already has a routine 'numbers'"):
        flow.task(task_catalogue.numbers)


# -- running ---------------------------------------------------------------------------


def test_the_spec_example_runs(executor: str) -> None:
    """extract -> clean -> load completes with every output and status."""
    job = etl(executor).execute(entry_params={"path": "orders.csv"})
    assert job.status == JobStatus.COMPLETED
    assert job.output("clean") == [{"id": 1, "ok": True}]
    assert job.outputs == {
        "extract": [{"id": 1, "ok": True}, {"id": 2, "ok": False}],
        "clean": [{"id": 1, "ok": True}],
        "load": "1 row(s) to orders.csv",
    }
    assert job.task_status("load") == "succeeded"


def test_each_task_runs_once(executor: str) -> None:
    """A diamond runs every task exactly once."""
    flow = Flow(executor=executor)
    CATALOGUE["diamond"].build(flow)
    job = flow.execute(entry_params={"n": 3})
    assert {rid: calls(job, rid) for rid in flow.routines} == dict.fromkeys(flow.routines, 1)


def test_sequential_order_is_deterministic() -> None:
    """On the sequential executor tasks run in dependency, then definition, order."""
    flow = Flow()
    log: list[str] = []
    for name in ("c", "a", "b"):
        flow.task(lambda name=name: log.append(name), name=name)
    flow.task(lambda **_: log.append("d"), name="d", depends_on=["b", "a"])
    flow.execute()
    flow.execute()
    assert log == ["c", "a", "b", "d"] * 2


def test_dependency_results_win_over_job_params_of_the_same_name(executor: str) -> None:
    """A param named like a dependency is the dependency's result."""
    flow = Flow(executor=executor)
    flow.task(task_catalogue.numbers)
    flow.task(task_catalogue.double, depends_on=["numbers"])
    job = flow.execute(entry_params={"n": 2, "numbers": [7, 7, 7]})
    assert job.output("double") == [0, 2]


def test_defaults_apply_and_job_params_override_them(executor: str) -> None:
    """A parameter with a default needs no job param; a given one wins."""
    flow = Flow(executor=executor)
    flow.task(task_catalogue.numbers)
    flow.task(task_catalogue.offset, depends_on=["numbers"])
    assert flow.execute(entry_params={"n": 1}).output("offset") == [100]
    assert flow.execute(entry_params={"n": 1, "shift": 5}).output("offset") == [5]


def test_var_keyword_receives_dependencies_and_params(executor: str) -> None:
    """``**kwargs`` gets every dependency result and every job param."""
    flow = Flow(executor=executor)
    seen: dict[str, Any] = {}

    @flow.task
    def a() -> int:
        return 1

    @flow.task(depends_on=[a])
    def b(**kwargs: Any) -> None:
        seen.update(kwargs)

    flow.execute(entry_params={"x": "y"})
    assert seen == {"a": 1, "x": "y"}


def test_independent_tasks_run_in_parallel_on_the_thread_executor() -> None:
    """Two root tasks overlap: each waits for the other at a barrier."""
    barrier = threading.Barrier(2, timeout=10)
    flow = Flow(executor="thread", max_workers=2)

    @flow.task
    def left() -> str:
        barrier.wait()
        return "l"

    @flow.task
    def right() -> str:
        barrier.wait()
        return "r"

    assert flow.execute().outputs == {"left": "l", "right": "r"}


def test_async_functions_are_tasks(executor: str) -> None:
    """An ``async def`` task is awaited."""
    flow = Flow(executor=executor)

    @flow.task
    async def slow(n: int) -> int:
        await asyncio.sleep(0)
        return n + 1

    assert flow.execute(entry_params={"n": 1}).output("slow") == 2


def test_a_task_that_times_out_fails(executor: str) -> None:
    """``timeout=`` fails a call that runs too long."""
    flow = Flow(executor=executor)
    release = threading.Event()

    @flow.task(timeout=0.05)
    def stuck() -> None:
        release.wait(5)

    job = flow.execute()
    release.set()
    assert job.status == JobStatus.FAILED and job.task_status("stuck") == "failed"
    assert job.errors[0].error_type == HandlerTimeoutError.__name__


# -- params and validation ---------------------------------------------------------------


def test_validate_lists_the_params_each_task_needs() -> None:
    """validate() names, per task, the params no dependency or default fills."""
    needs = {p.where: p.message for p in etl().validate()}
    assert set(needs) == {"extract.input", "load.input"}
    assert "'path'" in needs["load.input"]


def test_validate_with_params_lists_only_what_they_leave_out() -> None:
    """validate(params=...) does not list the task params those params fill."""
    assert etl().validate(params={"path": "p"}) == []


def test_validate_is_quiet_about_task_events_and_reachability() -> None:
    """A leaf task's unconsumed ``done`` and the lack of an entry are no problems."""
    flow = Flow()
    flow.task(task_catalogue.numbers)
    flow.add_routine(Collect(), "sink")
    assert [p.where for p in flow.validate("sink")] == ["numbers.input"]


def test_execute_names_the_task_and_missing_param_before_anything_runs() -> None:
    """Missing job params raise DefinitionError naming task and param; nothing ran."""
    flow = etl()
    with pytest.raises(DefinitionError, match=r"Task 'extract' needs parameter 'path'"):
        flow.execute(entry_params={})
    assert flow.log == []  # type: ignore[attr-defined]


def test_an_unknown_dependency_is_reported() -> None:
    """A dependency that is never defined: a validate() error, and execute() refuses."""
    flow = Flow()
    flow.task(task_catalogue.double, depends_on=["numbers"])
    problems = [p for p in flow.validate() if p.severity == "error"]
    assert "depends on 'numbers', which is not in the flow" in problems[0].message
    with pytest.raises(DefinitionError, match="depends on 'numbers'"):
        flow.execute(entry_params={})


# -- cycles ----------------------------------------------------------------------------


def test_the_decorator_refuses_a_task_that_closes_a_cycle() -> None:
    """``@flow.task`` raises DefinitionError naming the cycle; the flow is unchanged."""
    flow = Flow()

    @flow.task(depends_on=["clean"])
    def extract(clean: Any) -> None: ...

    with pytest.raises(DefinitionError, match=r"extract -> clean -> extract"):

        @flow.task(depends_on=[extract])
        def clean(extract: Any) -> None: ...

    assert list(flow.routines) == ["extract"]


def test_a_task_depending_on_itself_is_a_cycle() -> None:
    """``depends_on`` naming the task itself is refused."""
    with pytest.raises(DefinitionError, match=r"a -> a"):
        Flow().task(task_catalogue.numbers, name="a", depends_on=["a"])


def cyclic_flow() -> tuple[Flow, list[str]]:
    """``extract -> clean`` as tasks, and ``clean.done -> extract.input`` wired by hand."""
    flow = Flow()
    ran: list[str] = []

    @flow.task
    def extract(**kw: Any) -> None:
        ran.append("extract")

    @flow.task(depends_on=[extract])
    def clean(extract: Any) -> None:
        ran.append("clean")

    flow.connect("clean", "done", "extract", "input")
    return flow, ran


def test_validate_lists_a_cycle_as_an_error() -> None:
    """A cycle is an error problem whose message names it; strict raises."""
    flow, _ = cyclic_flow()
    errors = [p for p in flow.validate() if p.severity == "error"]
    assert len(errors) == 1 and "extract -> clean -> extract" in errors[0].message
    with pytest.raises(ValidationError, match="extract -> clean -> extract"):
        flow.validate(strict=True)


def test_execute_refuses_a_cycle_before_any_task_runs() -> None:
    """execute() raises DefinitionError naming the cycle; no task ran."""
    flow, ran = cyclic_flow()
    with pytest.raises(DefinitionError, match="extract -> clean -> extract"):
        flow.execute()
    assert ran == []


def test_a_loop_of_plain_routines_is_not_a_task_cycle() -> None:
    """Routines looping among themselves do not make tasks cyclic."""
    from conftest import Countdown

    flow = Flow()
    flow.add_routine(Countdown(), "count")
    flow.connect("count", "again", "count", "in")
    flow.task(task_catalogue.numbers)
    assert not [p for p in flow.validate() if p.severity == "error"]


# -- failures, retries and skips -----------------------------------------------------------


def flaky(failures: int, **options: Any) -> tuple[Flow, list[int]]:
    """A task that fails its first ``failures`` attempts."""
    flow = Flow()
    attempts: list[int] = []

    @flow.task(retry_delay=0.0, **options)
    def fetch() -> str:
        attempts.append(1)
        if len(attempts) <= failures:
            raise ConnectionError(f"attempt {len(attempts)}")
        return "ok"

    return flow, attempts


def test_retries_are_extra_attempts_after_the_first() -> None:
    """``retries=3``: a task failing 3 times succeeds on its 4th attempt."""
    flow, attempts = flaky(3, retries=3)
    job = flow.execute()
    assert job.output("fetch") == "ok" and len(attempts) == 4


def test_a_task_fails_once_its_retries_are_used_up() -> None:
    """``retries=2`` makes 3 attempts, then the task and the job fail."""
    flow, attempts = flaky(5, retries=2)
    job = flow.execute()
    assert len(attempts) == 3 and job.status == JobStatus.FAILED
    assert job.task_status("fetch") == "failed" and job.errors[0].attempts == 3


def test_retries_then_continue() -> None:
    """``error_strategy='continue'`` applies once the retries are used up."""
    flow, attempts = flaky(5, retries=1, error_strategy="continue")
    job = flow.execute()
    assert len(attempts) == 2 and job.status == JobStatus.COMPLETED
    assert job.task_status("fetch") == "failed"


def test_skip_marks_the_task_and_its_dependents_skipped(executor: str) -> None:
    """``raise Skip`` skips the task, its dependents say why; the job completes."""
    flow = Flow(executor=executor)

    @flow.task
    def load() -> None:
        raise Skip("nothing to load")

    @flow.task(depends_on=[load])
    def report(load: Any) -> None: ...

    @flow.task(depends_on=[report])
    def mail(report: Any) -> None: ...

    job = flow.execute()
    assert job.status == JobStatus.COMPLETED
    assert [job.task_status(n) for n in ("load", "report", "mail")] == ["skipped"] * 3
    reasons = {s.routine_id: s.reason for s in job.skipped}
    assert reasons == {
        "load": "nothing to load",
        "report": "upstream 'load' skipped",
        "mail": "upstream 'report' skipped",
    }


def test_under_stop_never_started_tasks_are_cancelled(executor: str) -> None:
    """A failure under STOP fails the job; tasks that never started end cancelled."""
    flow = Flow(executor=executor)
    task_catalogue.CATALOGUE["failure_stop"].build(flow)
    job = flow.execute(entry_params={"n": 1})
    assert job.status == JobStatus.FAILED
    assert job.task_status("boom") == "failed"
    assert job.task_status("after_boom") == "cancelled"


def test_a_failed_job_resumes_after_the_fix(executor: str) -> None:
    """Resuming a job failed under STOP reruns the failed task, then the cancelled ones."""
    flow = Flow(executor=executor)
    broken = {"clean"}
    calls_made: list[str] = []

    @flow.task
    def extract() -> int:
        calls_made.append("extract")
        return 1

    @flow.task(depends_on=[extract])
    def clean(extract: int) -> int:
        calls_made.append("clean")
        if "clean" in broken:
            raise ValueError("bad")
        return extract + 1

    @flow.task(depends_on=[clean])
    def load(clean: int) -> int:
        calls_made.append("load")
        return clean + 1

    job = flow.execute()
    assert job.task_status("load") == "cancelled"
    broken.clear()
    job = flow.resume(JobState.from_dict(job.serialize()))
    assert job.status == JobStatus.COMPLETED and job.outputs == {
        "extract": 1,
        "clean": 2,
        "load": 3,
    }
    assert calls_made == ["extract", "clean", "clean", "load"]


def test_a_cancelled_job_cancels_the_tasks_not_started() -> None:
    """Cancelling from a task: the rest of the DAG ends ``cancelled``."""
    flow = Flow()

    @flow.task
    def first() -> int:
        flow.cancel(reason="enough")
        return 1

    @flow.task(depends_on=[first])
    def second(first: int) -> int:
        return first

    job = flow.execute()
    assert job.status == JobStatus.CANCELLED
    assert job.task_status("first") == "succeeded" and job.task_status("second") == "cancelled"


def test_under_stop_running_tasks_finish() -> None:
    """A task running when another fails under STOP still finishes and keeps its result."""
    flow = Flow(executor="thread", max_workers=2)
    started = threading.Event()

    @flow.task
    def slow() -> str:
        started.set()
        job = flow.running_jobs[0]
        for _ in range(1000):  # until the scheduler has applied the failure
            if job.task_status("broken") == "failed":
                break
            time.sleep(0.01)
        return "finished"

    @flow.task
    def broken() -> None:
        started.wait(10)
        raise RuntimeError("broken")

    @flow.task(depends_on=[slow])
    def later(slow: str) -> None: ...

    job = flow.execute()
    assert job.status == JobStatus.FAILED
    assert job.output("slow") == "finished"
    assert job.task_status("later") == "cancelled"


def test_under_continue_dependents_skip_and_other_branches_run(executor: str) -> None:
    """CONTINUE: dependents are skipped with the reason, independent tasks run, job completes."""
    flow = Flow(executor=executor)

    @flow.task
    def extract() -> list[int]:
        return [1, 2]

    @flow.task(depends_on=[extract], error_strategy="continue")
    def clean(extract: list[int]) -> None:
        raise ValueError("bad rows")

    @flow.task(depends_on=[clean])
    def load(clean: Any) -> None: ...

    @flow.task(depends_on=[extract])
    def audit(extract: list[int]) -> int:
        return len(extract)

    job = flow.execute()
    assert job.status == JobStatus.COMPLETED
    assert job.task_status("clean") == "failed" and job.output("audit") == 2
    assert job.task_status("load") == "skipped"
    assert [s.reason for s in job.skipped if s.routine_id == "load"] == ["upstream 'clean' failed"]
    assert [(e.routine_id, e.error_type) for e in job.errors] == [("clean", "ValueError")]


def test_the_flow_error_handler_applies_to_tasks_without_their_own() -> None:
    """With no error_strategy, the flow's error handler decides (here CONTINUE)."""
    from flowforge import ErrorHandler

    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    task_catalogue.CATALOGUE["failure_stop"].build(flow)
    job = flow.execute(entry_params={"n": 1})
    assert job.status == JobStatus.COMPLETED and job.task_status("after_boom") == "skipped"


def test_retries_then_the_flow_strategy() -> None:
    """With retries and no error_strategy, the flow's strategy applies after them."""
    from flowforge import ErrorHandler

    flow, attempts = flaky(5, retries=1)
    flow.error_handler = ErrorHandler(ErrorStrategy.CONTINUE)
    job = flow.execute()
    assert len(attempts) == 2 and job.status == JobStatus.COMPLETED
    assert job.task_status("fetch") == "failed"


def test_error_strategy_skip_skips_the_task_and_its_dependents() -> None:
    """``error_strategy='skip'``: the failed task counts as skipped."""
    flow = Flow()
    flow.task(task_catalogue.numbers)
    flow.task(task_catalogue.boom, depends_on=["numbers"], error_strategy="skip")
    flow.task(task_catalogue.after_boom, depends_on=["boom"])
    job = flow.execute(entry_params={"n": 1})
    assert job.status == JobStatus.COMPLETED
    assert job.task_status("boom") == "skipped" and job.task_status("after_boom") == "skipped"


# -- outputs and statuses ------------------------------------------------------------------


def test_output_without_a_result_names_the_task_and_its_status() -> None:
    """output() of a skipped task raises KeyError saying it is skipped."""
    flow = Flow()
    flow.task(task_catalogue.nonempty)
    job = flow.execute(entry_params={"numbers": []})
    with pytest.raises(KeyError, match=r"Task 'nonempty' has no result: it is skipped"):
        job.output("nonempty")


def test_output_of_an_unknown_task_lists_the_tasks() -> None:
    """output() of a name that is no task raises KeyError listing the tasks."""
    job = etl().execute(entry_params={"path": "p"})
    with pytest.raises(KeyError, match=r"no task 'nope'.*'extract', 'clean', 'load'"):
        job.output("nope")


def test_paused_job_reports_pending_tasks() -> None:
    """Tasks not reached before a pause are ``pending``; resume runs them."""
    flow = Flow()

    @flow.task
    def first() -> int:
        flow.pause(reason="halfway")
        return 1

    @flow.task(depends_on=[first])
    def second(first: int) -> int:
        return first + 1

    job = flow.execute()
    assert job.status == JobStatus.PAUSED
    assert job.task_status("first") == "succeeded" and job.task_status("second") == "pending"
    assert flow.resume(job).outputs == {"first": 1, "second": 2}


def test_a_running_task_reports_running() -> None:
    """While its call runs, a task's status is ``running``."""
    flow = Flow()
    seen: list[str] = []

    @flow.task
    def probe() -> None:
        seen.append(flow.running_jobs[0].task_status("probe"))

    flow.execute()
    assert seen == ["running"]


# -- results are kept ----------------------------------------------------------------------


def paused_etl() -> tuple[Flow, JobState]:
    """The etl flow, paused after ``clean``."""
    flow = etl()
    clean = flow.get_routine("clean")
    assert isinstance(clean, Task)
    original = clean.fn

    def pausing(extract: list[dict[str, Any]]) -> Any:
        flow.pause(reason="after clean")
        return original(extract)

    clean.fn = pausing
    return flow, flow.execute(entry_params={"path": "p"})


def test_results_survive_json_and_resume_in_a_fresh_flow() -> None:
    """A paused job saved as JSON resumes in a new flow to the same outputs."""
    _, job = paused_etl()
    assert job.status == JobStatus.PAUSED and job.task_status("clean") == "succeeded"
    loaded = JobState.from_dict(json.loads(json.dumps(job.serialize())))
    assert loaded.output("clean") == [{"id": 1, "ok": True}]
    done = etl().resume(loaded)
    assert done.status == JobStatus.COMPLETED
    assert done.outputs == etl().execute(entry_params={"path": "p"}).outputs


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_results_are_kept_by_a_store(kind: str, tmp_path: Path) -> None:
    """A store keeps each result and status, also of a job resumed from it."""
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "jobs.db")
    with store:
        flow = etl(store=store)
        job = flow.execute(entry_params={"path": "p"})
        stored = store.load(job.job_id)
        assert stored.outputs == job.outputs and stored.task_status("load") == "succeeded"
        _, paused = paused_etl()
        store.save(paused)
        resumed = etl(store=store).resume(store.load(paused.job_id))
        assert store.load(resumed.job_id).outputs == job.outputs


def test_a_store_keeps_results_step_by_step(tmp_path: Path) -> None:
    """With a commit per step, a job stored mid-run has the results made so far."""
    store = SQLiteStore(tmp_path / "jobs.db", durability="activation")
    seen: dict[str, Any] = {}
    with store:
        flow = etl(store=store)
        load = flow.get_routine("load")
        assert isinstance(load, Task)
        original = load.fn

        def peek(clean: Any, path: str) -> Any:
            job_id = flow.running_jobs[0].job_id
            seen.update(store.load(job_id).outputs)
            return original(clean, path)

        load.fn = peek
        flow.execute(entry_params={"path": "p"})
    assert set(seen) == {"extract", "clean"}


def test_a_result_the_store_cannot_keep_fails_the_task() -> None:
    """A non-JSON result with a store fails the task with an error naming it."""
    flow = Flow(store=MemoryStore())

    @flow.task
    def ids() -> set[int]:
        return {1, 2}

    job = flow.execute()
    assert job.status == JobStatus.FAILED and job.task_status("ids") == "failed"
    assert job.errors[0].error_type == TaskResultError.__name__
    assert "Task 'ids' returned a set" in job.errors[0].message


def test_a_version_1_store_gains_task_runs_when_opened(tmp_path: Path) -> None:
    """A store file of schema version 1 (no task runs) is migrated and keeps results."""
    import sqlite3

    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE task_runs")
    db.execute("DROP INDEX jobs_queue")  # and the columns of version 3 (leases)
    for column in ("lease_owner", "lease_since", "lease_heartbeat", "lease_expires"):
        db.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    for column in ("request", "request_reason", "queued_at"):
        db.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with SQLiteStore(path) as store:
        job = etl(store=store).execute(entry_params={"path": "p"})
        assert store.load(job.job_id).output("load") == "1 row(s) to p"


def test_without_a_store_any_result_is_kept() -> None:
    """Without a store a task may return anything."""
    flow = Flow()

    @flow.task
    def ids() -> set[int]:
        return {1, 2}

    assert flow.execute().output("ids") == {1, 2}


# -- tasks and routines --------------------------------------------------------------------


def test_a_routine_wired_after_a_task_receives_its_result(executor: str) -> None:
    """``flow.connect('clean', 'done', 'audit', 'input')`` delivers ``result``."""
    flow = etl(executor)
    audit = Collect()
    flow.add_routine(audit, "audit")
    flow.connect("clean", "done", "audit", "in")
    flow.execute(entry_params={"path": "p"})
    assert audit.items == [{"result": [{"id": 1, "ok": True}]}]


class Numbers(Routine):
    """Emits ``ready(rows=...)`` when called with ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.make)
        self.define_event("ready", ["rows"])

    def make(self, count: int) -> None:
        """Emit ``count`` rows."""
        self.emit("ready", rows=list(range(count)))


def test_a_routine_event_into_a_task_is_one_more_dependency(executor: str) -> None:
    """A task waits for a wired routine event too, its data bound by name."""
    flow = Flow(executor=executor)
    flow.add_routine(Numbers(), "source")

    @flow.task
    def label(prefix: str) -> str:
        return prefix.upper()

    @flow.task(depends_on=[label])
    def report(label: str, rows: list[int]) -> str:
        return f"{label}: {len(rows)}"

    flow.connect("source", "ready", "report", "input")
    assert not [p for p in flow.validate() if "'rows'" in p.message]
    job = flow.execute("source", {"count": 3, "prefix": "n"})
    assert job.output("report") == "N: 3"


def test_a_task_whose_routine_source_never_emits_ends_skipped() -> None:
    """When a wired routine never delivers, the task ends skipped, not pending."""
    flow = Flow()
    flow.add_routine(Numbers(), "source")

    @flow.task
    def report(rows: list[int]) -> int:
        return len(rows)

    flow.connect("source", "ready", "report", "input")
    job = flow.execute()
    assert job.status == JobStatus.COMPLETED and job.task_status("report") == "skipped"
    assert "source.ready->report.input" in job.skipped[0].reason


# -- saving ----------------------------------------------------------------------------------


def test_a_flow_of_tasks_saves_and_loads(tmp_path: Path) -> None:
    """A saved flow of tasks loads and runs the same."""
    flow = Flow(flow_id="dag")
    for name in ("diamond",):
        CATALOGUE[name].build(flow)
    path = tmp_path / "dag.yaml"
    flow.save(path)
    loaded = Flow.load(path, allowed_modules=("task_catalogue",))
    assert isinstance(loaded.get_routine("combine"), Task)
    assert (
        loaded.execute(entry_params={"n": 3}).outputs == flow.execute(entry_params={"n": 3}).outputs
    )


def test_a_flow_file_declares_tasks(tmp_path: Path) -> None:
    """``tasks:`` in a flow file builds the tasks with their options."""
    path = tmp_path / "etl.yaml"
    path.write_text(
        "format: flowforge/flow\nversion: 1\nflow_id: etl\ntasks:\n"
        "  numbers: {function: 'task_catalogue:numbers'}\n"
        "  double: {function: 'task_catalogue:double', depends_on: [numbers], retries: 3}\n"
    )
    flow = Flow.load(path, allowed_modules=("task_catalogue",))
    double = flow.get_routine("double")
    assert isinstance(double, Task) and double.retries == 3
    assert flow.execute(entry_params={"n": 2}).output("double") == [0, 2]


def test_a_flow_file_with_a_task_cycle_says_where(tmp_path: Path) -> None:
    """Loading a file whose tasks form a cycle reports it at the task."""
    from flowforge import SerializationError

    path = tmp_path / "cycle.yaml"
    path.write_text(
        "flow_id: c\ntasks:\n"
        "  a: {function: 'task_catalogue:numbers', depends_on: [b]}\n"
        "  b: {function: 'task_catalogue:numbers', depends_on: [a]}\n"
    )
    with pytest.raises(SerializationError, match=r"flow.tasks.b: .*a -> b -> a"):
        Flow.load(path, allowed_modules=("task_catalogue",))


# -- the catalogue, on every executor --------------------------------------------------------


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue(name: str, executor: str) -> None:
    """Each catalogue DAG ends as expected on the sequential and thread executors."""
    case = CATALOGUE[name]
    flow = Flow(executor=executor)
    case.build(flow)
    task_catalogue.check(case, flow.execute(entry_params=case.params))


@pytest.fixture(scope="module")
def process_executor() -> Iterator[Executor]:
    """One pool of two worker processes for the module."""
    flow = Flow(executor="process", max_workers=2)
    yield flow.executor
    flow.close()


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[DaskExecutor]:
    """One local Dask cluster of two worker processes for the module."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
        warnings.filterwarnings("ignore", r"unclosed <socket", ResourceWarning)
        flow = Flow(executor="dask", max_workers=2)
        executor = flow.executor
        assert isinstance(executor, DaskExecutor)
        executor.client().wait_for_workers(2, timeout=30)
    yield executor
    flow.close()


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_on_processes(name: str, process_executor: Executor) -> None:
    """Each catalogue DAG ends as expected on the process executor."""
    case = CATALOGUE[name]
    flow = Flow(executor=process_executor)
    case.build(flow)
    task_catalogue.check(case, flow.execute(entry_params=case.params))


def test_catalogue_on_dask(dask_executor: DaskExecutor) -> None:
    """Every catalogue DAG ends as expected on a local Dask cluster."""
    for case in CATALOGUE.values():
        flow = Flow(executor=dask_executor)
        case.build(flow)
        task_catalogue.check(case, flow.execute(entry_params=case.params))


# -- the command line ---------------------------------------------------------------------

ETL_FLOW = Path(__file__).resolve().parents[1] / "examples" / "etl_tasks.yaml"
ORDERS = ETL_FLOW.parent / "data" / "orders.csv"


def invoke(*args: str) -> Any:
    """Run ``flowforge ARGS`` in this process, through click's runner."""
    from click.testing import CliRunner

    from flowforge.cli import build_cli

    return CliRunner().invoke(build_cli(), list(args), prog_name="flowforge")


def test_cli_validate_show_and_graph_handle_tasks() -> None:
    """validate, show and graph read a flow file of tasks."""
    validated = invoke("validate", str(ETL_FLOW))
    assert validated.exit_code == 0 and "needs job param(s) 'path'" in validated.output
    shown = invoke("show", str(ETL_FLOW))
    assert "report  (task etl_tasks:report, after by_region, top_products" in shown.output
    graph = invoke("graph", str(ETL_FLOW))
    assert "r_clean -- " in graph.output and "--> r_report" in graph.output


def test_cli_runs_a_flow_of_tasks_without_an_entry(tmp_path: Path) -> None:
    """``flowforge run`` starts every task with the --param values."""
    import subprocess
    import sys

    store = tmp_path / "jobs.db"
    command = ["run", str(ETL_FLOW), "--store", str(store), "--param", f"path={ORDERS}"]
    result = subprocess.run(
        [sys.executable, "-m", "flowforge.cli", *command, "--quiet"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with SQLiteStore(store) as jobs:
        (job,) = jobs.list_jobs()
        assert jobs.load(job.job_id).output("by_region")["north"] == 114156.5


def test_a_task_decorated_at_module_level_runs_on_processes() -> None:
    """A module-level ``@flow.task`` function (shadowed by its Task) still ships to workers."""
    import sys

    from flowforge.runtime.executors import ProcessExecutor

    sys.path.insert(0, str(ETL_FLOW.parent))  # before the workers start: they import it too
    flow = Flow.load(ETL_FLOW)
    flow.executor = ProcessExecutor(max_workers=1)
    try:
        job = flow.execute(entry_params={"path": str(ORDERS), "top": 1})
    finally:
        flow.close()
        sys.path.remove(str(ETL_FLOW.parent))
    assert job.output("top_products") == [["doohickey", 158130.0]]
    assert isinstance(sys.modules["etl_tasks"].clean, Task)
