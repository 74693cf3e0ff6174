"""The scheduler's side of tasks: recording what became of each task in a job.

The scheduler calls these hooks for routines that are :class:`~flowforge.task.Task`
instances only (``plan.tasks``), on its own thread, so they may change the
job's state. Each change to a task's :class:`~flowforge.job_state.TaskRun` is
journaled at the step that made it, with the task as the step's routine, so
a store keeps results and statuses exactly as far as the job got.

- :func:`begin`: every task has a run (``pending`` to start with); runs of
  tasks whose input never closed (cut short by a pause, a failure under
  STOP or a cancel) go back to ``pending``, since the task runs again.
- :func:`started`: the task's input fired, its call is on its way.
- :func:`before_commit`: a call returned: it succeeded (its result is kept)
  or raised :class:`~flowforge.Skip`. A result the job's store cannot keep
  is refused by the store's own check (``Journal.unstorable``) before this;
  :func:`unstorable_result` words that refusal as the task's
  (:class:`~flowforge.task.TaskResultError`).
- :func:`after_commit` and :func:`after_failure`: a skip, or a failure under
  CONTINUE or SKIP, skips the task's dependents (``upstream 'x' skipped``).
- :func:`at_end`: a failed or cancelled job's tasks that never started end
  ``cancelled``; a completed job's tasks whose input never completed end
  ``skipped``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..error_handler import ErrorHandler, ErrorStrategy
from ..errors import UnstorableDataError
from ..job_state import ErrorInfo, JobState, JobStatus, SkippedWork, TaskRun
from ..task import CLOSED, PARAMS_SOURCE, SKIPPED, RetryThen, Task, TaskResultError
from .activation import Outcome

if TYPE_CHECKING:
    from ..routine import Routine
    from .scheduler import JobRunner


def task_dependents(routines: Mapping[str, Routine]) -> dict[str, tuple[str, ...]]:
    """Each task's id, with the ids of the tasks its ``done`` event feeds."""
    found: dict[str, tuple[str, ...]] = {}
    for rid, routine in routines.items():
        if isinstance(routine, Task):
            found[rid] = tuple(
                dict.fromkeys(
                    c.target_id
                    for c in routine.events["done"].connections
                    if isinstance(c.slot.routine, Task)
                )
            )
    return found


def task_handlers(
    routines: Mapping[str, Routine], default: ErrorHandler
) -> dict[str, ErrorHandler]:
    """The handlers of tasks with retries and no ``error_strategy``: retries, then the
    flow's strategy (STOP when the flow's is RETRY, whose own retries do not apply)."""
    then = ErrorStrategy.STOP if default.strategy is ErrorStrategy.RETRY else default.strategy
    return {
        rid: attrs.evolve(routine.error_handler, then=then)
        for rid, routine in routines.items()
        if isinstance(routine, Task)
        and isinstance(routine.error_handler, RetryThen)
        and routine.error_handler.then is None
    }


def input_key(task_id: str) -> str:
    """The key of a task's input in ``JobState.slot_states``."""
    return f"{task_id}.input"


def closed(job: JobState, task_id: str) -> bool:
    """True once the task's input fired or the task was settled without running."""
    state = job.slot_states.get(input_key(task_id))
    return bool(state and state.get("#closed"))


def begin(job: JobState, task_ids: Iterable[str]) -> None:
    """Give every task a run, and send back to ``pending`` those cut short."""
    runs = job.task_runs
    for rid in task_ids:
        run = runs.get(rid)
        if run is None or (run.status != "pending" and not closed(job, rid)):
            job.set_task_run(rid, TaskRun())


def started(job: JobState, task_id: str) -> None:
    """The task's input fired: its call is on its way."""
    job.set_task_run(task_id, TaskRun("running"))


def before_commit(job: JobState, act: Any, outcome: Outcome) -> Outcome:
    """Record a successful call's result, or its skip (whose event goes no further)."""
    if not outcome.ok:
        return outcome
    rid = act.routine_id
    for event, data in outcome.emits:
        if event == SKIPPED:
            job.set_task_run(rid, TaskRun("skipped", data["reason"]))
            job.record_skip(SkippedWork(rid, "input", data["reason"]))
            return outcome.replace(emits=[e for e in outcome.emits if e[0] != SKIPPED])
    result = next((data["result"] for event, data in outcome.emits if event == "done"), None)
    job.set_task_run(rid, TaskRun("succeeded", None, result))
    return outcome


def unstorable_result(
    task_id: str, emits: Sequence[tuple[str, Any]], refused: UnstorableDataError
) -> UnstorableDataError:
    """The store's refusal of a task's result, worded as the task's."""
    if refused.event != "done":
        return refused
    result = next((data.get("result") for event, data in emits if event == "done"), None)
    error = TaskResultError(
        f"Task '{task_id}' returned a {type(result).__name__} the job's store cannot keep "
        f"({refused.__cause__ or refused}). A store keeps results as JSON: return dict, list, "
        "str, int, float, bool or None (convert it), or run the job without a store.",
        task=task_id,
    )
    error.__cause__ = refused.__cause__
    return error


def after_commit(runner: JobRunner, task_id: str) -> None:
    """After a successful call: a skipped task skips its dependents."""
    if runner.job.task_runs[task_id].status == "skipped":
        skip_dependents(runner, task_id, "skipped")


def after_failure(
    runner: JobRunner, task_id: str, strategy: ErrorStrategy, info: ErrorInfo
) -> None:
    """Record a failed call; under CONTINUE or SKIP its dependents are skipped."""
    error = f"{info.error_type}: {info.message}"
    if strategy is ErrorStrategy.SKIP:
        run = TaskRun("skipped", f"failed ({error}) and its strategy is SKIP")
    else:
        run = TaskRun("failed", error)
    runner.job.set_task_run(task_id, run)
    runner._journal_step((), (), task_id, None)
    if strategy is not ErrorStrategy.STOP:
        skip_dependents(runner, task_id, run.status)


def skip_dependents(runner: JobRunner, task_id: str, how: str) -> None:
    """Skip the tasks downstream of ``task_id``, each with its upstream's name."""
    job, dependents = runner.job, runner.plan.tasks
    todo = [(task_id, how, dep) for dep in dependents[task_id]]
    while todo:
        upstream, what, dep = todo.pop(0)
        if job.task_runs[dep].status != "pending":
            continue
        reason = f"upstream '{upstream}' {what}"
        job.set_task_run(dep, TaskRun("skipped", reason))
        job.set_slot_state(input_key(dep), dict(CLOSED))
        job.record_skipped_call(dep, "input", reason)
        runner._journal_step((), (), dep, input_key(dep))
        todo += [(dep, "skipped", nxt) for nxt in dependents[dep]]


def at_end(runner: JobRunner) -> None:
    """Settle the tasks that did not run, by how the job ended."""
    job = runner.job
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        reason = f"the job {'failed' if job.status is JobStatus.FAILED else 'was cancelled'} "
        for rid, run in job.task_runs.items():
            if run.status == "pending":
                job.set_task_run(rid, TaskRun("cancelled", reason + "before it started"))
    elif job.status is JobStatus.COMPLETED:
        for rid, run in job.task_runs.items():
            if run.status == "pending" and rid in runner.plan.tasks:
                _never_complete(job, runner.plan.routines[rid], rid)


def _never_complete(job: JobState, task: Routine, rid: str) -> None:
    state = job.slot_states.get(input_key(rid)) or {}
    sources = (*task._slots["input"].source_keys(), PARAMS_SOURCE)
    missing = [s for s in sources if not state.get(s)]
    reason = f"its input never completed: nothing came from {', '.join(missing)}"
    job.set_task_run(rid, TaskRun("skipped", reason))
    job.set_slot_state(input_key(rid), dict(CLOSED))
    job.record_skip(SkippedWork(rid, "input", reason, tuple(missing)))
