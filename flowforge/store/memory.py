""":class:`MemoryStore`: a store that lives in this process only, for tests.

It keeps the same serialized (JSON) pieces an :class:`~flowforge.store.SQLiteStore`
writes, applies each commit atomically under a lock, and rebuilds JobStates
from those pieces, so what a test sees of it is what a real store would
give back: a loaded job shares nothing with the one that ran.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any, Literal

import attrs

from ._errors import JobNotFoundError
from ._lease import Control, Lease
from ._records import Batch, JobRecord
from .base import Durability, JobSummary, Store


@attrs.define
class _Job:
    """One stored job: its row and its pieces, as JSON text."""

    summary: JobSummary
    header: str
    entry: str | None
    #: Message segments: ``first -> [alive, entries, consumed]``.
    messages: dict[int, list[Any]] = attrs.field(factory=dict)
    routines: dict[str, str] = attrs.field(factory=dict)
    slots: dict[str, str] = attrs.field(factory=dict)
    #: Per tail kind, ``first -> (count, entries, stamps)`` in the order written.
    tails: dict[str, dict[int, tuple[int, str, bytes | None]]] = attrs.field(factory=dict)
    tasks: dict[str, str] = attrs.field(factory=dict)
    lease: Lease | None = None
    request: Control = None
    queued: bool = False


class MemoryStore(Store):
    """Jobs checkpointed in memory; the same interface as :class:`SQLiteStore`.

    Args:
        durability: ``"grouped"`` (default) or ``"activation"``.
        group_max: With ``"grouped"``, the most steps in one commit.
        group_seconds: With ``"grouped"``, a group is committed at the first
            step after it has been open this long.
        lease_seconds, heartbeat_seconds, poll_seconds: The leases of running
            jobs; see :class:`~flowforge.store.Store`.

    Example:
        >>> from flowforge import Flow
        >>> from flowforge.store import MemoryStore
        >>> from flowforge.testing import Double
        >>> store = MemoryStore()
        >>> flow = Flow(flow_id="demo", store=store)
        >>> flow.add_routine(Double(), "double")
        'double'
        >>> job = flow.execute("double", {"value": 2})
        >>> [str(s.status) for s in store.list_jobs()]
        ['completed']
        >>> store.load(job.job_id).routine_states["double"]["stats"]
        {'calls': 1}
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
        super().__init__(
            durability=durability,
            group_max=group_max,
            group_seconds=group_seconds,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
            poll_seconds=poll_seconds,
        )
        self._lock = threading.RLock()
        self._stored: dict[str, _Job] = {}
        self._flows: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(durability={self.durability!r}, jobs={len(self._stored)})"

    def describe(self) -> str:
        return "the memory store"

    def write_batch(self, batch: Batch) -> None:
        self._check_open()
        with self._lock:
            old = self._stored.get(batch.job_id)
            if old is not None:
                self.check_lease(batch, old.lease, old.summary.status)
            job = self._row(batch)
            if old is not None and job is not old:
                job.lease, job.request, job.queued = old.lease, old.request, old.queued
            job.queued = job.queued or batch.status == "queued"
            _keep_lease(job, batch)
            for first in batch.dropped:
                job.messages.pop(first, None)
            for first, alive, runs in batch.consumed:
                segment = job.messages[first]
                segment[0], segment[2] = alive, runs
            for first, alive, entries in batch.segments:
                job.messages[first] = [alive, entries, "[]"]
            job.routines.update(batch.routines)
            job.tasks.update(batch.tasks)
            for key, state in batch.slots:
                if state is None:
                    job.slots.pop(key, None)
                else:
                    job.slots[key] = state
            for kind, first, count, entries, stamps in batch.tails:
                job.tails.setdefault(kind, {})[first] = (count, entries, stamps)
            _trim(job, batch.keep_from)
            if batch.flow is not None:
                self._flows[batch.flow[0]] = batch.flow[1]

    def _row(self, batch: Batch) -> _Job:
        job = self._stored.get(batch.job_id)
        if batch.replace:
            job = self._stored[batch.job_id] = _Job(_summary(batch), batch.header, batch.entry)
        elif job is None:
            raise JobNotFoundError(
                f"Job '{batch.job_id}' was deleted from the memory store while it was running, "
                "so its progress cannot be recorded. Do not delete running jobs.",
                path="",
                job_id=batch.job_id,
            )
        job.summary = _summary(batch)
        job.header = batch.header
        return job

    def read_job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            job = self._stored.get(job_id)
            if job is None:
                return None
            return JobRecord(
                job.header,
                job.entry,
                [(entries, runs) for _, (_, entries, runs) in sorted(job.messages.items())],
                list(job.routines.items()),
                list(job.slots.items()),
                [
                    (kind, first, *segment)
                    for kind, segments in sorted(job.tails.items())
                    for first, segment in sorted(segments.items())
                ],
                list(job.tasks.items()),
            )

    def read_summaries(
        self, flow_id: str | None, statuses: Collection[str] | None
    ) -> list[JobSummary]:
        with self._lock:
            found = [
                attrs.evolve(job.summary, pending=sum(s[0] for s in job.messages.values()))
                for job in self._stored.values()
                if (flow_id is None or job.summary.flow_id == flow_id)
                and (statuses is None or job.summary.status in statuses)
            ]
        return sorted(found, key=lambda s: (s.created_at, s.job_id))

    def remove_job(self, job_id: str) -> bool:
        with self._lock:
            return self._stored.pop(job_id, None) is not None

    def remove_jobs(self, cutoff: float, statuses: Collection[str], keep: Collection[str]) -> int:
        with self._lock:
            gone = [
                job_id
                for job_id, job in self._stored.items()
                if job.summary.updated_at <= cutoff
                and job.summary.status in statuses
                and job_id not in keep
            ]
            for job_id in gone:
                del self._stored[job_id]
        return len(gone)

    def write_flow(self, flow_id: str, definition: str, when: float) -> None:
        with self._lock:
            self._flows[flow_id] = definition

    def read_flow(self, flow_id: str) -> str | None:
        with self._lock:
            return self._flows.get(flow_id)

    def release_resources(self) -> None:
        with self._lock:
            self._stored.clear()
            self._flows.clear()

    def read_lease(self, job_id: str) -> Lease | None:
        with self._lock:
            job = self._stored.get(job_id)
            return None if job is None else job.lease

    def renew_leases(
        self, owner: str, job_ids: Collection[str], now: float, expires_at: float | None
    ) -> dict[str, Control]:
        held: dict[str, Control] = {}
        with self._lock:
            for job_id in job_ids:
                job = self._stored.get(job_id)
                if job is None or job.lease is None or job.lease.owner != owner:
                    continue
                if expires_at is not None:
                    job.lease = attrs.evolve(job.lease, heartbeat_at=now, expires_at=expires_at)
                held[job_id] = job.request
        return held

    def send_control(
        self, job_id: str, action: str, reason: str, now: float
    ) -> Literal["sent", "idle", "absent"]:
        with self._lock:
            job = self._stored.get(job_id)
            if job is None:
                return "absent"
            if job.lease is None or not job.lease.live(now):
                return "idle"
            if job.request is None or job.request[0] != "cancel":
                job.request = (action, reason)
            return "sent"

    def claim_queued(self, owner: str, now: float, expires_at: float) -> str | None:
        with self._lock:
            ready = [
                job
                for job in self._stored.values()
                if job.queued
                and job.summary.status in ("queued", "running")
                and (job.lease is None or not job.lease.live(now))
            ]
            if not ready:
                return None
            job = min(ready, key=lambda j: (j.summary.created_at, j.summary.job_id))
            job.lease = Lease(job.summary.job_id, owner, now, now, expires_at)
            job.request = None
            return job.summary.job_id


def _summary(batch: Batch) -> JobSummary:
    return JobSummary(
        batch.job_id,
        batch.flow_id,
        batch.status,
        batch.created_at,
        batch.updated_at,
        batch.started_at,
        batch.finished_at,
        batch.reason,
        0,
    )


def _keep_lease(job: _Job, batch: Batch) -> None:
    if batch.owner is None:
        return
    if batch.expires_at is None:
        job.lease, job.request = None, None
        return
    since = batch.updated_at
    if job.lease is not None and job.lease.owner == batch.owner:
        since = job.lease.since
    elif job.lease is not None or batch.acquire:
        job.request = None
    job.lease = Lease(batch.job_id, batch.owner, since, batch.updated_at, batch.expires_at)


def _trim(job: _Job, keep_from: dict[str, int]) -> None:
    # Segments of a kind are written oldest first, so the ones to drop lead.
    for kind, keep in keep_from.items():
        segments = job.tails.get(kind, {})
        doomed = []
        for first, (count, *_) in segments.items():
            if first + count > keep:
                break
            doomed.append(first)
        for first in doomed:
            del segments[first]
