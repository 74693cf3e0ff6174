"""The :class:`Store` interface, and the journaling both stores share.

A store is what a flow's scheduler journals to (it implements the
``Journal`` protocol of :mod:`flowforge.runtime.scheduler`): ``begin`` when a
job starts or resumes, ``step`` after every committed step, ``end`` when the
job stops running. The store turns those calls into atomic commits:

- ``begin`` writes the whole job (and the flow's definition, when given,
  with its :class:`FlowOrigin`: where its routine classes were imported
  from, so a later process can import them again);
- each ``step`` adds to an open *group*; the group is committed as one
  transaction when it holds ``group_max`` steps, or at the first step after
  it has been open ``group_seconds``. With ``durability="activation"`` every
  step is its own group. Work made and consumed within one group (a message
  produced and then delivered) cancels out and is never written;
- ``end`` commits the whole job again, so what is stored equals the JobState
  in memory, whatever status it ended with. If a group could not be stored,
  what is stored stays the job after its last commit, and ``end`` writes
  only how the job ended (its status, reason and error) over it, so a
  stopped job is never left ``running``.

Before a step is committed in memory, the scheduler offers what the call
emitted and its counters to :meth:`Store.unstorable`, which checks that they can
be encoded; data that cannot (a ``datetime``, say) fails the call with
:class:`~flowforge.errors.UnstorableDataError` naming the routine and event,
and the job stops ``failed`` at that step.

A commit is all or nothing, so what is stored is always the state of the job
after some step: loading it and resuming yields exactly what an
uninterrupted run yields. See ``docs/guide/durable.rst`` for the guarantee.

A backend subclasses :class:`Store` and provides the storage: the public
abstract methods of its *backend interface* (``write_batch``, ``read_job``,
... ``claim_queued``; see :class:`Store`). The journaling, validation and
error messages live here.
"""

from __future__ import annotations

import abc
import datetime
import json
import logging
import numbers
import sys
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import attrs

from ..errors import FlowForgeError, JobStateError, SerializationError, UnstorableDataError
from ..flow import Flow
from ..job_state import JobState, JobStatus, Message
from . import _checks, _lease, _records
from ._errors import (
    CorruptStoreError,
    FlowNotFoundError,
    JobNotFoundError,
    LeaseHeldError,
    StoreClosedError,
    StoreTypeError,
    StoreUsageError,
)
from ._journal import OpenJob
from ._lease import Control, Lease, LeaseKeeper, new_owner

if TYPE_CHECKING:
    from ._records import Batch, BriefRecord, JobRecord

logger = logging.getLogger(__name__)

Durability = Literal["activation", "grouped"]
#: The durability modes, for checking.
DURABILITIES: tuple[str, ...] = ("activation", "grouped")
#: The statuses :meth:`Store.prune` drops by default.
FINISHED: tuple[JobStatus, ...] = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@attrs.frozen
class JobSummary:
    """One stored job, in brief (what :meth:`Store.list_jobs` returns).

    Attributes:
        job_id: The job's id; :meth:`Store.load` gives its full JobState.
        flow_id: Its flow.
        status: Its status at the last commit. A job whose process died
            while it ran stays ``running`` until it is resumed.
        created_at: When the job was created (seconds since the epoch).
        updated_at: When it was last committed.
        started_at: When it first started, if it did.
        finished_at: When it finished, if it did.
        reason: Why it paused, failed or was cancelled, in words.
        pending: How many messages wait to be delivered.
    """

    job_id: str
    flow_id: str | None
    status: JobStatus = attrs.field(converter=JobStatus)
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    reason: str | None
    pending: int


@attrs.frozen
class JobBrief:
    """A stored job for showing it, read without its bulk (what :meth:`Store.load_brief` returns).

    Attributes:
        job: The job as last committed, without its pending messages,
            history, skipped work, event flow and slot states (their totals
            are kept): its status, times, counters, routine runs and stats,
            errors, entry and task runs. For reading only; resume the job
            from :meth:`Store.load`.
        pending: How many messages wait to be delivered.
    """

    job: JobState
    pending: int


@attrs.frozen
class JobPage:
    """One page of stored jobs, newest first (what :meth:`Store.page_jobs` returns).

    Attributes:
        jobs: The page's :class:`JobSummary` objects, newest first.
        total: How many jobs match, on every page together.
    """

    jobs: list[JobSummary]
    total: int


class Store(abc.ABC):
    """Where jobs are checkpointed; see :mod:`flowforge.store`. The base class of backends.

    Users call the public methods (:meth:`list_jobs`, :meth:`load`, ...); the
    scheduler calls :meth:`begin`, :meth:`step` and :meth:`end`. This class
    does the journaling, the grouping of steps into commits, argument checks
    and error messages; a backend only stores. It subclasses ``Store``, calls
    ``super().__init__(durability=..., group_max=..., group_seconds=...)``,
    and implements the backend interface below. Users never call those
    methods; the base class calls them, with arguments it has already checked.

    The backend interface, named by what each method does to the stored data
    (``read_*`` reads, ``write_*`` writes, ``remove_*`` deletes; the lease and
    queue methods by what they do to leases):

    - :meth:`write_batch`: apply one :class:`~flowforge.store.Batch`
      atomically, checking and keeping its lease (with :meth:`check_lease`);
    - :meth:`read_job`: a job's :class:`~flowforge.store.JobRecord`;
    - :meth:`read_summaries`: the :class:`JobSummary` of matching jobs;
    - :meth:`read_summary_page` (optional: the default pages what
      :meth:`read_summaries` reads): one page of them, newest first;
    - :meth:`read_brief` (optional: the default reads the whole job): a
      job's :class:`~flowforge.store.BriefRecord`;
    - :meth:`remove_job` and :meth:`remove_jobs`: delete one job, or prune;
    - :meth:`write_flow` and :meth:`read_flow`: keep flow definitions;
    - :meth:`read_lease`, :meth:`renew_leases`, :meth:`send_control` and
      :meth:`claim_queued`: leases, control requests and the queue;
    - :meth:`release_resources`: free connections and files on :meth:`close`;
    - :meth:`describe` and (optional) :meth:`location`: the store in words,
      for error messages.

    Every piece of a job arrives as text (JSON) or bytes; a backend stores
    and returns them unchanged. A backend method that fails raises a
    :class:`~flowforge.store.StoreError` (for example
    :class:`~flowforge.store.StoreBusyError`,
    :class:`~flowforge.store.StoreAccessError`,
    :class:`~flowforge.store.StoreConnectionError` or
    :class:`~flowforge.store.CorruptStoreError`) naming the store, never a
    driver's own exception. :class:`flowforge.testing.StoreConformance` is
    the test suite a backend must pass; ``MemoryStore`` is the shortest
    example.

    Args:
        durability: ``"grouped"`` (default) commits a group of steps at a
            time; ``"activation"`` commits after every step. Both keep the
            exactly-once guarantee; grouping only widens what runs again
            after a crash.
        group_max: With ``"grouped"``, the most steps in one commit.
        group_seconds: With ``"grouped"``, a group is committed at the first
            step after it has been open this long.
        lease_seconds: How long a runner's lease on a job lasts without a
            heartbeat; after that the job may be resumed or claimed elsewhere.
        heartbeat_seconds: How often running jobs' leases are renewed
            (default: a sixth of ``lease_seconds``).
        poll_seconds: How often running jobs look for pause and cancel
            requests left by other processes.

    Attributes:
        owner: This store object's runner id, ``host:pid:suffix``, written on
            the leases of the jobs it runs.
    """

    def __init__(
        self,
        *,
        durability: Durability = "grouped",
        group_max: int = 10_000,
        group_seconds: float = 0.05,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        _checks.choice("durability", durability, DURABILITIES)
        self.durability: Durability = durability
        self.group_max = _checks.count("group_max", group_max, minimum=1)
        if durability == "activation":
            self.group_max = 1
        self.group_seconds = _checks.seconds("group_seconds", group_seconds)
        self.lease_seconds = _checks.seconds("lease_seconds", lease_seconds, positive=True)
        beat = lease_seconds / 6 if heartbeat_seconds is None else heartbeat_seconds
        self.heartbeat_seconds = _checks.seconds("heartbeat_seconds", beat, positive=True)
        self.poll_seconds = _checks.seconds("poll_seconds", poll_seconds, positive=True)
        self.owner = new_owner()
        self._keeper = LeaseKeeper(
            self._beat, self.lease_seconds, self.heartbeat_seconds, self.poll_seconds
        )
        self._jobs: dict[str, OpenJob] = {}
        self._jobs_lock = threading.Lock()
        self._closed = False

    # -- the journal (called by the scheduler) --------------------------------

    def begin(self, job: JobState, flow: Flow | None = None) -> None:
        """The job starts or resumes: store it whole, and ``flow``'s definition if given.

        Called by the scheduler. A flow whose definition cannot be saved is
        logged and skipped: the job still runs, and can be resumed with its
        flow built another way.

        The store takes the job's lease in the same transaction, and renews
        it while the job runs.

        Raises:
            JobStateError: The job is already running against this store.
            LeaseHeldError: Another runner holds a live lease on the job (a
                ``JobStateError`` naming the owner).
            SerializationError: The job holds data that is not JSON.
        """
        self._check_open()
        _checks.instance("job", job, JobState, "begin")
        if flow is not None:
            _checks.instance("flow", flow, Flow, "begin")
        entry = OpenJob(job)
        with self._jobs_lock:
            if job.job_id in self._jobs:
                raise JobStateError(
                    f"Job {job.job_id} is already running against {self.describe()}. A job runs "
                    "once at a time; wait for it to end.",
                    job_id=job.job_id,
                    status=str(job.status),
                )
            self._jobs[job.job_id] = entry
        try:
            batch, segments = _records.whole(job, time.time(), self._definition(flow))
            self.write_batch(self._hold(batch, acquire=True))
        except BaseException:
            with self._jobs_lock:
                del self._jobs[job.job_id]
            raise
        entry.stored(batch, segments)
        self._keeper.watch(job, flow)

    def unstorable(
        self,
        job: JobState,
        routine_id: str,
        emits: Sequence[tuple[str, dict[str, Any]]],
        stats: dict[str, Any] | None,
    ) -> UnstorableDataError | None:
        """Why a call's emits and counters cannot be stored, or ``None`` if they can.

        Called by the scheduler before the call's step is committed; the
        error names the routine, the event and the key.
        """
        scalars = _SCALARS
        for event, data in emits:
            # Emitted names are always strings; scalar values need no encoding to be sure.
            for value in data.values():
                if type(value) not in scalars:
                    return _check(job, routine_id, event, data)
        if stats is not None and not all(
            type(k) is str and type(v) in scalars for k, v in stats.items()
        ):
            return _check(job, routine_id, None, stats)
        return None

    def step(
        self,
        job: JobState,
        consumed: Sequence[Message],
        produced: Sequence[Message],
        routine_id: str | None,
        slot_key: str | None,
    ) -> None:
        """One step of the job was committed in memory: add it to the open group.

        Called by the scheduler, on the job's thread. The group is committed
        here when it is full or old enough (see :class:`Store`).
        """
        group = self._jobs.get(job.job_id)
        if group is None:  # a runner that never called begin: store the job whole
            self.begin(job)
            return
        group.consumed += consumed
        group.made += produced
        if routine_id is not None:
            group.routines.add(routine_id)
        if slot_key is not None:
            group.slots.add(slot_key)
        group.steps += 1
        if group.steps == 1:
            group.opened = time.monotonic()
            if self.group_max > 1:
                return
        elif group.steps < self.group_max and (
            time.monotonic() - group.opened < self.group_seconds
        ):
            return
        self._commit(group)

    def flush(self, job: JobState) -> None:
        """Commit the job's open group now (called by the scheduler, on the job's
        thread, before ``submit`` to a live job returns)."""
        group = self._jobs.get(job.job_id)
        if group is not None and group.steps:
            self._commit(group)

    def end(self, job: JobState) -> None:
        """The job stopped running (any status): store it whole.

        Called by the scheduler. After a step that could not be stored, the
        job stays as it was at its last commit. While the job runs against
        this store, ``end`` with another JobState of the same id is ignored
        (logged), so a stray copy cannot overwrite the running job.
        """
        _checks.instance("job", job, JobState, "end")
        with self._jobs_lock:
            group = self._jobs.get(job.job_id)
            if group is not None and group.job is not job:
                logger.warning("end() of a copy of running job %s ignored", job.job_id)
                return
            self._jobs.pop(job.job_id, None)
        self._keeper.unwatch(job.job_id)
        if group is not None and group.broken:
            self.write_batch(self._hold(group.final(time.time()), release=True))
            return
        try:
            batch = _records.whole(job, time.time())[0]
        except SerializationError:
            if group is None:
                raise
            logger.error(
                "job %s: its final state cannot be stored; keeping its last commit", job.job_id
            )
            batch = group.final(time.time())
        self.write_batch(self._hold(batch, acquire=group is None, release=True))

    def _commit(self, group: OpenJob) -> None:
        if group.broken:
            return
        try:
            batch = self._hold(group.batch(time.time()))
            self.write_batch(batch)
        except BaseException:
            # The group is lost; only the job's final status is written over the last commit.
            group.broken = True
            raise
        group.committed(batch)

    # -- reading and housekeeping ---------------------------------------------

    def list_jobs(
        self, flow_id: str | None = None, status: str | Iterable[str] | None = None
    ) -> list[JobSummary]:
        """The stored jobs, oldest first, as :class:`JobSummary` objects.

        Args:
            flow_id: Only the jobs of this flow.
            status: Only jobs with this status (or any of these statuses).
        """
        self._check_open()
        flow_id = _checks.optional_identifier("flow_id", flow_id)
        statuses = None if status is None else _statuses(status)
        return self.read_summaries(flow_id, statuses)

    def page_jobs(
        self,
        flow_id: str | None = None,
        status: str | Iterable[str] | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        """One page of the stored jobs, newest first, and how many match in all.

        A dashboard's job table reads this: the store does the paging, so a
        page costs the same however many jobs the store keeps.

        Args:
            flow_id: Only the jobs of this flow.
            status: Only jobs with this status (or any of these statuses).
            limit: The most jobs on the page (at least 1).
            offset: How many of the newest matching jobs to skip.
        """
        self._check_open()
        flow_id = _checks.optional_identifier("flow_id", flow_id)
        statuses = None if status is None else _statuses(status)
        limit = _checks.count("limit", limit, minimum=1)
        offset = _checks.count("offset", offset, minimum=0)
        return JobPage(*self.read_summary_page(flow_id, statuses, limit, offset))

    def load(self, job_id: str) -> JobState:
        """The job as last committed, ready for :meth:`Flow.resume <flowforge.Flow.resume>`.

        Raises:
            JobNotFoundError: The store has no such job (also a ``KeyError``).
            CorruptStoreError: The stored job cannot be read back.
        """
        self._check_open()
        _checks.identifier("job_id", job_id)
        record = self.read_job(job_id)
        if record is None:
            raise self._no_job(job_id)
        try:
            return _records.assemble(record)
        except (ValueError, TypeError, KeyError, FlowForgeError) as exc:
            raise self._unreadable(job_id, exc) from exc

    def _no_job(self, job_id: str) -> JobNotFoundError:
        return JobNotFoundError(
            f"{self.describe()} has no job '{job_id}'. store.list_jobs() lists the jobs it has.",
            path=self.location(),
            job_id=job_id,
        )

    def _unreadable(self, job_id: str, exc: Exception) -> CorruptStoreError:
        return CorruptStoreError(
            f"Job '{job_id}' in {self.describe()} cannot be read back: {exc}",
            path=self.location(),
        )

    def load_brief(self, job_id: str) -> JobBrief:
        """The job as last committed, for showing it: read without its bulk.

        Much cheaper than :meth:`load` for a job with a long history or many
        pending messages; a dashboard polls this.

        Raises:
            JobNotFoundError: The store has no such job (also a ``KeyError``).
            CorruptStoreError: The stored job cannot be read back.
        """
        self._check_open()
        _checks.identifier("job_id", job_id)
        record = self.read_brief(job_id)
        if record is None:
            raise self._no_job(job_id)
        try:
            return JobBrief(_records.assemble_brief(record), record.pending)
        except (ValueError, TypeError, KeyError, FlowForgeError) as exc:
            raise self._unreadable(job_id, exc) from exc

    def save(self, job: JobState) -> None:
        """Store ``job`` whole, replacing what the store had for it.

        For a JobState that ran without this store, or that was changed by
        hand (for example marked cancelled). Jobs that run against the store
        are saved by it; there is no need to call this for them.

        Raises:
            JobStateError: The job is running against this store now.
            LeaseHeldError: The job runs elsewhere (its lease is live).
            SerializationError: The job holds data that is not JSON.
        """
        self._check_open()
        _checks.instance("job", job, JobState, "save")
        self._refuse_running(job.job_id, "save")
        self.write_batch(
            self._hold(_records.whole(job, time.time())[0], acquire=True, release=True)
        )

    def delete(self, job_id: str) -> None:
        """Forget the job and everything stored with it.

        Raises:
            JobNotFoundError: The store has no such job.
            JobStateError: The job is running against this store now, or
                elsewhere (:class:`LeaseHeldError`: its lease is live).
        """
        self._check_open()
        _checks.identifier("job_id", job_id)
        self._refuse_running(job_id, "delete")
        self._refuse_leased(job_id)
        if not self.remove_job(job_id):
            raise JobNotFoundError(
                f"Cannot delete job '{job_id}': {self.describe()} has no such job.",
                path=self.location(),
                job_id=job_id,
            )

    def prune(
        self, older_than: float | datetime.timedelta, statuses: Iterable[str] = FINISHED
    ) -> int:
        """Delete jobs with one of ``statuses`` not committed for ``older_than``.

        Args:
            older_than: An age, in seconds or as a :class:`datetime.timedelta`;
                ``0`` prunes every job with a matching status.
            statuses: Which jobs may go (default: completed, failed and
                cancelled ones). Jobs running against this store are kept.

        Returns:
            How many jobs were deleted.

        Raises:
            StoreUsageError: ``older_than`` is negative or not finite, or a
                status is unknown.
            StoreTypeError: ``older_than`` is not seconds or a timedelta, or
                ``statuses`` is not a list of strings.
        """
        self._check_open()
        seconds = _seconds(older_than)
        wanted = _statuses(statuses)
        with self._jobs_lock:
            running = set(self._jobs)
        return self.remove_jobs(time.time() - seconds, wanted, running)

    def save_flow(self, flow: Flow) -> None:
        """Keep ``flow``'s definition, so :meth:`load_flow` can rebuild it.

        Jobs save their flow's definition when they start, so this is only
        needed for a flow none of whose jobs ran against the store yet.
        """
        self._check_open()
        _checks.instance("flow", flow, Flow, "save_flow")
        self.write_flow(
            flow.flow_id,
            _records.dumps(_flow_document(flow), f"flow '{flow.flow_id}'"),
            time.time(),
        )

    def load_flow(self, flow_id: str, *, allowed_modules: Sequence[str] = ()) -> Flow:
        """Rebuild the flow saved under ``flow_id``.

        Args:
            flow_id: The flow's id.
            allowed_modules: Modules its routine classes may be imported
                from, as for :meth:`Flow.load <flowforge.Flow.load>`.

        Raises:
            FlowNotFoundError: No definition of that flow was saved.
        """
        self._check_open()
        _checks.identifier("flow_id", flow_id)
        allowed = _checks.names("allowed_modules", allowed_modules)
        data = self._saved_flow(flow_id)
        data.pop(ORIGIN_KEY, None)
        return Flow.from_dict(data, allowed_modules=allowed)

    def flow_origin(self, flow_id: str) -> FlowOrigin | None:
        """Where the saved flow's routine classes were imported from, if it was recorded.

        Stores written before origins were recorded return ``None``.

        Raises:
            FlowNotFoundError: No definition of that flow was saved.
        """
        self._check_open()
        _checks.identifier("flow_id", flow_id)
        origin = self._saved_flow(flow_id).get(ORIGIN_KEY)
        if not isinstance(origin, dict):
            return None
        return FlowOrigin(
            tuple(str(p) for p in origin.get("paths", ())),
            tuple(str(m) for m in origin.get("modules", ())),
        )

    # -- leases, control and the queue --------------------------------------------

    def lease(self, job_id: str) -> Lease | None:
        """Who runs the job: its :class:`~flowforge.store.Lease`, live or lapsed, or ``None``.

        A job has a lease from the moment a runner begins (or claims) it until
        it stops running; a lapsed one (``not lease.live()``) was left by a
        runner that died.
        """
        self._check_open()
        _checks.identifier("job_id", job_id)
        return self.read_lease(job_id)

    def request_pause(self, job_id: str, reason: str | None = None) -> bool:
        """Pause the job, wherever it runs.

        A job running in any process that shares the store pauses within a
        second (its runner polls every ``poll_seconds``; running calls finish
        first). A job that runs nowhere (queued, or left ``running`` by a dead
        process) is marked paused in the store at once.

        Returns:
            ``True`` if a running job was asked, ``False`` if the store was changed.

        Raises:
            JobNotFoundError: The store has no such job.
            JobStateError: The job is already paused, or finished.
        """
        return self._control(job_id, "pause", reason)

    def request_cancel(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel the job, wherever it runs; like :meth:`request_pause`.

        A job that runs nowhere (queued, paused, failed, or left ``running``)
        is marked cancelled in the store at once.

        Raises:
            JobNotFoundError: The store has no such job.
            JobStateError: The job is already completed or cancelled.
        """
        return self._control(job_id, "cancel", reason)

    def submit(self, job: JobState, flow: Flow) -> None:
        """Queue ``job``, a fresh job of ``flow`` with its entry call queued, for a worker.

        The job is stored with status ``queued``, with ``flow``'s definition;
        :meth:`claim` hands it to a worker. :meth:`Flow.submit
        <flowforge.Flow.submit>` is the usual way in.

        Raises:
            JobStateError: The store already has a job with this id.
            SerializationError: The flow's definition or the job's data is not JSON.
        """
        self._check_open()
        _checks.instance("job", job, JobState, "submit")
        _checks.instance("flow", flow, Flow, "submit")
        if self.read_job(job.job_id) is not None:
            raise JobStateError(
                f"Cannot submit job {job.job_id}: {self.describe()} already has a job with that "
                "id. Give the new job another id (or none: one is made).",
                job_id=job.job_id,
                status=str(job.status),
            )
        job.status = JobStatus.QUEUED
        job.reason = None
        definition = (flow.flow_id, _records.dumps(_flow_document(flow), f"flow '{flow.flow_id}'"))
        batch = _records.whole(job, time.time(), definition)[0]
        self.write_batch(self._hold(batch, acquire=True, release=True))

    def claim(self) -> JobState | None:
        """Take the oldest queued job for this store's runner, or ``None`` if there is none.

        The job comes with its lease held by :attr:`owner`: run it with this
        store (``flow.resume(job, store=store)``) or give it back with
        :meth:`release`. Queued jobs whose runner died (their lease lapsed) are
        claimed again, and resume from their last commit. Two claims, in any
        processes, never get the same job.
        """
        self._check_open()
        now = time.time()
        job_id = self.claim_queued(self.owner, now, now + self.lease_seconds)
        if job_id is None:
            return None
        try:
            return self.load(job_id)
        except BaseException:
            self.release(job_id)
            raise

    def release(self, job_id: str) -> None:
        """Give up this runner's lease on a claimed job it will not run (no-op otherwise)."""
        self._check_open()
        _checks.identifier("job_id", job_id)
        now = time.time()
        self.renew_leases(self.owner, [job_id], now, now)

    def _control(self, job_id: str, action: str, reason: str | None) -> bool:
        self._check_open()
        _checks.identifier("job_id", job_id)
        reason = reason or ("paused" if action == "pause" else "cancelled")
        while True:
            sent = self.send_control(job_id, action, reason, time.time())
            if sent == "absent":
                raise JobNotFoundError(
                    f"Cannot {action} job '{job_id}': {self.describe()} has no such job.",
                    path=self.location(),
                    job_id=job_id,
                )
            if sent == "sent":
                return True
            try:
                self._control_stored(self.load(job_id), action, reason)
            except LeaseHeldError:  # it started meanwhile: ask its runner
                continue
            return False

    def _control_stored(self, job: JobState, action: str, reason: str) -> None:
        allowed = (
            (JobStatus.QUEUED, JobStatus.PENDING, JobStatus.RUNNING)
            if action == "pause"
            else tuple(s for s in JobStatus if not s.finished or s is JobStatus.FAILED)
        )
        if job.status not in allowed:
            raise JobStateError(
                f"Cannot {action} job {job.job_id}: it is {job.status}. Only "
                f"{', '.join(map(str, allowed))} jobs can be "
                f"{'paused' if action == 'pause' else 'cancelled'}.",
                job_id=job.job_id,
                status=str(job.status),
            )
        job.reason = reason
        if action == "pause":
            job.status = JobStatus.PAUSED
        else:
            job.status = JobStatus.CANCELLED
            job.finished_at = time.time()
        self.save(job)

    def _hold(self, batch: Batch, *, acquire: bool = False, release: bool = False) -> Batch:
        """``batch`` made to check, take, renew or release this runner's lease."""
        batch.owner = self.owner
        batch.acquire = acquire
        batch.expires_at = None if release else batch.updated_at + self.lease_seconds
        return batch

    def _beat(
        self, job_ids: Collection[str], now: float, expires_at: float | None
    ) -> dict[str, Control]:
        return self.renew_leases(self.owner, job_ids, now, expires_at)

    def _refuse_leased(self, job_id: str) -> None:
        lease = self.read_lease(job_id)
        if lease is not None and lease.live() and lease.owner != self.owner:
            raise _lease.held(lease, "running", self.describe())

    def _saved_flow(self, flow_id: str) -> dict[str, Any]:
        text = self.read_flow(flow_id)
        if text is None:
            raise FlowNotFoundError(
                f"{self.describe()} has no saved flow '{flow_id}'. Flows are saved when one of "
                "their jobs starts, or with store.save_flow(flow).",
                path=self.location(),
                flow_id=flow_id,
            )
        try:
            definition = json.loads(text)
        except ValueError as exc:
            raise CorruptStoreError(
                f"The saved definition of flow '{flow_id}' in {self.describe()} is not JSON: {exc}",
                path=self.location(),
            ) from exc
        if not isinstance(definition, dict):
            raise CorruptStoreError(
                f"The saved definition of flow '{flow_id}' in {self.describe()} is not a mapping.",
                path=self.location(),
            )
        return definition

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless.

        Raises:
            JobStateError: A job is still running against the store.
        """
        if self._closed:
            return
        with self._jobs_lock:
            running = sorted(self._jobs)
        if running:
            raise JobStateError(
                f"Cannot close {self.describe()}: job(s) {', '.join(running)} still run against "
                "it. Let them end (or pause or cancel them) first.",
                job_id=running[0],
                status="running",
            )
        self._keeper.stop()
        self._closed = True
        self.release_resources()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"{self.describe()} is closed; open it again to use it.", path=self.location()
            )

    def _refuse_running(self, job_id: str, action: str) -> None:
        with self._jobs_lock:
            if job_id in self._jobs:
                raise JobStateError(
                    f"Cannot {action} job '{job_id}': it is running against {self.describe()}. "
                    "Let it end (or cancel it) first.",
                    job_id=job_id,
                    status="running",
                )

    def _definition(self, flow: Flow | None) -> tuple[str, str] | None:
        if flow is None:
            return None
        try:
            return flow.flow_id, _records.dumps(_flow_document(flow), f"flow '{flow.flow_id}'")
        except (FlowForgeError, TypeError, ValueError) as exc:
            # The job can still run and be resumed; only the command line,
            # which rebuilds flows from the store, loses this one.
            logger.warning("flow %r was not saved in %s: %s", flow.flow_id, self.describe(), exc)
            return None

    # -- the backend interface, provided by subclasses ----------------------------

    def check_lease(self, batch: Batch, found: Lease | None, status: str | None) -> None:
        """Raise unless ``batch``'s runner may commit it, given the job's stored lease.

        A helper for :meth:`write_batch`: call it in the batch's transaction,
        after reading the job's lease and stored status with the row locked.

        Args:
            batch: The batch about to be written.
            found: The job's lease in the store, live or lapsed, or ``None``.
            status: The job's stored status, or ``None`` if the store has no
                such job (the backend reports that itself).

        Raises:
            LeaseHeldError: ``batch.acquire`` is set and another runner holds
                a live lease on the job.
            LeaseLostError: The batch's runner no longer holds the lease.
        """
        _lease.check(batch, found, status, self.describe(), self.location())

    @abc.abstractmethod
    def describe(self) -> str:
        """The store in words, for messages: ``"the store jobs.db"``.

        Must not show a password.
        """

    def location(self) -> str:
        """The store's file or URL (without a password) for errors' ``path``, or ``""``.

        Optional: the default is ``""``.
        """
        return ""

    @abc.abstractmethod
    def write_batch(self, batch: Batch) -> None:
        """Apply one :class:`~flowforge.store.Batch` atomically: all of it or none.

        Whatever happens to the process (an exception, a kill), the store
        holds the job as before the batch or as after it. With
        ``batch.replace``, drop everything stored for the job first and write
        it whole. With ``batch.flow``, save that definition too, as
        :meth:`write_flow` does.

        Leases: when ``batch.owner`` is set, read the job's lease and stored
        status in the same transaction (locking the row), call
        :meth:`check_lease`, then keep the lease (``batch.owner``, heartbeat
        ``batch.updated_at``, expiry ``batch.expires_at``; a new owner starts
        with no control request and a new ``since``) or, when
        ``batch.expires_at`` is ``None``, clear the lease and the job's
        control request. A job whose batch has status ``queued`` is marked as
        queued (for :meth:`claim_queued`) and stays so.

        Raises:
            JobNotFoundError: The batch is not ``replace`` and the store has
                no such job (it was deleted while it ran).
            LeaseHeldError: From :meth:`check_lease`.
            LeaseLostError: From :meth:`check_lease`.
            StoreError: The store failed (a subclass saying why); nothing
                of the batch was written.
        """

    @abc.abstractmethod
    def read_job(self, job_id: str) -> JobRecord | None:
        """The job's :class:`~flowforge.store.JobRecord`, or ``None`` if there is no such job.

        Read consistently: every part as of one commit. Pieces come back
        exactly as they were written, tails ordered by kind then ``first``.

        Raises:
            StoreError: The store failed.
        """

    def read_brief(self, job_id: str) -> BriefRecord | None:
        """The job's :class:`~flowforge.store.BriefRecord`, or ``None`` if there is no such job.

        Read consistently, as :meth:`read_job` is. The default reads the
        whole job with :meth:`read_job`; a backend overrides it to read only
        the parts a brief record holds, and to count the pending messages
        without reading them.

        Raises:
            StoreError: The store failed.
        """
        record = self.read_job(job_id)
        return None if record is None else _records.brief(record)

    @abc.abstractmethod
    def read_summaries(
        self, flow_id: str | None, statuses: Collection[str] | None
    ) -> list[JobSummary]:
        """The :class:`JobSummary` of each matching job, oldest first.

        Args:
            flow_id: Only this flow's jobs; ``None``: every flow's.
            statuses: Only jobs with one of these statuses; ``None``: any.

        Returns:
            Summaries ordered by ``created_at``, then ``job_id``; ``pending``
            counts the messages not yet consumed.
        """

    def read_summary_page(
        self, flow_id: str | None, statuses: Collection[str] | None, limit: int, offset: int
    ) -> tuple[list[JobSummary], int]:
        """One page of the matching jobs' :class:`JobSummary`, newest first, and their number.

        Args:
            flow_id: Only this flow's jobs; ``None``: every flow's.
            statuses: Only jobs with one of these statuses; ``None``: any.
            limit: The most summaries to return.
            offset: How many matching jobs to skip first.

        Returns:
            The summaries ordered by ``created_at``, then ``job_id``, both
            descending, read consistently with the count of every matching
            job. The default pages what :meth:`read_summaries` returns; a
            backend overrides it to page in its queries.
        """
        found = self.read_summaries(flow_id, statuses)
        found.reverse()
        return found[offset : offset + limit], len(found)

    @abc.abstractmethod
    def remove_job(self, job_id: str) -> bool:
        """Delete the job and everything stored with it, atomically.

        Returns:
            ``False`` if the store had no such job.
        """

    @abc.abstractmethod
    def remove_jobs(self, cutoff: float, statuses: Collection[str], keep: Collection[str]) -> int:
        """Atomically delete the jobs with one of ``statuses`` not committed since ``cutoff``.

        A job goes when its ``updated_at`` is at or before ``cutoff``.

        Args:
            cutoff: A time (seconds since the epoch), compared with ``updated_at``.
            statuses: The statuses of the jobs that may go.
            keep: Ids of jobs to keep whatever they match (they run now).

        Returns:
            How many jobs were deleted.
        """

    @abc.abstractmethod
    def write_flow(self, flow_id: str, definition: str, when: float) -> None:
        """Keep a flow's definition (JSON text), replacing an older one of that id.

        Args:
            flow_id: The flow's id.
            definition: Its definition, returned unchanged by :meth:`read_flow`.
            when: When it was saved (seconds since the epoch).
        """

    @abc.abstractmethod
    def read_flow(self, flow_id: str) -> str | None:
        """The definition last written by :meth:`write_flow` for ``flow_id``, or ``None``."""

    @abc.abstractmethod
    def release_resources(self) -> None:
        """Free connections, files and memory; called once, by :meth:`close`."""

    @abc.abstractmethod
    def read_lease(self, job_id: str) -> Lease | None:
        """The job's :class:`~flowforge.store.Lease`, live or lapsed, or ``None`` if it has none.

        ``None`` too when the store has no such job.
        """

    @abc.abstractmethod
    def renew_leases(
        self, owner: str, job_ids: Collection[str], now: float, expires_at: float | None
    ) -> dict[str, Control]:
        """Renew the leases ``owner`` holds on ``job_ids``, in one transaction.

        Jobs whose lease another runner holds, or that have none, are left
        alone and left out of the result.

        Args:
            owner: The runner.
            job_ids: The jobs it runs.
            now: The new heartbeat time.
            expires_at: The new expiry; ``None`` reads without renewing.

        Returns:
            ``{job_id: control}`` for each job ``owner`` still holds,
            ``control`` being the job's request ``(action, reason)`` or ``None``.
        """

    @abc.abstractmethod
    def send_control(
        self, job_id: str, action: str, reason: str, now: float
    ) -> Literal["sent", "idle", "absent"]:
        """Atomically leave a control request on the job, if its lease is live at ``now``.

        A ``"cancel"`` already left is never replaced by a ``"pause"``.

        Args:
            job_id: The job.
            action: ``"pause"`` or ``"cancel"``.
            reason: Why, in words.
            now: The time to judge the lease by.

        Returns:
            ``"sent"`` (the request was left), ``"idle"`` (no live lease:
            nothing changed) or ``"absent"`` (no such job).
        """

    @abc.abstractmethod
    def claim_queued(self, owner: str, now: float, expires_at: float) -> str | None:
        """Atomically give ``owner`` the lease of the oldest claimable queued job.

        Claimable: a job marked queued (see :meth:`write_batch`) whose status
        is still ``queued`` or ``running`` and whose lease is free or lapsed
        at ``now``. The new lease starts at ``now``, with no control request.
        Two claims, from any threads or processes, never get the same job.

        Returns:
            The job's id, or ``None`` if no job is claimable.
        """


@attrs.frozen
class FlowOrigin:
    """Where a saved flow's routine classes came from, recorded when it was saved.

    Attributes:
        paths: The ``sys.path`` directories their modules were imported from.
        modules: The modules themselves, to allow when the flow is loaded again.
    """

    paths: tuple[str, ...]
    modules: tuple[str, ...]


#: The key of the origin in a saved flow definition (not part of the flow-file format).
ORIGIN_KEY = "origin"


def _flow_document(flow: Flow) -> dict[str, object]:
    document = flow.serialize()
    modules = sorted({type(r).__module__ for r in flow.routines.values()} - {"__main__"})
    roots = (_import_root(m) for m in modules)
    document[ORIGIN_KEY] = {
        "paths": list(dict.fromkeys(r for r in roots if r is not None)),
        "modules": modules,
    }
    return document


def _import_root(module_name: str) -> str | None:
    """The ``sys.path`` directory ``module_name``'s top-level package was imported from."""
    top = sys.modules.get(module_name.partition(".")[0])
    file = getattr(top, "__file__", None)
    if not file:
        return None
    location = Path(file).resolve()
    is_package = location.name == "__init__.py"
    return str(location.parent.parent if is_package else location.parent)


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _check(
    job: JobState, routine_id: str, event: str | None, data: dict[str, Any]
) -> UnstorableDataError | None:
    try:
        _records.encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        error = _unstorable(job, routine_id, event, data, exc)
        error.__cause__ = exc
        return error
    return None


def _unstorable(
    job: JobState, routine_id: str, event: str | None, data: dict[str, Any], exc: Exception
) -> UnstorableDataError:
    what = f"emitted '{event}' with data" if event is not None else "set counters (self._stats)"
    where = _records.bad_place(data)
    return UnstorableDataError(
        f"Routine '{routine_id}' {what} that the store cannot keep: {where}. Job {job.job_id} "
        "stops here. A store keeps data as JSON: use dict, list, str, int, float, bool and "
        f"None (convert the value before emitting it), or run without a store. ({exc})",
        routine_id=routine_id,
        event=event,
    )


def _statuses(status: object) -> list[str]:
    names = [status] if isinstance(status, str) else list(_checks.names("status", status))
    known = [str(s) for s in JobStatus]
    bad = [name for name in names if name not in known]
    if bad or not names:
        raise StoreUsageError(
            f"Unknown job status {', '.join(map(repr, bad)) or '(none given)'}; expected some of "
            f"{', '.join(map(repr, known))}.",
            argument="status",
            expected=f"some of {', '.join(map(repr, known))}",
            got=status,
        )
    return [str(JobStatus(name)) for name in names]


def _seconds(older_than: object) -> float:
    if isinstance(older_than, datetime.timedelta):
        return _checks.seconds("older_than", older_than.total_seconds())
    if isinstance(older_than, bool) or not isinstance(older_than, numbers.Real):
        raise StoreTypeError(
            f"older_than must be seconds or a datetime.timedelta, got {older_than!r} "
            f"({type(older_than).__name__}). Pass older_than=3600 or "
            "older_than=datetime.timedelta(hours=1).",
            argument="older_than",
            expected="seconds or a datetime.timedelta",
            got=older_than,
        )
    return _checks.seconds("older_than", older_than)
