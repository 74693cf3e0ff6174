"""Everything one job is, and everything needed to continue it.

A :class:`JobState` holds the job's status, the messages not yet delivered
(``pending``), the merge state of its slots, each routine's state (status,
call count, the job's copy of its counters), the execution history, the
errors and skipped work, and the job's :class:`~flowforge.ExecutionTracker`.
It survives JSON and YAML (:meth:`JobState.serialize`,
:meth:`JobState.from_dict`), so a paused or interrupted job can continue in
another process with :meth:`Flow.resume <flowforge.Flow.resume>`.

History, errors, skipped work and the tracker's event flow keep only the
latest ``retention`` entries; the ``*_dropped`` counts say how many older
entries were let go.
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from typing import Any

import attrs

from .execution_tracker import ExecutionTracker
from .serialization import converter, structure

DEFAULT_RETENTION = 1000


class JobStatus(enum.StrEnum):
    """The status of a job; compares equal to its string value."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@attrs.frozen
class ExecutionRecord:
    """One entry of a job's history: ``routine_id`` emitted ``event_name`` with ``data``."""

    routine_id: str
    event_name: str
    data: dict[str, Any]
    timestamp: float


@attrs.define(slots=True)
class Message:
    """A delivery not yet processed: ``data`` for slot ``slot`` of ``routine_id``.

    ``slot`` is ``None`` for a job's entry call of a routine that overrides
    ``__call__``; ``source`` names the connection it came through (``None``
    for the entry).
    """

    seq: int
    routine_id: str
    slot: str | None
    data: dict[str, Any]
    source: str | None = None


@attrs.frozen
class ErrorInfo:
    """A recorded handler failure.

    Attributes:
        routine_id: The routine whose handler failed.
        slot: Its slot (``None`` for an entry ``__call__``).
        error_type: The exception's type name.
        message: ``str()`` of the exception.
        traceback: The formatted traceback.
        strategy: The strategy that handled it (``stop``, ``continue``, ``skip``).
        attempts: How many calls were made (more than 1 after retries).
        activation_id: The failed activation's id.
        timestamp: When it was recorded.
    """

    routine_id: str
    slot: str | None
    error_type: str
    message: str
    traceback: str
    strategy: str
    attempts: int = 1
    activation_id: str | None = None
    timestamp: float = attrs.field(factory=time.time)


@attrs.frozen
class SkippedWork:
    """Work that did not run: a skipped call, or a join whose sources never all came.

    Attributes:
        routine_id: The routine that did not run.
        slot: Its slot.
        reason: Why, in words.
        missing: For a join, the connections that never delivered.
        timestamp: When it was recorded.
    """

    routine_id: str
    slot: str | None
    reason: str
    missing: tuple[str, ...] = ()
    timestamp: float = attrs.field(factory=time.time)


@attrs.frozen
class TaskRun:
    """What became of one task in a job (see :mod:`flowforge.task`).

    Attributes:
        status: ``"pending"``, ``"running"``, ``"succeeded"``, ``"failed"``,
            ``"skipped"`` or ``"cancelled"``.
        reason: Why it was skipped, failed or cancelled, in words.
        result: The task's return value, once it succeeded.
    """

    status: str = "pending"
    reason: str | None = None
    result: Any = None


@attrs.define(on_setattr=attrs.setters.NO_OP)
class JobState:
    """The state of one job; see the module documentation.

    Example:
        >>> from flowforge import JobState
        >>> job = JobState(flow_id="demo")
        >>> job.status
        <JobStatus.PENDING: 'pending'>
        >>> print(job.status)
        pending
        >>> job.update_routine_state("fetch", {"cursor": 10})
        >>> job.get_routine_state("fetch")
        {'cursor': 10}
    """

    flow_id: str | None = None
    job_id: str = attrs.field(factory=lambda: os.urandom(16).hex())
    status: JobStatus = attrs.field(default=JobStatus.PENDING, converter=JobStatus)
    created_at: float = attrs.field(factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    #: Why the job was paused, cancelled or failed, in words.
    reason: str | None = None
    #: The error that failed the job, if one did.
    error: ErrorInfo | None = None
    #: Where the job started: ``{"routine_id", "slot", "params"}``.
    entry: dict[str, Any] | None = None
    retention: int = DEFAULT_RETENTION
    routine_states: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    slot_states: dict[str, Any] = attrs.field(factory=dict)
    pending: deque[Message] = attrs.field(factory=deque)
    next_seq: int = 0
    history_total: int = 0
    errors_total: int = 0
    skipped_total: int = 0
    tracker: ExecutionTracker = attrs.field(
        default=attrs.Factory(
            lambda self: ExecutionTracker(self.flow_id, self.job_id, self.retention),
            takes_self=True,
        )
    )
    #: Each task's :class:`TaskRun`, by name (empty for flows without tasks).
    task_runs: dict[str, TaskRun] = attrs.field(factory=dict)
    _history: deque[tuple[str, str, dict[str, Any], float]] = attrs.field(
        init=False, default=attrs.Factory(lambda self: deque(maxlen=self.retention), True)
    )
    _errors: deque[ErrorInfo] = attrs.field(
        init=False, default=attrs.Factory(lambda self: deque(maxlen=self.retention), True)
    )
    _skipped: deque[SkippedWork] = attrs.field(
        init=False, default=attrs.Factory(lambda self: deque(maxlen=self.retention), True)
    )

    # -- routine state -----------------------------------------------------

    def update_routine_state(self, routine_id: str, state: dict[str, Any]) -> None:
        """Merge ``state`` into the routine's state dict."""
        self.routine_states.setdefault(routine_id, {}).update(state)

    def get_routine_state(self, routine_id: str) -> dict[str, Any] | None:
        """The routine's state dict, or ``None`` if it has none yet.

        The engine keeps ``status``, ``activations`` and ``stats`` (the job's
        copy of the routine's counters) there.
        """
        return self.routine_states.get(routine_id)

    # -- history -----------------------------------------------------------

    def record_execution(self, routine_id: str, event_name: str, data: dict[str, Any]) -> None:
        """Add an entry to the history (the engine records every emitted event)."""
        self.history_total += 1
        self._history.append((routine_id, event_name, data, time.time()))

    def get_execution_history(self, routine_id: str | None = None) -> list[ExecutionRecord]:
        """The kept history, oldest first, optionally of one routine."""
        return [
            ExecutionRecord(*row)
            for row in self._history
            if routine_id is None or row[0] == routine_id
        ]

    @property
    def history_dropped(self) -> int:
        """How many older history entries were dropped by retention."""
        return self.history_total - len(self._history)

    # -- errors and skips --------------------------------------------------

    def record_error(self, error: ErrorInfo) -> None:
        """Add a handler failure to the job's errors."""
        self.errors_total += 1
        self._errors.append(error)

    @property
    def errors(self) -> list[ErrorInfo]:
        """The latest recorded handler failures, oldest first."""
        return list(self._errors)

    def record_skip(self, skipped: SkippedWork) -> None:
        """Add work that did not run."""
        self.skipped_total += 1
        self._skipped.append(skipped)

    @property
    def skipped(self) -> list[SkippedWork]:
        """The latest skipped work, oldest first."""
        return list(self._skipped)

    # -- tasks -------------------------------------------------------------

    def task_status(self, name: str) -> str:
        """The status of task ``name``: ``"pending"``, ``"running"``, ``"succeeded"``,
        ``"failed"``, ``"skipped"`` or ``"cancelled"``.

        Raises:
            KeyError: the job has no task of that name.
        """
        return self._task_run(name).status

    def output(self, name: str) -> Any:
        """The return value of task ``name``.

        Raises:
            KeyError: the task has no result (the message says its status), or
                the job has no task of that name.
        """
        run = self._task_run(name)
        if run.status != "succeeded":
            why = f" ({run.reason})" if run.reason else ""
            raise KeyError(f"Task '{name}' has no result: it is {run.status}{why}.")
        return run.result

    @property
    def outputs(self) -> dict[str, Any]:
        """The results of the tasks that succeeded, by name."""
        return {n: run.result for n, run in self.task_runs.items() if run.status == "succeeded"}

    def _task_run(self, name: str) -> TaskRun:
        run = self.task_runs.get(name)
        if run is None:
            known = ", ".join(f"'{n}'" for n in self.task_runs) or "(none)"
            raise KeyError(f"Job {self.job_id} has no task '{name}'. Its tasks are: {known}.")
        return run

    # -- saving ------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """Plain data (JSON and YAML safe as long as message data is)."""
        data: dict[str, Any] = converter.unstructure(self)
        return data

    def deserialize(self, data: dict[str, Any]) -> JobState:
        """Fill this (empty) JobState from :meth:`serialize` output; returns ``self``."""
        loaded = JobState.from_dict(data)
        for field in attrs.fields(JobState):
            setattr(self, field.name, getattr(loaded, field.name))
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobState:
        """Build a JobState from :meth:`serialize` output."""
        return structure(data, cls, "job")

    def summary(self) -> str:
        """A one-line description for logs and the command line."""
        return (
            f"job {self.job_id} of flow {self.flow_id!r}: {self.status}, "
            f"{len(self.pending)} pending, {self.errors_total} error(s)"
        )


_SAVED = (
    "flow_id",
    "job_id",
    "created_at",
    "started_at",
    "finished_at",
    "reason",
    "entry",
    "retention",
    "routine_states",
    "slot_states",
    "next_seq",
    "history_total",
    "errors_total",
    "skipped_total",
    "task_runs",
)


def _unstructure_job(job: JobState) -> dict[str, Any]:
    data: dict[str, Any] = {"format": "flowforge/job", "version": 1}
    data.update({name: converter.unstructure(getattr(job, name)) for name in _SAVED})
    data["status"] = str(job.status)
    data["error"] = converter.unstructure(job.error)
    data["pending"] = [converter.unstructure(m) for m in job.pending]
    data["history"] = [list(row) for row in job._history]
    data["errors"] = converter.unstructure(list(job._errors))
    data["skipped"] = converter.unstructure(list(job._skipped))
    data["tracker"] = job.tracker.serialize()
    return data


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name}: expected an int >= 1, got {value!r}")


@attrs.frozen
class _JobDoc:
    """A saved job, as read back: every field typed, so errors say where."""

    job_id: str
    format: str = "flowforge/job"
    version: int = 1
    flow_id: str | None = None
    status: JobStatus = JobStatus.PENDING
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    entry: dict[str, Any] | None = None
    retention: int = attrs.field(default=DEFAULT_RETENTION, validator=_at_least_one)
    routine_states: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    slot_states: dict[str, Any] = attrs.field(factory=dict)
    pending: list[Message] = attrs.field(factory=list)
    next_seq: int = 0
    history_total: int = 0
    errors_total: int = 0
    skipped_total: int = 0
    history: list[tuple[str, str, dict[str, Any], float]] = attrs.field(factory=list)
    errors: list[ErrorInfo] = attrs.field(factory=list)
    skipped: list[SkippedWork] = attrs.field(factory=list)
    tracker: ExecutionTracker | None = None
    task_runs: dict[str, TaskRun] = attrs.field(factory=dict)


def _structure_job(data: Any, _: Any) -> JobState:
    if not isinstance(data, dict):
        raise TypeError(f"expected a mapping for a job, got {type(data).__name__}")
    doc = converter.structure(data, _JobDoc)
    if doc.format != "flowforge/job":
        raise ValueError(
            f"format: expected 'flowforge/job', got {doc.format!r}: not a FlowForge job"
        )
    if doc.version != 1:
        raise ValueError(f"version: {doc.version} is newer than this FlowForge reads (1)")
    fields = {name: getattr(doc, name) for name in _SAVED}
    job = JobState(status=doc.status, error=doc.error, pending=deque(doc.pending), **fields)
    if doc.tracker is not None:
        job.tracker = doc.tracker
    job._history.extend(doc.history)
    job._errors.extend(doc.errors)
    job._skipped.extend(doc.skipped)
    return job


converter.register_unstructure_hook(JobState, _unstructure_job)
converter.register_structure_hook(JobState, _structure_job)
