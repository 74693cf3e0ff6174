"""Everything one job is, and everything needed to continue it.

A :class:`JobState` holds the job's status, the messages not yet delivered
(``pending``), the merge state of its slots, each routine's run in the job
(``runs``: a :class:`RoutineRun` with its status, call counts and the job's
own counters), the execution history, the errors and skipped work, and the
job's :class:`~flowforge.ExecutionTracker`. It survives JSON and YAML
(:meth:`JobState.serialize`, :meth:`JobState.from_dict`), so a paused or
interrupted job can continue in another process with :meth:`Flow.resume
<flowforge.Flow.resume>`.

The job owns its changes. The scheduler never edits these fields itself: it
calls the JobState's methods (:meth:`~JobState.record_success`,
:meth:`~JobState.record_emits`, :meth:`~JobState.record_failure`, ...), and
stores read a job through public readings (:meth:`~JobState.header_data`,
:meth:`~JobState.routine_data`, :meth:`~JobState.task_data`,
:meth:`~JobState.history_since`, ...), so the saved format follows from this
model. Tasks (:mod:`flowforge.task`) record what became of each task with
:meth:`~JobState.set_task_run`.

Two readings of a routine's counters
    ``job.runs[rid].stats`` (also ``get_routine_state(rid)["stats"]``) is what
    *this job* did: it starts empty, and each successful call's changes to
    ``self._stats`` are merged into it (numbers as deltas, other values
    replaced). Inside a handler ``self._stats`` is this copy. The routine's
    own ``stats()`` is its running total over every job run through that
    routine object; see :mod:`flowforge.flow` for how jobs add to it.

Routine state
    :meth:`~JobState.get_routine_state` gives a routine's state as a dict:
    the engine's ``status``, ``activations`` and ``stats`` (plus
    ``failures``, ``continued`` and ``skipped`` once they happen) and the
    keys set with :meth:`~JobState.update_routine_state`, which are kept
    apart from the engine's and round-trip unchanged.

History, errors, skipped work and the tracker's event flow keep only the
latest ``retention`` entries; the ``*_dropped`` counts say how many older
entries were let go.

Saved format
    Version 3 (this one) keeps each routine as ``{"run": {...}, "state":
    {...}}`` under ``routines`` and each task's :class:`TaskRun` (status,
    reason, result) under ``task_runs``. Version 2 documents (no tasks) and
    version 1 documents, which kept one flat dict per routine under
    ``routine_states``, still load. Loading checks
    types and values (non-negative counters, unique ``seq`` numbers below
    ``next_seq``, a non-empty ``job_id``) and reports every problem at once.
"""

from __future__ import annotations

import enum
import json
import os
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, Protocol

import attrs

from ._activation import merge_stats
from .errors import SerializationError
from .execution_tracker import ExecutionTracker
from .serialization import converter, describe_value, structure, unencodable_path

DEFAULT_RETENTION = 1000
#: The version of the saved job format this FlowForge writes.
FORMAT_VERSION = 3


class JobStatus(enum.StrEnum):
    """The status of a job; compares equal to its string value."""

    PENDING = "pending"
    #: Submitted to the store, waiting for a worker (``flowforge worker``) to claim it.
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``."""
        return self in _FINISHED


#: Looking up an enum's member by name costs about 80 ns; these are looked up once.
_FINISHED = frozenset((JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED))


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


class RoutineStatus(enum.StrEnum):
    """Where a routine stands in one job; compares equal to its string value."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


class _JobIds:
    """Random job ids (32 hex digits) from a generator seeded by the OS per process.

    Unique without coordination like ``os.urandom(16)``, for a third of the
    cost (every job makes one); a forked child seeds its own. Every digit
    varies, so a short prefix names a job. Not secret: nothing trusts an id.
    """

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.bits = random.Random(os.urandom(32)).getrandbits

    def __call__(self) -> str:
        return self.bits(128).to_bytes(16).hex()  # twice as fast as f"{...:032x}"


#: A new job id: 32 hex digits, unique without coordination.
new_job_id = _JobIds()


def _job_status(value: Any) -> JobStatus:
    # Every job makes one: skip the enum lookup when it is one already.
    return value if value.__class__ is JobStatus else JobStatus(value)


def _routine_status(value: Any) -> RoutineStatus:
    # Every job makes one run per routine: skip the enum lookup when it is one already.
    return value if value.__class__ is RoutineStatus else RoutineStatus(value)


@attrs.define(slots=True, on_setattr=attrs.setters.NO_OP)
class RoutineRun:
    """What one routine did in one job (kept in ``JobState.runs``).

    Change it through the :class:`JobState` methods; read it freely.

    Attributes:
        status: The outcome of its latest call: ``pending`` (not called
            yet), ``completed``, ``failed`` or ``skipped``.
        activations: Its successful calls.
        failures: Its failed calls (after retries), whatever the strategy.
        continued: Failures the job went on after (CONTINUE).
        skipped: Calls skipped (SKIP) and join rounds dropped.
        stats: This job's own counters: what its calls did to ``self._stats``.
    """

    status: RoutineStatus = attrs.field(default=RoutineStatus.PENDING, converter=_routine_status)
    activations: int = 0
    failures: int = 0
    continued: int = 0
    skipped: int = 0
    stats: dict[str, Any] = attrs.field(factory=dict)

    def problems(self, where: str) -> list[str]:
        """Negative counts, each with its place (``where`` names the run)."""
        return [
            f"{where}.{name}: expected an int >= 0, got {getattr(self, name)}"
            for name in ("activations", *_FAILURE_COUNTS)
            if getattr(self, name) < 0
        ]

    def as_dict(self) -> dict[str, Any]:
        """The run as ``get_routine_state`` shows it (zero failure counts left out)."""
        data: dict[str, Any] = {
            "status": str(self.status),
            "activations": self.activations,
            "stats": dict(self.stats),
        }
        for name in _FAILURE_COUNTS:
            value = getattr(self, name)
            if value:
                data[name] = value
        return data


def _new_runs(routine_ids: Iterable[str]) -> dict[str, RoutineRun]:
    """A fresh :class:`RoutineRun` for each routine: what ``RoutineRun()`` makes,
    without its ``__init__`` (a job makes one per routine of its flow, and a
    Python ``__init__`` costs more than the six stores)."""
    runs = {}
    new = object.__new__
    pending = _PENDING
    for rid in routine_ids:
        run = new(RoutineRun)
        run.status = pending
        run.activations = run.failures = run.continued = run.skipped = 0
        run.stats = {}
        runs[rid] = run
    return runs


_FAILURE_COUNTS = ("failures", "continued", "skipped")
_new_object = object.__new__
_PENDING, _COMPLETED = RoutineStatus.PENDING, RoutineStatus.COMPLETED  # see _FINISHED
_ENGINE_KEYS = frozenset(("status", "activations", "stats", *_FAILURE_COUNTS))


class Route(Protocol):
    """Where an emitted event goes (a :class:`~flowforge.Connection` is one)."""

    @property
    def target_id(self) -> str:
        """The target routine's id."""

    @property
    def slot_name(self) -> str:
        """The target slot."""

    @property
    def param_mapping(self) -> dict[str, str] | None:
        """Renames of the event's parameters, if any."""

    @property
    def key(self) -> str:
        """The connection's name, recorded as the message's source."""


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
    job_id: str = attrs.field(factory=lambda: new_job_id())
    status: JobStatus = attrs.field(default=JobStatus.PENDING, converter=_job_status)
    created_at: float = attrs.field(factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    #: Why the job was paused, cancelled or failed, in words.
    reason: str | None = None
    #: The error that failed the job, if one did.
    error: ErrorInfo | None = None
    #: A live job started with ``keep_open``: it takes input until closed.
    open: bool = False
    #: Where the job started: ``{"routine_id", "slot", "params"}``.
    entry: dict[str, Any] | None = None
    retention: int = DEFAULT_RETENTION
    #: Each routine's run in this job, by routine id.
    runs: dict[str, RoutineRun] = attrs.field(factory=dict)
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
    _user_states: dict[str, dict[str, Any]] = attrs.field(init=False, factory=dict)
    # maxlen given by position: by keyword, making the deque costs twice as much.
    _history: deque[tuple[str, str, dict[str, Any], float]] = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: deque((), self.retention), True),  # noqa: RUF037
    )
    # Made on first use: most jobs record no error and skip nothing (and a
    # deque is one of the costlier things a new job makes).
    _errors: deque[ErrorInfo] | tuple[()] = attrs.field(init=False, default=())
    _skipped: deque[SkippedWork] | tuple[()] = attrs.field(init=False, default=())
    # The counters each routine had when this run of the job began, kept for
    # routines whose counters changed since (see stats_changes); not saved.
    _stats_from: dict[str, dict[str, Any]] = attrs.field(init=False, factory=dict)

    # -- routine state -----------------------------------------------------

    def update_routine_state(self, routine_id: str, state: dict[str, Any]) -> None:
        """Merge ``state`` into the routine's state.

        Keys of your own are kept apart from the engine's and saved with the
        job. The engine's keys (``status``, ``activations``, ``stats``,
        ``failures``, ``continued``, ``skipped``) set its :class:`RoutineRun`
        and are checked like a loaded job's.
        """
        engine = {k: v for k, v in state.items() if k in _ENGINE_KEYS}
        if engine:
            old = self.runs.get(routine_id) or RoutineRun()
            merged = {**attrs.asdict(old, recurse=False), **engine}
            run = structure(merged, RoutineRun, f"routine '{routine_id}'")
            problems = run.problems(f"routine '{routine_id}'")
            if problems:
                raise SerializationError("; ".join(problems), path=routine_id)
            if routine_id in self.runs:  # see stats_changes
                self._stats_from.setdefault(routine_id, old.stats)
            self.runs[routine_id] = run
        user = {k: v for k, v in state.items() if k not in _ENGINE_KEYS}
        if user or not engine:
            self._user_states.setdefault(routine_id, {}).update(user)

    def get_routine_state(self, routine_id: str) -> dict[str, Any] | None:
        """The routine's state as a new dict, or ``None`` if it has none yet.

        The engine's ``status``, ``activations`` and ``stats`` (this job's
        own counters), ``failures``, ``continued`` and ``skipped`` once they
        happen, and the keys set with :meth:`update_routine_state`.
        Changing the dict changes nothing: use :meth:`update_routine_state`.
        """
        run = self.runs.get(routine_id)
        user = self._user_states.get(routine_id)
        if run is None and user is None:
            return None
        data = {} if run is None else run.as_dict()
        if user:
            data.update(user)
        return data

    @property
    def routine_states(self) -> dict[str, dict[str, Any]]:
        """Every routine's state, as :meth:`get_routine_state` gives it (a new dict)."""
        ids = dict.fromkeys([*self.runs, *self._user_states])
        return {rid: self.get_routine_state(rid) or {} for rid in ids}

    def routine_ids(self) -> list[str]:
        """The routines that have a run or state of their own in this job."""
        return list(dict.fromkeys([*self.runs, *self._user_states]))

    # -- changes the scheduler makes -----------------------------------------

    def add_routines(self, routine_ids: Iterable[str]) -> None:
        """A run of the job starts: give each routine a :class:`RoutineRun` if it
        has none, and count :meth:`stats_changes` from here."""
        runs = self.runs
        if runs:
            for rid in routine_ids:
                if rid not in runs:
                    runs[rid] = RoutineRun()
        else:  # a new job: every routine gets a run
            self.runs = _new_runs(routine_ids)
        self._stats_from = {}

    def stats_changes(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """``(routine_id, before, now)`` for each routine whose counters changed
        since :meth:`add_routines` started this run: what the run added to them.

        A routine's counters are replaced on every change, never edited, so
        ``before`` is the very dict the run started from.
        """
        runs = self.runs
        return [
            (rid, before, runs[rid].stats)
            for rid, before in self._stats_from.items()
            if rid in runs and runs[rid].stats is not before
        ]

    def _replace_stats(self, routine_id: str, run: RoutineRun, stats: dict[str, Any]) -> None:
        if routine_id not in self._stats_from:
            self._stats_from[routine_id] = run.stats
        run.stats = stats

    def queue(
        self, routine_id: str, slot: str | None, data: dict[str, Any], source: str | None = None
    ) -> Message:
        """Add a message with the next ``seq`` to the end of the pending queue
        (``source`` names where it came from: ``None`` for the entry)."""
        msg = Message(self.next_seq, routine_id, slot, data, source)
        self.next_seq += 1
        self.pending.append(msg)
        return msg

    def requeue(self, message: Message) -> None:
        """Put a message taken from the queue back at its front (it stays pending)."""
        self.pending.appendleft(message)

    def record_success(
        self, run: RoutineRun, base: dict[str, Any], stats: dict[str, Any] | None
    ) -> None:
        """A call of ``run``'s routine succeeded; it changed its counters ``base`` -> ``stats``."""
        run.activations += 1
        run.status = RoutineStatus.COMPLETED
        if stats is not None and stats != base:
            # A new dict, never an edit: running calls may be copying the old one.
            new = merge_stats(run.stats, base, stats)
            rid = next((rid for rid, known in self.runs.items() if known is run), None)
            if rid is None:  # a run that is not this job's: no total to add it to
                run.stats = new
            else:
                self._replace_stats(rid, run, new)

    def record_emit(
        self,
        routine_id: str,
        event_name: str,
        data: dict[str, Any],
        routes: Sequence[Route],
        now: float,
        produced: list[Message] | None = None,
    ) -> None:
        """``routine_id`` emitted ``event_name``: record it and queue a message per route.

        Each message is also appended to ``produced`` when one is given.
        """
        self.record_emits(routine_id, ((event_name, data),), {event_name: routes}, now, produced)

    def record_emits(
        self,
        routine_id: str,
        emits: Iterable[tuple[str, dict[str, Any]]],
        routes: Mapping[str, Sequence[Route]],
        now: float,
        produced: list[Message] | None = None,
    ) -> None:
        """Everything one call emitted, in order: :meth:`record_emit` for each
        ``(event_name, data)``, with ``routes[event_name]`` as its routes.

        One call for a whole activation, because it runs for every handler call.
        """
        deliveries = self._queue_emits(routine_id, emits, routes, now, produced)
        if deliveries:
            self.tracker.record_deliveries(deliveries)

    def commit_call(
        self,
        routine_id: str,
        seconds: float,
        base: dict[str, Any],
        stats: dict[str, Any] | None,
        emits: Sequence[tuple[str, dict[str, Any]]],
        routes: Mapping[str, Sequence[Route]],
        produced: list[Message] | None = None,
    ) -> None:
        """A call of ``routine_id`` succeeded in ``seconds``: the tracker counts it,
        :meth:`record_success` with ``base`` -> ``stats`` and :meth:`record_emits`
        with ``emits``, all in one call (it runs for every handler call)."""
        run = self.runs[routine_id]
        run.activations += 1
        run.status = _COMPLETED
        if stats is not None and stats != base:
            self._replace_stats(routine_id, run, merge_stats(run.stats, base, stats))
        if not emits:
            self.tracker.record_step(routine_id, seconds)
            return
        # _queue_emits inlined (keep the two in step): a call less per handler call.
        history = self._history
        pending = self.pending
        now = time.time()
        deliveries: list[tuple[float, str | None, str | None, str, str | None]] = []
        seq = self.next_seq
        for event_name, data in emits:
            history.append((routine_id, event_name, data, now))
            for route in routes[event_name]:
                mapping = route.param_mapping
                payload = data
                if mapping is not None:
                    payload = {mapping.get(k, k): v for k, v in data.items()}
                target, slot = route.target_id, route.slot_name
                # Message(seq, target, slot, payload, route.key) without its __init__.
                msg = _new_object(Message)
                msg.seq = seq
                msg.routine_id = target
                msg.slot = slot
                msg.data = payload
                msg.source = route.key
                seq += 1
                pending.append(msg)
                if produced is not None:
                    produced.append(msg)
                deliveries.append((now, routine_id, event_name, target, slot))
        self.history_total += len(emits)
        self.next_seq = seq
        self.tracker.record_step(routine_id, seconds, deliveries)

    def _queue_emits(
        self,
        routine_id: str,
        emits: Iterable[tuple[str, dict[str, Any]]],
        routes: Mapping[str, Sequence[Route]],
        now: float,
        produced: list[Message] | None,
    ) -> list[tuple[float, str | None, str | None, str, str | None]]:
        history = self._history
        pending = self.pending
        deliveries: list[tuple[float, str | None, str | None, str, str | None]] = []
        seq = self.next_seq
        count = 0
        for event_name, data in emits:
            count += 1
            history.append((routine_id, event_name, data, now))
            for route in routes[event_name]:
                mapping = route.param_mapping
                if mapping is not None:
                    payload = {mapping.get(k, k): v for k, v in data.items()}
                else:
                    payload = data
                target, slot = route.target_id, route.slot_name
                msg = _new_object(Message)  # as in commit_call
                msg.seq = seq
                msg.routine_id = target
                msg.slot = slot
                msg.data = payload
                msg.source = route.key
                seq += 1
                pending.append(msg)
                if produced is not None:
                    produced.append(msg)
                deliveries.append((now, routine_id, event_name, target, slot))
        self.history_total += count
        self.next_seq = seq
        return deliveries

    def record_failure(self, info: ErrorInfo) -> None:
        """A call failed and ``info.strategy`` decided: count it against the routine.

        ``skip`` also records the skipped call; ``stop`` leaves the job to
        :meth:`fail`.
        """
        self.record_error(info)
        run = self.runs[info.routine_id]
        run.failures += 1
        if info.strategy == "skip":
            self.record_skipped_call(
                info.routine_id, info.slot, "the handler failed and its strategy is SKIP"
            )
            return
        run.status = RoutineStatus.FAILED
        if info.strategy == "continue":
            run.continued += 1

    def record_skipped_call(
        self, routine_id: str, slot: str | None, reason: str, missing: tuple[str, ...] = ()
    ) -> None:
        """A call of the routine did not run (SKIP, or a join whose sources never all came)."""
        run = self.runs[routine_id]
        run.status = RoutineStatus.SKIPPED
        run.skipped += 1
        self.record_skip(SkippedWork(routine_id, slot, reason, missing))

    def fail(self, info: ErrorInfo) -> None:
        """The job stops because of ``info`` (the first such error is kept)."""
        if self.error is None:
            self.error = info

    def set_slot_state(self, key: str, state: Any) -> None:
        """Keep a slot's merge state (an empty state removes it)."""
        if state:
            self.slot_states[key] = state
        else:
            self.slot_states.pop(key, None)

    def only_continued(self, routine_ids: Iterable[str]) -> bool:
        """True when every routine named failed under CONTINUE and none was skipped."""
        runs = self.runs
        found = [runs.get(rid) for rid in routine_ids]
        return bool(found) and all(r is not None and r.continued and not r.skipped for r in found)

    def has_work(self, slot_keys: Iterable[str] = ()) -> bool:
        """True while messages are pending or one of ``slot_keys`` holds merge state."""
        return bool(self.pending) or any(self.slot_states.get(key) for key in slot_keys)

    def end_run(self, status: JobStatus, reason: str | None) -> None:
        """The job stops running with ``status``; finished jobs get ``finished_at``."""
        self.status, self.reason = status, reason
        if status.finished:
            self.finished_at = time.time()

    # -- the entry -----------------------------------------------------------

    def update_entry_params(self, params: Mapping[str, Any]) -> bool:
        """Merge ``params`` into the entry's params, for a job not yet past its entry call.

        The entry message still pending (a paused job that never started,
        or one whose entry call failed under ``stop``) gets the new values,
        so :meth:`Flow.resume <flowforge.Flow.resume>` calls the entry with
        them; ``entry["params"]`` records them.

        Returns:
            ``True`` if an entry message was pending and was updated;
            ``False`` if the entry call already succeeded (nothing changes).
        """
        entry = self.entry or {}
        waiting = [
            m
            for m in self.pending
            if m.source is None
            and m.routine_id == entry.get("routine_id")
            and m.slot == entry.get("slot")
        ]
        if not waiting:
            return False
        for message in waiting:
            message.data = {**message.data, **params}
        self.entry = {**entry, "params": {**(entry.get("params") or {}), **params}}
        return True

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

    def history_since(self, total: int) -> list[tuple[str, str, dict[str, Any], float]]:
        """The kept history entries made after the first ``total`` ones, oldest first.

        Each is a ``(routine_id, event_name, data, timestamp)`` tuple, as saved.
        """
        return _since(self._history, self.history_total, total)

    @property
    def history_dropped(self) -> int:
        """How many older history entries were dropped by retention."""
        return self.history_total - len(self._history)

    # -- errors and skips --------------------------------------------------

    def record_error(self, error: ErrorInfo) -> None:
        """Add a handler failure to the job's errors."""
        self.errors_total += 1
        errors = self._errors
        if not isinstance(errors, deque):
            errors = self._errors = deque(maxlen=self.retention)
        errors.append(error)

    @property
    def errors(self) -> list[ErrorInfo]:
        """The latest recorded handler failures, oldest first."""
        return list(self._errors)

    def errors_since(self, total: int) -> list[ErrorInfo]:
        """The kept errors recorded after the first ``total`` ones, oldest first."""
        return _since(self._errors, self.errors_total, total)

    def record_skip(self, skipped: SkippedWork) -> None:
        """Add work that did not run."""
        self.skipped_total += 1
        entries = self._skipped
        if not isinstance(entries, deque):
            entries = self._skipped = deque(maxlen=self.retention)
        entries.append(skipped)

    @property
    def skipped(self) -> list[SkippedWork]:
        """The latest skipped work, oldest first."""
        return list(self._skipped)

    def skipped_since(self, total: int) -> list[SkippedWork]:
        """The kept skipped work recorded after the first ``total`` entries, oldest first."""
        return _since(self._skipped, self.skipped_total, total)

    # -- tasks -------------------------------------------------------------

    def set_task_run(self, name: str, run: TaskRun) -> None:
        """What became of task ``name`` (see :mod:`flowforge.runtime.tasks`)."""
        self.task_runs[name] = run

    def task_data(self, name: str) -> dict[str, Any]:
        """One task's part of :meth:`serialize`: its status, reason and result."""
        return dict(converter.unstructure(self.task_runs[name]))

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
        """Plain data for JSON and YAML.

        Raises:
            SerializationError: Something the job holds (message data, a
                routine's stats or state, a slot's merge state) is not plain
                data; the message says where.
        """
        data = _unstructure_job(self)
        try:
            _encode(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"Cannot serialize job {self.job_id}: {_find_unencodable(data)}. A job keeps "
                "message data, stats and states as plain data: use dict, list, str, int, "
                "float, bool and None.",
                path=_find_unencodable(data, describe=False),
            ) from exc
        return data

    def header_data(self) -> dict[str, Any]:
        """The job serialized without its bulky parts (entry, routines, slot
        states, pending messages, history, errors, skipped work, event flow,
        task runs), which stores save apart."""
        return _unstructure_job(self, whole=False)

    def routine_data(self, routine_id: str) -> dict[str, Any]:
        """One routine's part of :meth:`serialize`: ``{"run": ..., "state": ...}``."""
        data: dict[str, Any] = {}
        run = self.runs.get(routine_id)
        if run is not None:
            data["run"] = converter.unstructure(run)
        user = self._user_states.get(routine_id)
        if user:
            data["state"] = converter.unstructure(user)
        return data

    def deserialize(self, data: dict[str, Any]) -> JobState:
        """Fill this (empty) JobState from :meth:`serialize` output; returns ``self``."""
        loaded = JobState.from_dict(data)
        for field in attrs.fields(JobState):
            setattr(self, field.name, getattr(loaded, field.name))
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobState:
        """Build a JobState from :meth:`serialize` output.

        Raises:
            SerializationError: The data is not a saved job, or holds wrong
                types or impossible values; every problem is listed.
        """
        return structure(data, cls, "job")

    @classmethod
    def from_parts(
        cls,
        header: dict[str, Any],
        *,
        entry: dict[str, Any] | None,
        pending: list[dict[str, Any]],
        routines: Mapping[str, Any],
        slot_states: dict[str, Any],
        history: list[Any],
        errors: list[Any],
        skipped: list[Any],
        event_flow: list[Any],
        task_runs: Mapping[str, Any] | None = None,
    ) -> JobState:
        """Build a JobState from a :meth:`header_data` and the parts saved apart.

        ``routines`` maps routine ids to :meth:`routine_data` (for a version 1
        header: to the flat state dicts that version kept); ``task_runs`` maps
        task names to :meth:`task_data`.
        """
        data = dict(header)
        data.update(entry=entry, pending=pending, slot_states=slot_states)
        data.update(history=history, errors=errors, skipped=skipped)
        key = "routine_states" if data.get("version") == 1 else "routines"
        data[key] = dict(routines)
        if task_runs:
            data["task_runs"] = dict(task_runs)
        tracker = data.get("tracker")
        if isinstance(tracker, dict):
            data["tracker"] = {**tracker, "event_flow": event_flow}
        return cls.from_dict(data)

    def summary(self) -> str:
        """A one-line description for logs and the command line."""
        return (
            f"job {self.job_id} of flow {self.flow_id!r}: {self.status}, "
            f"{len(self.pending)} pending, {self.errors_total} error(s)"
        )


def _since(entries: deque[Any] | tuple[()], total: int, since: int) -> list[Any]:
    count = min(total - since, len(entries))
    if count <= 0:
        return []
    if count == len(entries):
        return list(entries)
    return list(islice(reversed(entries), count))[::-1]


_encode = json.JSONEncoder(separators=(",", ":")).encode

_SAVED = (
    "flow_id",
    "job_id",
    "created_at",
    "started_at",
    "finished_at",
    "reason",
    "retention",
    "next_seq",
    "history_total",
    "errors_total",
    "skipped_total",
    "open",
)


def _unstructure_job(job: JobState, whole: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {"format": "flowforge/job", "version": FORMAT_VERSION}
    data.update({name: getattr(job, name) for name in _SAVED})
    data["status"] = str(job.status)
    data["error"] = converter.unstructure(job.error)
    if not whole:
        data["tracker"] = job.tracker.serialize(event_flow=False)
        return data
    # Unstructuring copies containers, so the result shares nothing mutable with the job.
    data["entry"] = converter.unstructure(job.entry)
    data["routines"] = {rid: job.routine_data(rid) for rid in job.routine_ids()}
    data["slot_states"] = converter.unstructure(job.slot_states)
    data["pending"] = [converter.unstructure(m) for m in job.pending]
    data["history"] = [list(row) for row in job._history]
    data["errors"] = converter.unstructure(list(job._errors))
    data["skipped"] = converter.unstructure(list(job._skipped))
    data["tracker"] = job.tracker.serialize()
    data["task_runs"] = {name: job.task_data(name) for name in job.task_runs}
    return data


def _find_unencodable(data: dict[str, Any], describe: bool = True) -> str:
    """Where in serialized job ``data`` the first value JSON cannot hold is."""
    path = unencodable_path(data)
    if path is None:
        return "its data" if describe else ""
    if not describe:
        return ".".join(map(str, path))
    return f"{_place(data, path)} holds {describe_value(data, path)}"


def _place(data: dict[str, Any], path: list[Any]) -> str:
    section, rest = path[0], path[1:]
    keys = "".join(f"[{k!r}]" for k in rest[2:])
    if section == "pending" and len(rest) >= 2:
        msg = data["pending"][rest[0]]
        where = f"'{msg['routine_id']}.{msg['slot']}'" if msg["slot"] else f"'{msg['routine_id']}'"
        return f"the pending message {msg['seq']} to {where}, data{keys}"
    if section == "history" and len(rest) >= 2:
        row = data["history"][rest[0]]
        return f"the history entry of routine '{row[0]}' event '{row[1]}', data{keys}"
    if section == "routines" and len(rest) >= 2:
        what, inner = ("stats", rest[3:]) if rest[1] == "run" else ("state", rest[2:])
        return f"the {what} of routine '{rest[0]}', key {''.join(f'[{k!r}]' for k in inner)}"
    if section == "slot_states" and rest:
        return f"the merge state of slot '{rest[0]}'{''.join(f'[{k!r}]' for k in rest[1:])}"
    if section == "task_runs" and rest:
        return f"the result of task '{rest[0]}'{''.join(f'[{k!r}]' for k in rest[2:])}"
    if section == "entry":
        return f"the entry params{''.join(f'[{k!r}]' for k in rest[1:])}"
    return ".".join(map(str, path))


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name}: expected an int >= 1, got {value!r}")


@attrs.frozen
class _RoutineDoc:
    """One routine of a saved job: its run, and the state set by hand."""

    run: RoutineRun | None = None
    state: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class _JobDoc:
    """A saved job, as read back: every field typed, so errors say where."""

    job_id: str
    format: str = "flowforge/job"
    version: int = FORMAT_VERSION
    flow_id: str | None = None
    status: JobStatus = JobStatus.PENDING
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    entry: dict[str, Any] | None = None
    retention: int = attrs.field(default=DEFAULT_RETENTION, validator=_positive)
    routines: dict[str, _RoutineDoc] = attrs.field(factory=dict)
    #: Version 1 kept each routine as one flat dict here.
    routine_states: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    slot_states: dict[str, Any] = attrs.field(factory=dict)
    pending: list[Message] = attrs.field(factory=list)
    next_seq: int = 0
    history_total: int = 0
    errors_total: int = 0
    skipped_total: int = 0
    open: bool = False
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
    if doc.version > FORMAT_VERSION:
        raise ValueError(
            f"version: {doc.version} is newer than this FlowForge reads ({FORMAT_VERSION}); "
            "upgrade FlowForge to load it"
        )
    if doc.version < 1:
        raise ValueError(f"version: expected 1 to {FORMAT_VERSION}, got {doc.version}")
    routines = _routines_v1(doc.routine_states) if doc.version == 1 else doc.routines
    if doc.version > 1 and doc.routine_states:
        raise ValueError(
            f"routine_states: a version 1 field, in a version {doc.version} job; use routines"
        )
    problems = _problems(doc)
    key = "routine_states" if doc.version == 1 else "routines"
    for rid, routine in routines.items():
        if routine.run is not None:
            suffix = "" if doc.version == 1 else ".run"
            problems += routine.run.problems(f"{key}.{rid}{suffix}")
    if problems:
        raise SerializationError("Invalid job:\n  - " + "\n  - ".join(problems), path="job")
    fields = {name: getattr(doc, name) for name in _SAVED if name != "job_id"}
    fields.update(entry=doc.entry, slot_states=doc.slot_states, task_runs=doc.task_runs)
    job = JobState(
        job_id=doc.job_id, status=doc.status, error=doc.error, pending=deque(doc.pending), **fields
    )
    for rid, routine in routines.items():
        if routine.run is not None:
            job.runs[rid] = routine.run
        if routine.state:
            job._user_states[rid] = dict(routine.state)
    if doc.tracker is not None:
        job.tracker = doc.tracker
    job._history.extend(doc.history)
    if doc.errors:
        job._errors = deque(doc.errors, maxlen=job.retention)
    if doc.skipped:
        job._skipped = deque(doc.skipped, maxlen=job.retention)
    return job


def _routines_v1(states: dict[str, dict[str, Any]]) -> dict[str, _RoutineDoc]:
    """Version 1 kept the engine's keys and the user's in one dict per routine."""
    routines = {}
    for rid, state in states.items():
        engine = {k: v for k, v in state.items() if k in _ENGINE_KEYS}
        run = None
        if engine:
            run = structure(engine, RoutineRun, f"job.routine_states.{rid}")
        user = {k: v for k, v in state.items() if k not in _ENGINE_KEYS}
        routines[rid] = _RoutineDoc(run, user)
    return routines


def _problems(doc: _JobDoc) -> list[str]:
    """Values a well-formed job cannot have, each with its place."""
    problems = []
    if not doc.job_id:
        problems.append("job_id: expected a non-empty string, got ''")
    for name in ("next_seq", "history_total", "errors_total", "skipped_total"):
        if getattr(doc, name) < 0:
            problems.append(f"{name}: expected an int >= 0, got {getattr(doc, name)}")
    for name, kept in (("history", doc.history), ("errors", doc.errors), ("skipped", doc.skipped)):
        total = getattr(doc, f"{name}_total")
        if total < len(kept):
            problems.append(f"{name}_total: {total} is fewer than the {len(kept)} {name} kept")
    seen: set[int] = set()
    for i, msg in enumerate(doc.pending):
        if msg.seq in seen:
            problems.append(
                f"pending[{i}].seq: message {msg.seq} is pending twice; it would be "
                "delivered twice. Remove the copy."
            )
        elif not 0 <= msg.seq < doc.next_seq:
            problems.append(
                f"pending[{i}].seq: {msg.seq} is not in 0 .. next_seq - 1 ({doc.next_seq - 1}); "
                "activation ids would repeat. Raise next_seq above every pending seq."
            )
        seen.add(msg.seq)
    return problems


converter.register_unstructure_hook(JobState, _unstructure_job)
converter.register_structure_hook(JobState, _structure_job)
