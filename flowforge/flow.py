"""Flows: a reusable definition of routines and connections, and how jobs run.

A :class:`Flow` is a definition only. Every job it runs gets its own
:class:`~flowforge.JobState` (pending messages, slot merge state, statuses,
history, tracker), so jobs of one flow can run at the same time from
several threads without mixing. See :mod:`flowforge.runtime.executors` for
the order in which the sequential executor runs handlers.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from ._activation import CURRENT
from ._flowfile import dump_flow, load_flow
from .connection import Connection
from .error_handler import ErrorHandler, ErrorStrategy
from .errors import (
    DefinitionError,
    JobStateError,
    UnknownNameError,
    ValidationError,
    quoted,
)
from .execution_tracker import ExecutionTracker
from .job_state import DEFAULT_RETENTION, JobState, JobStatus, Message
from .routine import Routine, lookup
from .runtime import tasks as task_hooks
from .runtime._async import AsyncRunner
from .runtime.executors import Executor, make_executor
from .runtime.plan import Plan, compile_plan
from .runtime.scheduler import JobRunner, Journal
from .serialization import dump_file, load_file
from .task import PARAMS_SOURCE, Task, add_task, check_runnable, covered_by_tasks, task_problems
from .task import tasks_of as _tasks_of
from .validation import Problem, find_problems

#: Default cap on calls per job of a routine that sits on a loop.
DEFAULT_MAX_ACTIVATIONS = 1_000_000
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class Flow:
    """Routines wired event-to-slot, and the jobs that run through them.

    Args:
        flow_id: The flow's id; a random one is made when omitted.
        executor: ``"sequential"`` (default), ``"thread"``, ``"process"``,
            ``"dask"`` (the ``flowforge[dask]`` extra), or an
            :class:`~flowforge.runtime.executors.Executor`.
        max_workers: Pool size for a parallel executor.
        error_handler: The default :class:`~flowforge.ErrorHandler` (STOP).
        retention: How many history entries, errors and event deliveries a
            job keeps (older ones are counted, not kept).
        max_activations: Cap on calls per job of each routine on a loop
            (``None`` disables it).
        store: Where jobs are checkpointed (see :mod:`flowforge.store`); a
            job's own ``store=`` wins.

    Example:
        >>> from flowforge import Flow
        >>> from flowforge.testing import Collect, Double
        >>> flow = Flow(flow_id="demo")
        >>> flow.add_routine(Double(), "double")
        'double'
        >>> flow.add_routine(Collect(), "sink")
        'sink'
        >>> flow.connect("double", "out", "sink", "in")
        Connection('double.out->sink.in')
        >>> print(flow.execute("double", {"value": 21}).status)
        completed
        >>> flow.get_routine("sink").items
        [{'value': 42}]
    """

    def __init__(
        self,
        flow_id: str | None = None,
        *,
        executor: str | Executor | None = None,
        max_workers: int | None = None,
        error_handler: ErrorHandler | None = None,
        retention: int = DEFAULT_RETENTION,
        max_activations: int | None = DEFAULT_MAX_ACTIVATIONS,
        store: Journal | None = None,
    ) -> None:
        if retention < 1:
            raise DefinitionError(f"retention must be >= 1, got {retention!r}.")
        self.flow_id: str = flow_id or f"flow-{uuid.uuid4().hex[:12]}"
        self.executor: Executor = make_executor(executor, max_workers)
        self._error_handler: ErrorHandler = error_handler or ErrorHandler()
        self.retention = retention
        self._max_activations = max_activations
        self._plan_cache: Plan | None = None
        self.store = store
        #: Default entry for jobs started without one (set from a flow file).
        self.entry: dict[str, Any] | None = None
        self._routines: dict[str, Routine] = {}
        self._runners: dict[str, JobRunner] = {}
        self._tracker: ExecutionTracker | None = None

    # -- building ------------------------------------------------------------

    @property
    def routines(self) -> Mapping[str, Routine]:
        """Routines by id, in the order they were added (read-only)."""
        return MappingProxyType(self._routines)

    def get_routine(self, routine_id: str) -> Routine | None:
        """The routine with that id, or ``None``."""
        return self._routines.get(routine_id)

    def add_routine(self, routine: Routine, routine_id: str | None = None) -> str:
        """Add ``routine`` under ``routine_id`` (made from its class name if omitted).

        Returns:
            The routine's id.
        """
        _check_routine(routine)
        if routine._routine_id is not None:
            raise DefinitionError(
                f"This {type(routine).__name__} is already in a flow as '{routine._routine_id}'. "
                "A routine belongs to one flow: create another instance."
            )
        rid = routine_id or self._new_id(routine)
        if not isinstance(rid, str) or not _ID.match(rid):
            raise DefinitionError(
                f"Routine id {rid!r} is not valid: use letters, digits, '_' and '-', "
                "starting with a letter or '_' (no '.', which separates ids from slot names)."
            )
        if rid in self._routines:
            raise DefinitionError(
                f"Flow '{self.flow_id}' already has a routine '{rid}'. Choose another id."
            )
        routine._routine_id = rid
        routine._on_change = self._invalidate
        self._routines[rid] = routine
        for connection in routine._connections():
            connection.refresh()
        self._invalidate()
        return rid

    def _invalidate(self) -> None:
        self._plan_cache = None

    def _new_id(self, routine: Routine) -> str:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(routine).__name__).lower()
        n = 1
        while f"{base}_{n}" in self._routines:
            n += 1
        return f"{base}_{n}"

    def connect(
        self,
        source_routine_id: str,
        source_event: str,
        target_routine_id: str,
        target_slot: str,
        param_mapping: Mapping[str, str] | None = None,
    ) -> Connection:
        """Connect ``source.event`` to ``target.slot``; returns the :class:`Connection`.

        Raises:
            UnknownNameError: a routine, event or slot does not exist; the
                message lists the names that do.
        """
        source = self._routines.get(source_routine_id)
        target = self._routines.get(target_routine_id)
        event = None if source is None else source._events.get(source_event)
        slot = None if target is None else target._slots.get(target_slot)
        if event is None or slot is None:
            self._connect_error(source_routine_id, source_event, target_routine_id, target_slot)
        return Connection(event, slot, param_mapping)

    def _connect_error(
        self, source_id: str, event_name: str, target_id: str, slot_name: str
    ) -> NoReturn:
        label = f"Cannot connect '{source_id}' -> '{target_id}'"
        source = lookup("routine", f"{label}: flow '{self.flow_id}'", source_id, self._routines)
        target = lookup("routine", f"{label}: flow '{self.flow_id}'", target_id, self._routines)
        lookup("event", f"{label}: '{source_id}'", event_name, source.events)
        lookup("slot", f"{label}: '{target_id}'", slot_name, target.slots)
        raise AssertionError("unreachable: one of the names above is unknown")

    @property
    def connections(self) -> list[Connection]:
        """Every connection between this flow's routines, in the order made."""
        mine = {id(r) for r in self._routines.values()}
        found = [
            c
            for r in self._routines.values()
            for e in r.events.values()
            for c in e.connections
            if id(c.slot.routine) in mine
        ]
        return sorted(found, key=lambda c: c._serial)

    def set_error_handler(self, error_handler: ErrorHandler) -> None:
        """Set the flow's default error handler (a routine's own wins)."""
        self.error_handler = error_handler

    @property
    def error_handler(self) -> ErrorHandler:
        """The flow's default :class:`~flowforge.ErrorHandler`."""
        return self._error_handler

    @error_handler.setter
    def error_handler(self, error_handler: ErrorHandler) -> None:
        if not isinstance(error_handler, ErrorHandler):
            raise TypeError(f"expected an ErrorHandler, got {type(error_handler).__name__}.")
        self._error_handler = error_handler
        self._invalidate()

    @property
    def max_activations(self) -> int | None:
        """Cap on calls per job of each routine on a loop (``None``: no cap)."""
        return self._max_activations

    @max_activations.setter
    def max_activations(self, value: int | None) -> None:
        self._max_activations = value
        self._invalidate()

    def validate(
        self,
        entry: str | None = None,
        *,
        strict: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> list[Problem]:
        """Every problem of the flow at once, each with a hint.

        Args:
            entry: The routine jobs start at (default: the flow's ``entry``),
                for the reachability check.
            strict: Raise :class:`~flowforge.errors.ValidationError` if any
                problem is an error.
            params: The job params a run will have (default: the flow's
                entry params); tasks' parameters they fill are not listed.
        """
        entry = entry or (self.entry or {}).get("routine_id")
        problems = find_problems(self._routines, self.connections, entry)
        tasks = _tasks_of(self._routines)
        if tasks:
            problems = [p for p in problems if not covered_by_tasks(p, tasks)]
            given = params if params is not None else (self.entry or {}).get("params")
            problems += task_problems(self._routines, self.connections, given)
        if strict and any(p.severity == "error" for p in problems):
            raise ValidationError(problems)
        return problems

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        depends_on: Iterable[Task | str] = (),
        retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        timeout: float | None = None,
        max_concurrency: int = 1,
        error_strategy: ErrorStrategy | str | None = None,
    ) -> Any:
        """Add a function as a :class:`~flowforge.Task`; a decorator, bare or with arguments.

        The task runs once per job, when every dependency has succeeded, with
        each dependency's result bound to the parameter of its name, then the
        job's params by name (see :mod:`flowforge.task`).

        Args:
            fn: The function (given when used bare, ``@flow.task``).
            name: The task's name (default: the function's).
            depends_on: Tasks or task names, including tasks defined later.
            retries: How many more attempts after a failed first one.
            retry_delay: Seconds before the first retry.
            retry_backoff: Factor applied to the delay for each further retry.
            timeout: Seconds one attempt may take, or ``None``.
            max_concurrency: The routine policy of the same name.
            error_strategy: What a failure does once retries are used up:
                ``"stop"``, ``"continue"`` or ``"skip"`` (default: the flow's).

        Returns:
            The :class:`~flowforge.Task`, still callable as the plain function
            (or, with no ``fn``, a decorator that returns it).

        Raises:
            DefinitionError: the task closes a dependency cycle, or its name
                is taken.

        Example:
            >>> from flowforge import Flow
            >>> flow = Flow(flow_id="numbers")
            >>> @flow.task
            ... def base(n):
            ...     return n * 10
            >>> @flow.task(depends_on=[base])
            ... def plus_one(base):
            ...     return base + 1
            >>> flow.execute(entry_params={"n": 4}).outputs
            {'base': 40, 'plus_one': 41}
            >>> plus_one(1)
            2
        """

        def make(fn: Callable[..., Any]) -> Task:
            options = {"retry_delay": retry_delay, "retry_backoff": retry_backoff}
            task = Task(
                fn,
                name=name,
                depends_on=depends_on,
                retries=retries,
                timeout=timeout,
                max_concurrency=max_concurrency,
                error_strategy=error_strategy,
                **options,
            )
            return add_task(self, task)

        return make if fn is None else make(fn)

    # -- running -------------------------------------------------------------

    def execute(
        self,
        entry_routine_id: str | None = None,
        entry_params: Mapping[str, Any] | None = None,
        *,
        entry_slot: str | None = None,
        job_state: JobState | None = None,
        store: Journal | None = None,
    ) -> JobState:
        """Run a job from ``entry_routine_id`` until no work is left.

        Handler errors never propagate: they are recorded in the JobState and
        the error strategy decides. Misuse (unknown ids, bad arguments) raises
        before the job starts.

        Args:
            entry_routine_id: Where the job starts (default: the flow's entry).
            entry_params: Delivered to the entry routine (``routine(**params)``).
            entry_slot: The slot to deliver to, when the routine has several.
            job_state: A fresh JobState to run in (for example with a chosen
                ``job_id``); one is made when omitted.
            store: Checkpoint this job there (default: the flow's store).
        """
        job = self._new_job(entry_routine_id, entry_params, entry_slot, job_state)
        return self._run(job, store=store)

    async def execute_async(
        self,
        entry_routine_id: str | None = None,
        entry_params: Mapping[str, Any] | None = None,
        *,
        entry_slot: str | None = None,
        job_state: JobState | None = None,
        store: Journal | None = None,
    ) -> JobState:
        """Like :meth:`execute`, awaitable: the scheduler runs in a worker thread
        and ``async def`` handlers run on the calling event loop."""
        job = self._new_job(entry_routine_id, entry_params, entry_slot, job_state)
        return await asyncio.to_thread(self._run, job, asyncio.get_running_loop(), store)

    def resume(self, job_state: JobState, *, store: Journal | None = None) -> JobState:
        """Continue a paused, interrupted or failed job to its end.

        Work finished before the pause is not done again. A failed job's
        failed message runs again, so fix the cause first.
        """
        self._check_resumable(job_state)
        return self._run(job_state, store=store)

    async def resume_async(self, job_state: JobState, *, store: Journal | None = None) -> JobState:
        """Like :meth:`resume`, awaitable (see :meth:`execute_async`)."""
        self._check_resumable(job_state)
        return await asyncio.to_thread(self._run, job_state, asyncio.get_running_loop(), store)

    def pause(self, job_state: JobState | None = None, reason: str | None = None) -> None:
        """Pause a running job: running calls finish, undelivered work stays in its JobState.

        With no ``job_state``: the job of the handler calling this, else the
        flow's only running job.
        """
        self._runner_for(job_state, "pause").request_pause(reason)

    def cancel(self, job_state: JobState | None = None, reason: str | None = None) -> None:
        """Cancel a running job: no new work starts; it ends ``cancelled``."""
        self._runner_for(job_state, "cancel").request_cancel(reason)

    @property
    def execution_tracker(self) -> ExecutionTracker | None:
        """The :class:`~flowforge.ExecutionTracker` of the latest job started."""
        return self._tracker

    @property
    def running_jobs(self) -> list[JobState]:
        """The jobs of this flow running now."""
        return [runner.job for runner in list(self._runners.values())]

    # -- running: internals --------------------------------------------------

    def _new_job(
        self,
        entry_routine_id: str | None,
        entry_params: Mapping[str, Any] | None,
        entry_slot: str | None,
        job_state: JobState | None,
    ) -> JobState:
        defaults = self.entry or {}
        rid = entry_routine_id or defaults.get("routine_id")
        tasks = _tasks_of(self._routines)
        if rid is None and not tasks:
            raise DefinitionError(
                f"Flow '{self.flow_id}' has no entry: pass the routine to start at, e.g. "
                f"flow.execute({next(iter(self._routines), 'routine_id')!r}, {{...}})."
            )
        if entry_params is None and entry_routine_id is None:
            entry_params = defaults.get("params")
        if entry_slot is None and entry_routine_id is None:
            entry_slot = defaults.get("slot")
        params = _check_params(entry_params)
        if tasks:
            check_runnable(self.flow_id, self._routines, self.connections, params)
            rid = None if rid in tasks else rid
        slot = None if rid is None else self._entry_slot(rid, entry_slot)
        job = (
            job_state
            if job_state is not None
            else JobState(flow_id=self.flow_id, retention=self.retention)
        )
        if job.status is not JobStatus.PENDING or job.pending:
            raise JobStateError(
                f"execute() needs a fresh JobState; job {job.job_id} is {job.status}. "
                "Use flow.resume(job_state) to continue it.",
                job_id=job.job_id,
                status=str(job.status),
            )
        job.flow_id = self.flow_id
        job.entry = {"routine_id": rid, "slot": slot, "params": params}
        if rid is not None:
            job.pending.append(Message(job.next_seq, rid, slot, params, None))
            job.next_seq += 1
        for tid in tasks:  # every task's join waits for the job params too
            job.pending.append(Message(job.next_seq, tid, "input", params, PARAMS_SOURCE))
            job.next_seq += 1
        return job

    def _entry_slot(self, rid: str, entry_slot: str | None) -> str | None:
        routine = self._routines.get(rid) or lookup(
            "routine", f"Flow '{self.flow_id}'", rid, self._routines
        )
        if entry_slot is not None:
            if entry_slot not in routine._slots:
                lookup("slot", f"Entry routine '{rid}'", entry_slot, routine.slots)
            return entry_slot
        if type(routine).__call__ is not Routine.__call__:
            return None
        if len(routine.slots) != 1:
            raise DefinitionError(
                f"Entry routine '{rid}' has {len(routine.slots)} slots "
                f"({quoted(routine.slots)}); name the one to start at with entry_slot=..., "
                "or override __call__ to start work another way."
            )
        only: str = next(iter(routine.slots))
        return only

    def _check_resumable(self, job: JobState) -> None:
        if not isinstance(job, JobState):
            raise TypeError(f"resume() takes a JobState, got {type(job).__name__}.")
        if job.flow_id != self.flow_id:
            raise JobStateError(
                f"Job {job.job_id} belongs to flow '{job.flow_id}', not '{self.flow_id}'. "
                "Resume it with the flow it was started on.",
                job_id=job.job_id,
                status=str(job.status),
            )
        if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            raise JobStateError(
                f"Job {job.job_id} is {job.status}; only paused, interrupted or failed jobs "
                "can be resumed.",
                job_id=job.job_id,
                status=str(job.status),
            )
        if job.job_id in self._runners:
            raise JobStateError(
                f"Job {job.job_id} is already running.", job_id=job.job_id, status=str(job.status)
            )
        unknown = sorted(
            {
                f"{m.routine_id}.{m.slot}"
                for m in job.pending
                if not self._has_target(m.routine_id, m.slot)
            }
        )
        if unknown:
            raise JobStateError(
                f"Job {job.job_id} has pending messages for {quoted(unknown)}, which flow "
                f"'{self.flow_id}' does not have. Resume it with the flow it was started on.",
                job_id=job.job_id,
                status=str(job.status),
            )
        job.error = None

    def _has_target(self, routine_id: str, slot: str | None) -> bool:
        routine = self._routines.get(routine_id)
        return routine is not None and (slot is None or slot in routine.slots)

    def _run(
        self,
        job: JobState,
        loop: asyncio.AbstractEventLoop | None = None,
        store: Journal | None = None,
    ) -> JobState:
        plan = self._plan()
        resumed = job.started_at is not None
        states = job.routine_states
        for rid, routine in self._routines.items():
            # The routine's counters dict is shared, not copied: a job replaces
            # its stats dict on every change and never mutates one in place.
            if rid not in states:
                states[rid] = {"status": "pending", "activations": 0, "stats": routine._own_stats}
            elif "activations" not in states[rid]:
                states[rid] = {
                    "status": "pending",
                    "activations": 0,
                    "stats": routine._own_stats,
                    **states[rid],
                }
        task_hooks.begin(job, self._routines)
        if job.tracker.job_id is None:
            job.tracker = ExecutionTracker(self.flow_id, job.job_id, job.retention)
        async_runner = AsyncRunner(loop)
        runner = JobRunner(self, plan, job, self.executor, async_runner, store or self.store)
        self._runners[job.job_id] = runner
        self._tracker = job.tracker
        try:
            runner.run()
        finally:
            del self._runners[job.job_id]
            async_runner.close()
            # A resumed job brings its counters back to freshly loaded routines too.
            changed = list(job.routine_states) if resumed else runner.stats_changed
            for rid in changed:
                owner = self._routines.get(rid)
                state = job.routine_states.get(rid)
                if owner is not None and state is not None and "stats" in state:
                    owner._own_stats = dict(state["stats"])
        return job

    def _plan(self) -> Plan:
        plan = self._plan_cache
        if plan is None:
            plan = self._plan_cache = compile_plan(
                self._routines, self.connections, self.error_handler, self.max_activations
            )
        return plan

    def _runner_for(self, job: JobState | None, action: str) -> JobRunner:
        if job is not None:
            runner = self._runners.get(job.job_id)
            if runner is None:
                raise JobStateError(
                    f"Cannot {action} job {job.job_id}: it is not running in flow "
                    f"'{self.flow_id}' (status: {job.status}).",
                    job_id=job.job_id,
                    status=str(job.status),
                )
            return runner
        ctx = CURRENT.get()
        if ctx is not None and ctx.job_id in self._runners:
            return self._runners[ctx.job_id]
        runners = list(self._runners.values())
        if len(runners) != 1:
            raise JobStateError(
                f"Cannot {action}: flow '{self.flow_id}' has {len(runners)} running jobs. "
                f"Pass the job: flow.{action}(job_state).",
                job_id="",
                status="",
            )
        return runners[0]

    # -- saving --------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """The flow as plain data (the flow-file format)."""
        return dump_flow(self)

    def deserialize(
        self, data: Mapping[str, Any], *, allowed_modules: tuple[str, ...] = ()
    ) -> Flow:
        """Fill this empty Flow from :meth:`serialize` output; returns ``self``."""
        if self._routines:
            raise DefinitionError(
                f"deserialize() fills an empty Flow; flow '{self.flow_id}' already has "
                f"routines {quoted(self._routines)}. Use Flow.from_dict(data) instead."
            )
        loaded = load_flow(data, type(self), allowed_modules)
        self.__dict__.update(loaded.__dict__)
        for routine in self._routines.values():
            routine._on_change = self._invalidate
        self._invalidate()
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, allowed_modules: tuple[str, ...] = ()) -> Flow:
        """Build a new Flow from :meth:`serialize` output."""
        return cls().deserialize(data, allowed_modules=allowed_modules)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the flow to ``path`` as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        dump_file(self.serialize(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, allowed_modules: tuple[str, ...] = ()) -> Flow:
        """Read a flow saved with :meth:`save` (or written by hand)."""
        return cls.from_dict(load_file(path), allowed_modules=allowed_modules)

    def close(self) -> None:
        """Release what the executor keeps between jobs (worker pools, clusters)."""
        self.executor.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Flow {self.flow_id!r}: {len(self._routines)} routines>"


def _check_routine(routine: Any) -> None:
    if not isinstance(routine, Routine):
        raise TypeError(
            f"add_routine() takes a Routine instance, got {type(routine).__name__}. "
            "Subclass flowforge.Routine."
        )
    if not hasattr(routine, "_slots"):
        raise DefinitionError(
            f"{type(routine).__name__}.__init__ did not call super().__init__(); add it as "
            "the first line."
        )


def _check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(
            f"entry_params must be a mapping of parameter names to values, got "
            f"{type(params).__name__}. Write entry_params={{'data': ...}}."
        )
    return dict(params)


__all__ = ["DEFAULT_MAX_ACTIVATIONS", "Flow", "UnknownNameError"]
