"""Flows: a reusable definition of routines and connections, and how jobs run.

A :class:`Flow` is a definition only: routines under ids and the ordered
list of connections between them, which the flow keeps itself (a connection
made by hand between two of its routines joins it; one reaching into another
flow is refused). Its options and names are checked when given. A flow built
from saved data is checked whole first (every problem listed in
:attr:`SerializationError.problems <flowforge.errors.SerializationError.problems>`) and
then built through the same ``add_routine``/``connect`` calls as by hand.
A flow whose join slot sits on a loop refuses to start. Every job it runs gets its own
:class:`~flowforge.JobState` (pending messages, slot merge state, statuses,
history, tracker), so jobs of one flow can run at the same time from
several threads without mixing. See :mod:`flowforge.runtime.executors` for
the order in which the sequential executor runs handlers.

Routine counters
    A routine's :meth:`~flowforge.Routine.stats` is its running total over
    every job run through that routine object (and what it was loaded
    with). A job's copy, ``job.runs[rid].stats``, is what that job did; it
    starts empty. When a run of a job (``execute`` or ``resume``) stops, the
    changes *that run* made to the job's copy
    (:meth:`JobState.stats_changes <flowforge.JobState.stats_changes>`) are added to the routine's
    total, under a lock, as deltas (numbers add up, other values are
    replaced). So the total is exact when jobs overlap, and resuming a job
    (in this process or in a fresh one, whose routines were loaded with
    their saved stats) adds only the work done after the resume point:
    work done before it was added by the run that did it.

Middleware
    :meth:`Flow.use` wraps every handler call of the flow's routines, outside
    each routine's own (:meth:`Routine.use <flowforge.Routine.use>`). The
    flow's plan composes each routine's chain once; the flow's middleware is
    saved with it by import path.

Resuming
    :meth:`Flow.resume` checks the JobState against the flow first and
    refuses, listing every problem, one it cannot run: a job that never
    started, routines, slots or slot states the flow does not have, or
    pending messages whose ``seq`` is repeated or not below ``next_seq``.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn, cast

from ._activation import CURRENT, merge_stats
from ._checks import check_flow_id, check_int, check_name
from ._flowfile import LoadedFlow, dump_flow, load_flow
from ._middleware import Middleware, checked
from ._pipeline import build_pipeline
from .connection import Connection
from .error_handler import ErrorHandler, ErrorStrategy
from .errors import (
    DefinitionError,
    DefinitionTypeError,
    JobStateError,
    UnknownNameError,
    ValidationError,
    quoted,
)
from .execution_tracker import ExecutionTracker
from .job_state import DEFAULT_RETENTION, JobState, JobStatus
from .routine import Routine, lookup
from .runtime import tasks as task_hooks
from .runtime._async import AsyncRunner
from .runtime.executors import Executor, make_executor
from .runtime.live import Inbox, JobHandle
from .runtime.plan import Plan, compile_plan
from .runtime.scheduler import JobRunner, Journal
from .serialization import MAX_FILE_BYTES, dump_file, load_file, module_names
from .task import PARAMS_SOURCE, Task, add_task, check_runnable, covered_by_tasks, task_problems
from .task import tasks_of as _tasks_of
from .validation import Problem, find_problems, join_cycles

#: Default cap on calls per job of a routine that sits on a loop.
DEFAULT_MAX_ACTIVATIONS = 1_000_000
#: Looked up once: an enum member by name costs about 80 ns, and every job checks it.
_PENDING = JobStatus.PENDING


class Flow:
    """Routines wired event-to-slot, and the jobs that run through them.

    Every option is checked here: a wrong type raises
    :class:`~flowforge.errors.DefinitionTypeError` (also a ``TypeError``), a
    value out of range :class:`~flowforge.errors.DefinitionError` (also a
    ``ValueError``).

    Args:
        flow_id: The flow's id (letters, digits, ``_``, ``-``, ``.``); a
            random one is made when omitted.
        executor: ``"sequential"`` (default), ``"thread"``, ``"process"``,
            ``"dask"`` (the ``flowforge[dask]`` extra), or an
            :class:`~flowforge.runtime.executors.Executor`.
        max_workers: Pool size for a parallel executor (an int >= 1).
        error_handler: The default :class:`~flowforge.ErrorHandler` (STOP).
        retention: How many history entries, errors and event deliveries a
            job keeps (an int >= 1; older ones are counted, not kept).
        max_activations: Cap on calls per job of each routine on a loop
            (an int >= 1; ``None`` disables it).
        store: Where jobs are checkpointed, an open store such as
            ``flowforge.store.SQLiteStore("jobs.db")`` (a path is refused:
            stores sit above flows, so a flow does not open one); a job's own
            ``store=`` wins.

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
        self.flow_id: str = _flow_id(flow_id)
        check_int(max_workers, "Flow max_workers", minimum=1, optional=True)
        self._retention: int = check_int(retention, "Flow retention", minimum=1)
        self._max_activations = _max_activations(max_activations)
        self._error_handler: ErrorHandler = _error_handler(error_handler)
        self.store = _store(store)
        self.executor: Executor = make_executor(executor, max_workers)
        self._plan_cache: Plan | None = None
        self._cycle: str | None = None
        #: Default entry for jobs started without one (set from a flow file).
        self.entry: dict[str, Any] | None = None
        self._routines: dict[str, Routine] = {}
        self._connections: list[Connection] = []
        self._runners: dict[str, JobRunner] = {}
        self._middleware: tuple[Middleware, ...] = ()
        self._tracker: ExecutionTracker | None = None
        self._stats_lock = threading.Lock()

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

        Raises:
            DefinitionError: the id is taken or not valid (letters, digits,
                ``_`` and ``-``, starting with a letter or ``_``), the routine
                is already in a flow, or it is wired to a routine of another flow.
        """
        # The usual checks are spelt out, not called: flows of tens of thousands
        # of routines are built this way.
        if not isinstance(routine, Routine):
            _check_routine(routine)
        try:
            taken = routine._routine_id
        except AttributeError:
            _check_routine(routine)  # says that __init__ did not call super().__init__()
            raise
        if taken is not None:
            raise DefinitionError(
                f"This {type(routine).__name__} is already in a flow as '{taken}'. "
                "A routine belongs to one flow: create another instance."
            )
        if routine_id is None:
            rid = self._new_id(routine)
        elif routine_id.__class__ is str and routine_id.isidentifier() and routine_id.isascii():
            rid = routine_id
        else:
            rid = check_name(routine_id, "Routine id")
        routines = self._routines
        if rid in routines:
            raise DefinitionError(
                f"Flow '{self.flow_id}' already has a routine '{rid}'. Choose another id."
            )
        connections = routine._connections() if routine._wired_outside else None
        if connections:
            self._check_wired_elsewhere(routine, connections)
        routine._routine_id = rid
        routine._flow = self
        routines[rid] = routine
        if connections:
            self._adopt(connections)
        self._plan_cache = self._cycle = None  # self._invalidate(), spelt out
        return rid

    def _adopt(self, connections: list[Connection]) -> None:
        """Take in the wires made to a routine before it was added, now that it has its id."""
        for connection in connections:
            connection.refresh()
            if connection.event.routine._flow is self and connection.slot.routine._flow is self:
                self._wired(connection)

    def _check_wired_elsewhere(self, routine: Routine, connections: list[Connection]) -> None:
        for connection in connections:
            for end in (connection.event.routine, connection.slot.routine):
                if end._flow is not None and end._flow is not self:
                    raise DefinitionError(
                        f"Cannot add this {type(routine).__name__} to flow '{self.flow_id}': it "
                        f"is connected to '{end.routine_label()}' of flow '{end._flow.flow_id}' "
                        f"({connection.key}), and a connection joins routines of one flow. "
                        "Disconnect it first, or add it to that flow."
                    )

    def _wired(self, connection: Connection) -> None:
        if connection._listed:
            return
        connection._listed = True
        self._plan_cache = self._cycle = None  # self._invalidate(), spelt out
        arriving = connection.slot._arriving
        if isinstance(arriving, list) and arriving[-1] is not connection:
            # Wired before its routines were added: keep the slot's order, which
            # a join combines by and which loading remakes from this list.
            later = set(arriving[arriving.index(connection) + 1 :])
            for i, existing in enumerate(self._connections):
                if existing in later:
                    self._connections.insert(i, connection)
                    return
        self._connections.append(connection)

    def _unwired(self, connection: Connection) -> None:
        if connection._listed:
            connection._listed = False
            self._connections.remove(connection)
        self._invalidate()

    def use(self, mw: Middleware) -> Middleware:
        """Wrap every handler call of every routine of this flow in ``mw(call, proceed)``.

        ``call`` is the :class:`~flowforge.ActivationInfo` of the call (with
        its read-only ``data``); ``proceed()`` runs the rest of the chain and
        the handler once and returns what the handler returned. The flow's
        middleware runs outside each routine's own (:meth:`Routine.use
        <flowforge.Routine.use>`), the first added outermost. Returns ``mw``,
        so it also works as a decorator. See :doc:`/guide/middleware`.

        Example:
            >>> from flowforge import Flow
            >>> from flowforge.testing import Collect, Double
            >>> seen = []
            >>> flow = Flow(flow_id="mw")
            >>> flow.add_routine(Double(), "double")
            'double'
            >>> flow.add_routine(Collect(), "sink")
            'sink'
            >>> _ = flow.connect("double", "out", "sink", "in")
            >>> @flow.use
            ... def note(call, proceed):
            ...     seen.append(f"{call.routine_id}.{call.slot}")
            ...     return proceed()
            >>> print(flow.execute("double", {"value": 2}).status)
            completed
            >>> seen
            ['double.in', 'sink.in']

        Raises:
            DefinitionTypeError: ``mw`` is not callable.
        """
        self._middleware = (*self._middleware, checked(mw, "Flow"))
        self._invalidate()
        return mw

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The flow's middleware, outermost first."""
        return self._middleware

    def _invalidate(self) -> None:
        # add_routine and _wired spell these lines out: keep them in step.
        self._plan_cache = None
        self._cycle = None

    def _new_id(self, routine: Routine) -> str:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(routine).__name__).lower()
        base = re.sub(r"[^a-z0-9_]", "_", base.encode("ascii", "replace").decode())
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
        routines = self._routines
        try:
            event = routines[source_routine_id]._events[source_event]
            slot = routines[target_routine_id]._slots[target_slot]
        except KeyError:
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
        """Every connection between this flow's routines, in the order made (a copy)."""
        return list(self._connections)

    def set_error_handler(self, error_handler: ErrorHandler) -> None:
        """Set the flow's default error handler (a routine's own wins)."""
        self.error_handler = error_handler

    @property
    def error_handler(self) -> ErrorHandler:
        """The flow's default :class:`~flowforge.ErrorHandler`."""
        return self._error_handler

    @error_handler.setter
    def error_handler(self, error_handler: ErrorHandler) -> None:
        if error_handler is None:
            raise DefinitionTypeError(
                "Flow error_handler must be an ErrorHandler, got None. To go back to the "
                "default, set ErrorHandler() (STOP)."
            )
        self._error_handler = _error_handler(error_handler)
        self._invalidate()

    @property
    def retention(self) -> int:
        """How many history entries, errors and deliveries each job keeps (>= 1)."""
        return self._retention

    @retention.setter
    def retention(self, value: int) -> None:
        self._retention = check_int(value, "Flow retention", minimum=1)

    @property
    def max_activations(self) -> int | None:
        """Cap on calls per job of each routine on a loop (``None``: no cap)."""
        return self._max_activations

    @max_activations.setter
    def max_activations(self, value: int | None) -> None:
        self._max_activations = _max_activations(value)
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
        deadline: float | None = None,
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
            deadline: Seconds the job may run; past them it ends ``failed``
                with a :class:`~flowforge.errors.DeadlineExceededError`.
        """
        job = self._new_job(entry_routine_id, entry_params, entry_slot, job_state)
        return self._run(job, store=store, deadline=_deadline(deadline))

    def start(
        self,
        entry: str | None = None,
        entry_params: Mapping[str, Any] | None = None,
        *,
        entry_slot: str | None = None,
        keep_open: bool = False,
        store: Journal | None = None,
        deadline: float | None = None,
        job_state: JobState | None = None,
    ) -> JobHandle:
        """Run a job in the background; returns its :class:`~flowforge.JobHandle` at once.

        Without ``keep_open`` the job ends when its work runs out, as with
        :meth:`execute`. With it, the job waits for more input
        (:meth:`JobHandle.submit <flowforge.JobHandle.submit>`) until
        :meth:`JobHandle.close <flowforge.JobHandle.close>`; ``entry_params``
        may then be omitted, and ``entry`` names where submitted items go.
        Given a paused ``job_state``, continues it in the background (open
        again if it was open). See :doc:`/guide/live`.
        """
        limit = _deadline(deadline)
        if job_state is not None and job_state.status is not JobStatus.PENDING:
            self._check_resumable(job_state)
            job = job_state
            if job.entry is None:
                raise JobStateError(
                    f"Job {job.job_id} has no entry, so submitted items have nowhere to go.",
                    job_id=job.job_id,
                    status=str(job.status),
                )
        else:
            job = self._new_job(
                entry,
                entry_params,
                entry_slot,
                job_state,
                queue=not keep_open or bool(entry_params),
            )
            job.open = bool(keep_open)
        assert job.entry is not None
        inbox = Inbox(job.open)
        runner, run = self._runner(job, store=store, inbox=inbox, deadline=limit)
        durable = runner.journal is not None
        target = (job.entry["routine_id"], job.entry.get("slot"))
        return JobHandle(runner, inbox, run, target, durable)

    @classmethod
    def pipeline(
        cls,
        flow_id: str | None,
        stages: Sequence[Routine | tuple[str, Routine]],
        **flow_options: Any,
    ) -> Flow:
        """A linear pipeline: each stage's one event feeds the next stage's one slot.

        Each stage is a routine, or a ``(name, routine)`` pair; its
        ``max_concurrency``, ``timeout``, retries and slot ``capacity`` come
        from the routine. ``flow_options`` go to :class:`Flow`. The first
        stage is the flow's entry.
        """
        return build_pipeline(cls(flow_id, **flow_options), stages)

    async def execute_async(
        self,
        entry_routine_id: str | None = None,
        entry_params: Mapping[str, Any] | None = None,
        *,
        entry_slot: str | None = None,
        job_state: JobState | None = None,
        store: Journal | None = None,
        deadline: float | None = None,
    ) -> JobState:
        """Like :meth:`execute`, awaitable: the scheduler runs in a worker thread
        and ``async def`` handlers run on the calling event loop."""
        job = self._new_job(entry_routine_id, entry_params, entry_slot, job_state)
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._run, job, loop, store, deadline=_deadline(deadline))

    def submit(
        self,
        entry_params: Mapping[str, Any] | None = None,
        *,
        store: Any = None,
        entry_routine_id: str | None = None,
        entry_slot: str | None = None,
        job_state: JobState | None = None,
    ) -> JobState:
        """Queue a job in ``store`` for a worker (``flowforge worker``) to run; returns it.

        The job is stored with status ``queued`` and the flow's definition;
        nothing runs here. The arguments are those of :meth:`execute`, the
        entry parameters first.

        Args:
            entry_params: Delivered to the entry routine (default: the flow's entry params).
            store: A :class:`flowforge.store.Store` (default: the flow's store).
            entry_routine_id: Where the job starts (default: the flow's entry).
            entry_slot: The slot to deliver to, when the routine has several.
            job_state: A fresh JobState to queue (for example with a chosen ``job_id``).
        """
        target: Any = store if store is not None else self.store
        if not callable(getattr(target, "submit", None)):
            raise TypeError(
                f"Flow.submit needs a store to queue the job in (a flowforge.store.Store), got "
                f"{target!r}. Pass store=open_store(URL)."
            )
        if entry_routine_id is None and entry_params is not None:
            # The given params replace the entry's, which execute() takes only with no params.
            defaults = self.entry or {}
            entry_routine_id = defaults.get("routine_id")
            entry_slot = entry_slot if entry_slot is not None else defaults.get("slot")
        job = self._new_job(entry_routine_id, entry_params, entry_slot, job_state)
        target.submit(job, self)
        return job

    def resume(self, job_state: JobState, *, store: Journal | None = None) -> JobState:
        """Continue a paused, interrupted or failed job to its end.

        Work finished before the pause is not done again. A failed job's
        failed message runs again, so fix the cause first. A job started with
        ``keep_open`` that is still open is continued with :meth:`start`.
        """
        self._check_resumable(job_state)
        self._refuse_open(job_state)
        return self._run(job_state, store=store)

    def _refuse_open(self, job: JobState) -> None:
        if job.open:
            raise JobStateError(
                f"Job {job.job_id} is an open live job (started with keep_open): resume() "
                "would wait for input forever. Continue it in the background with "
                "flow.start(job_state=job), submit to it, then close() it.",
                job_id=job.job_id,
                status=str(job.status),
            )

    async def resume_async(self, job_state: JobState, *, store: Journal | None = None) -> JobState:
        """Like :meth:`resume`, awaitable (see :meth:`execute_async`)."""
        self._check_resumable(job_state)
        self._refuse_open(job_state)
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

    def pending_count(self, job_state: JobState) -> int:
        """How many messages of ``job_state`` are waiting to be processed.

        Its pending queue, plus, while the job runs on a parallel executor,
        the messages held back per routine until the routine may take them
        or until the slots it feeds have room.
        Safe to call from another thread while the job runs.
        """
        runner = self._runners.get(job_state.job_id)
        held = runner.held_count() if runner is not None else 0
        return len(job_state.pending) + held

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
        queue: bool = True,
    ) -> JobState:
        self._check_startable()
        defaults = self.entry or {}
        rid = entry_routine_id or defaults.get("routine_id")
        tasks = self._plan().tasks
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
        if job.status is not _PENDING or job.pending:
            raise JobStateError(
                f"execute() needs a fresh JobState; job {job.job_id} is {job.status}. "
                "Use flow.resume(job_state) to continue it.",
                job_id=job.job_id,
                status=str(job.status),
            )
        job.flow_id = self.flow_id
        job.entry = {"routine_id": rid, "slot": slot, "params": params}
        if rid is not None and queue:
            job.queue(rid, slot, params)
        for tid in tasks:  # every task's join waits for the job params too
            job.queue(tid, "input", params, PARAMS_SOURCE)
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
        if len(routine._slots) != 1:
            raise DefinitionError(
                f"Entry routine '{rid}' has {len(routine.slots)} slots "
                f"({quoted(routine.slots)}); name the one to start at with entry_slot=..., "
                "or override __call__ to start work another way."
            )
        only: str = next(iter(routine._slots))
        return only

    def _check_resumable(self, job: JobState) -> None:
        if not isinstance(job, JobState):
            raise TypeError(f"resume() takes a JobState, got {type(job).__name__}.")
        self._check_startable()
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
        problems = self._resume_problems(job)
        if problems:
            raise JobStateError(
                f"Job {job.job_id} cannot be resumed by flow '{self.flow_id}':\n  - "
                + "\n  - ".join(problems),
                job_id=job.job_id,
                status=str(job.status),
            )
        job.error = None

    def _resume_problems(self, job: JobState) -> list[str]:
        """Everything in ``job`` that this flow cannot run, each with a hint."""
        if job.started_at is None and job.entry is None and not job.pending:
            return [
                "it never started and has no entry: start it with "
                "flow.execute(entry_routine_id, params, job_state=job)"
            ]
        problems = []
        targets = sorted(
            {
                f"{m.routine_id}.{m.slot}" if m.slot else m.routine_id
                for m in job.pending
                if not self._has_target(m.routine_id, m.slot)
            }
        )
        if targets:
            problems.append(
                f"it has pending messages for {quoted(targets)}, which the flow does not have; "
                "resume it with the flow it was started on"
            )
        states = sorted(
            {rid for rid in job.runs if rid not in self._routines}
            | {key for key in job.slot_states if not self._has_target(*key.split(".", 1))}
        )
        if states:
            problems.append(
                f"it holds state of {quoted(states)}, which the flow does not have (its "
                f"routines: {quoted(self._routines)})"
            )
        seqs = [m.seq for m in job.pending]
        if len(set(seqs)) != len(seqs):
            problems.append("a pending message is there twice (its seq repeats)")
        if seqs and max(seqs) >= job.next_seq:
            problems.append(
                f"pending seq {max(seqs)} is not below next_seq ({job.next_seq}); activation "
                "ids would repeat"
            )
        return problems

    def _has_target(self, routine_id: str, slot: str | None = None) -> bool:
        routine = self._routines.get(routine_id)
        return routine is not None and (slot is None or slot in routine.slots)

    def _run(
        self,
        job: JobState,
        loop: asyncio.AbstractEventLoop | None = None,
        store: Journal | None = None,
        *,
        deadline: float | None = None,
    ) -> JobState:
        _, run = self._runner(job, loop, store, deadline=deadline)
        run()
        return job

    def _runner(
        self,
        job: JobState,
        loop: asyncio.AbstractEventLoop | None = None,
        store: Journal | None = None,
        *,
        inbox: Inbox | None = None,
        deadline: float | None = None,
    ) -> tuple[JobRunner, Callable[[], None]]:
        """The job's runner, registered as running, and what runs it to its end."""
        plan = self._plan()
        job.add_routines(self._routines)
        if plan.tasks:
            task_hooks.begin(job, plan.tasks)
        if job.tracker.job_id is None:
            job.tracker = ExecutionTracker(self.flow_id, job.job_id, job.retention)
        async_runner = AsyncRunner(loop)
        journal = store or self.store
        runner = JobRunner(self, plan, job, self.executor, async_runner, journal, inbox, deadline)
        self._runners[job.job_id] = runner
        self._tracker = job.tracker

        def run() -> None:
            try:
                runner.run()
            finally:
                del self._runners[job.job_id]
                async_runner.close()
                self._add_stats(job)

        return runner, run

    def _add_stats(self, job: JobState) -> None:
        """Add what this run did to each routine's counters to its running total."""
        changes = job.stats_changes()
        if not changes:
            return
        with self._stats_lock:
            for rid, start, end in changes:
                owner = self._routines.get(rid)
                if owner is not None:
                    owner._own_stats = merge_stats(owner._own_stats, start, end)

    def _plan(self) -> Plan:
        plan = self._plan_cache
        if plan is None:
            plan = self._plan_cache = compile_plan(
                self._routines,
                self.connections,
                self.error_handler,
                self.max_activations,
                self._middleware,
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

    def _check_startable(self) -> None:
        # Once per definition: the result is kept until the wiring changes.
        if self._cycle is None:
            found = join_cycles(self._routines, self._connections)
            self._cycle = "\n".join(f"  - {p.where}: {p.message} {p.hint}" for p in found)
        if self._cycle:
            raise DefinitionError(
                f"Flow '{self.flow_id}' cannot start: a join slot is on a loop, so it would "
                f"wait forever and the job would end having done nothing:\n{self._cycle}"
            )

    # -- saving --------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """The flow as plain data (the flow-file format)."""
        return dump_flow(self)

    def deserialize(
        self, data: Mapping[str, Any], *, allowed_modules: str | Iterable[str] = ()
    ) -> Flow:
        """Fill this empty Flow from :meth:`serialize` output; returns ``self``.

        The data is checked whole first (see :doc:`/guide/flow_files`); on any
        problem a :class:`~flowforge.SerializationError` lists them all and
        this flow is left as it was.

        Args:
            data: The flow as plain data.
            allowed_modules: Module prefixes the data may import routine
                classes from, besides those allowed process-wide: one name
                or a list of names.
        """
        if self._routines:
            raise DefinitionError(
                f"deserialize() fills an empty Flow; flow '{self.flow_id}' already has "
                f"routines {quoted(self._routines)}. Use Flow.from_dict(data) instead."
            )
        self._build(load_flow(data, module_names(allowed_modules)))
        return self

    def _build(self, loaded: LoadedFlow) -> None:
        spec = loaded.spec
        old_executor, self.executor = self.executor, loaded.executor
        if old_executor is not loaded.executor:
            old_executor.close()
        self.flow_id = spec.flow_id or self.flow_id
        self.error_handler = spec.error_handler or ErrorHandler()
        self.retention = spec.retention
        self.max_activations = spec.max_activations
        for rid, routine in loaded.routines.items():
            self.add_routine(routine, rid)
        for task in loaded.tasks.values():
            add_task(self, task)
        for wire in spec.wires:
            self.connect(wire.source, wire.event, wire.target, wire.slot, wire.mapping)
        self.entry = None if spec.entry is None else dict(spec.entry)
        for mw in spec.middleware:
            self.use(mw)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, allowed_modules: str | Iterable[str] = ()
    ) -> Flow:
        """Build a new Flow from :meth:`serialize` output (see :meth:`deserialize`)."""
        return cls().deserialize(data, allowed_modules=allowed_modules)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the flow to ``path`` as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        dump_file(self.serialize(), path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, allowed_modules: str | Iterable[str] = ()
    ) -> Flow:
        """Read a flow saved with :meth:`save` (or written by hand).

        Raises:
            SerializationError: the file cannot be read, is not UTF-8, is
                larger than :data:`~flowforge.serialization.MAX_FILE_BYTES`, is
                not valid JSON/YAML, or is not a valid flow; its ``problems``
                list every problem with its place.
        """
        data = load_file(path, max_bytes=MAX_FILE_BYTES)
        return cls.from_dict(data, allowed_modules=allowed_modules)

    def close(self) -> None:
        """Release what the executor keeps between jobs (worker pools, clusters)."""
        self.executor.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Flow {self.flow_id!r}: {len(self._routines)} routines>"


def _flow_id(flow_id: Any) -> str:
    if flow_id is None:
        return f"flow-{uuid.uuid4().hex[:12]}"
    return check_flow_id(flow_id)


def _deadline(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DefinitionTypeError(
            f"deadline must be a number of seconds > 0 or None, got {type(value).__name__} "
            f"{value!r}. Write deadline=30."
        )
    return float(value)


def _max_activations(value: Any) -> int | None:
    result: int | None = check_int(value, "Flow max_activations", minimum=1, optional=True)
    return result


def _error_handler(error_handler: Any) -> ErrorHandler:
    if error_handler is None:
        return ErrorHandler()
    if not isinstance(error_handler, ErrorHandler):
        raise DefinitionTypeError(
            f"Flow error_handler must be an ErrorHandler, got {type(error_handler).__name__} "
            f"{error_handler!r}. Write error_handler=ErrorHandler(ErrorStrategy.CONTINUE), "
            "for example."
        )
    return error_handler


def _store(store: Any) -> Journal | None:
    if store is None or (callable(getattr(store, "begin", None)) and hasattr(store, "step")):
        return cast("Journal | None", store)
    hint = (
        f"Open it first: Flow(store=SQLiteStore({str(store)!r})) with "
        "`from flowforge.store import SQLiteStore`."
        if isinstance(store, (str, os.PathLike))
        else "Pass a flowforge.store.SQLiteStore or MemoryStore."
    )
    raise DefinitionTypeError(
        f"Flow store must be a store (flowforge.store.Store), got {type(store).__name__} "
        f"{store!r}. {hint}"
    )


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
