"""Leases: which runner holds a job, and the thread that keeps a store's leases alive.

A store object is one runner: its ``owner`` id (host, process id and a random
suffix) is written on every job it runs, with a heartbeat time and an
expiry. The lease is taken in the same transaction that stores the job when
it starts (``begin``), renewed by every commit and by a heartbeat, and
released by the commit that records how the job ended. Every commit checks,
in its transaction, that its runner still holds the lease, so a runner that
was given up for dead can never write over the job's new owner.

A lease whose expiry has passed is free: its owner stopped heartbeating
(killed, frozen, cut off), and the job may be resumed or claimed.

While jobs run, a :class:`LeaseKeeper` thread renews their leases every
``heartbeat_seconds`` and reads the control requests (pause, cancel) other
processes left on them every ``poll_seconds``, handing them to the flow
that runs the job.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from ..errors import JobStateError
from ..job_state import JobState
from ._errors import LeaseHeldError, LeaseLostError
from ._records import Batch

logger = logging.getLogger(__name__)

#: A control request left on a running job: ``(action, reason)``, action ``"pause"`` or
#: ``"cancel"``; ``None`` when there is none.
Control = tuple[str, str] | None
ACTIONS = ("pause", "cancel")


@attrs.frozen
class Lease:
    """Who runs a job (what :meth:`Store.lease <flowforge.store.Store.lease>` returns).

    Attributes:
        job_id: The job.
        owner: The runner holding it: ``host:pid:suffix`` of the store object
            that runs the job (:attr:`Store.owner <flowforge.store.Store.owner>`).
        since: When the owner took the lease (seconds since the epoch).
        heartbeat_at: The owner's latest heartbeat or commit.
        expires_at: When the lease lapses unless the owner renews it.
    """

    job_id: str
    owner: str
    since: float
    heartbeat_at: float
    expires_at: float

    def live(self, now: float | None = None) -> bool:
        """Whether the lease still holds (its expiry is in the future)."""
        return self.expires_at > (time.time() if now is None else now)


def new_owner() -> str:
    """A fresh owner id: ``host:pid:suffix``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def stamp(when: float) -> str:
    """A time for messages: local ISO date and time to the second."""
    return datetime.datetime.fromtimestamp(when).isoformat(sep=" ", timespec="seconds")


def held(lease: Lease, status: str, name: str) -> LeaseHeldError:
    """The error for touching a job whose ``lease`` is live."""
    return LeaseHeldError(
        f"Job {lease.job_id} is being run by {lease.owner} (in {name}): it holds the job's "
        f"lease since {stamp(lease.since)}, last heartbeat {stamp(lease.heartbeat_at)}, "
        f"expiring {stamp(lease.expires_at)} unless renewed. Wait for the job to end, or stop "
        f"it from anywhere with `flowforge pause {lease.job_id}` (or cancel). If that process "
        "is dead, the job can be resumed once the lease has expired.",
        job_id=lease.job_id,
        status=status,
        owner=lease.owner,
        since=lease.since,
        heartbeat_at=lease.heartbeat_at,
        expires_at=lease.expires_at,
    )


def check(batch: Batch, found: Lease | None, status: str | None, name: str, path: str) -> None:
    """Raise unless ``batch``'s runner may commit, given the job's lease ``found`` in the store.

    Backends call this (through :meth:`Store.check_lease
    <flowforge.store.Store.check_lease>`) in the transaction that applies ``batch``, after
    reading the job's lease and its stored ``status`` (``None``: the store has
    no such job, which the backend reports its own way) with a lock on the row.
    """
    if batch.owner is None or status is None:
        return
    if found is not None and found.owner == batch.owner:
        return
    if batch.acquire:
        if found is None or not found.live(batch.updated_at):
            return
        raise held(found, status or batch.status, name)
    raise LeaseLostError(
        f"Job {batch.job_id}: this runner ({batch.owner}) no longer holds its lease in {name}"
        + (f"; {found.owner} took the job over" if found is not None else "")
        + ". Its heartbeat stopped for longer than the lease lasts (a frozen or overloaded "
        "process?), so another runner was allowed to resume the job; what this runner did "
        "since its last commit is dropped. Give the store a longer lease_seconds= if runners "
        "stall that long.",
        path=path,
        job_id=batch.job_id,
    )


def keeps(batch: Batch) -> bool:
    """Whether ``batch`` leaves a lease on its job (``False``: it clears the lease)."""
    return batch.owner is not None and batch.expires_at is not None


def queued_at(batch: Batch) -> float | None:
    """The ``queued_at`` of a job first written by ``batch``: set for a submitted job."""
    return batch.updated_at if batch.status == "queued" else None


def update(batch: Batch, jid: int, mark: str) -> tuple[str, tuple[Any, ...]]:
    """The statement that keeps (or, ``expires_at`` None, clears) ``batch``'s lease.

    ``mark`` is the driver's parameter mark. A new owner starts with no
    control request; the same owner keeps its ``since`` and its request.
    """
    if batch.expires_at is None:
        return (
            "UPDATE jobs SET lease_owner = NULL, lease_since = NULL, lease_heartbeat = NULL, "
            f"lease_expires = NULL, request = NULL, request_reason = NULL WHERE jid = {mark}",
            (jid,),
        )
    same = f"lease_owner = {mark}"
    return (
        f"UPDATE jobs SET request = CASE WHEN {same} THEN request END, "
        f"request_reason = CASE WHEN {same} THEN request_reason END, "
        f"lease_since = CASE WHEN {same} THEN lease_since ELSE {mark} END, "
        f"lease_owner = {mark}, lease_heartbeat = {mark}, lease_expires = {mark} "
        f"WHERE jid = {mark}",
        (
            batch.owner,
            batch.owner,
            batch.owner,
            batch.updated_at,
            batch.owner,
            batch.updated_at,
            batch.expires_at,
            jid,
        ),
    )


def control(action: str | None, reason: str | None) -> Control:
    """A stored control request as the lease keeper takes it."""
    return None if action is None else (action, reason or action)


@attrs.define
class _Watched:
    job: JobState
    flow: Any
    delivered: str | None = None
    lost: bool = False


@attrs.define
class LeaseKeeper:
    """The thread that renews a store's leases and delivers control requests.

    ``heartbeat(job_ids, now, expires_at)`` is the store's hook: it renews
    (when ``expires_at`` is given) and reads the leases of ``job_ids`` held by
    the store's owner, returning each held job's control request; a job
    missing from its answer was lost.
    """

    heartbeat: Callable[[Collection[str], float, float | None], Mapping[str, Control]]
    lease_seconds: float
    heartbeat_seconds: float
    poll_seconds: float
    _watched: dict[str, _Watched] = attrs.field(init=False, factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _wake: threading.Event = attrs.field(init=False, factory=threading.Event)
    _renewed: float = attrs.field(init=False, default=0.0)

    def watch(self, job: JobState, flow: Any) -> None:
        """Keep ``job``'s lease alive and hand its control requests to ``flow``."""
        with self._lock:
            self._watched[job.job_id] = _Watched(job, flow)
            if not self._renewed or len(self._watched) == 1:
                self._renewed = time.time()  # begin just took the lease
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="flowforge-lease", daemon=True
                )
                self._thread.start()

    def unwatch(self, job_id: str) -> None:
        """Stop looking after ``job_id`` (its run ended); the thread ends with the last job."""
        with self._lock:
            self._watched.pop(job_id, None)
            if not self._watched:
                self._wake.set()

    def stop(self) -> None:
        """Wait for the thread to end (the store is closing; no job runs)."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wake.set()
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._watched:
                    self._thread = None
                    return
                watched = dict(self._watched)
            self._tick(watched)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _tick(self, watched: dict[str, _Watched]) -> None:
        now = time.time()
        renew = now - self._renewed >= self.heartbeat_seconds
        try:
            controls = self.heartbeat(
                list(watched), now, now + self.lease_seconds if renew else None
            )
        except Exception as exc:  # a busy or unreachable database: try again next tick
            logger.warning("lease heartbeat failed, retrying: %s", exc)
            return
        if renew:
            self._renewed = now
        for job_id, entry in watched.items():
            if job_id not in controls:
                with self._lock:
                    # A job that ended meanwhile released its lease after it was unwatched.
                    running = self._watched.get(job_id) is entry
                if running:
                    self._lost(entry)
            else:
                self._deliver(entry, controls[job_id])

    def _lost(self, entry: _Watched) -> None:
        if entry.lost:
            return
        entry.lost = True
        logger.error("job %s: its lease was lost; stopping it here", entry.job.job_id)
        self._send(entry, "pause", "lost its lease to another runner")

    def _deliver(self, entry: _Watched, control: Control) -> None:
        if control is None or control[0] == entry.delivered or entry.delivered == "cancel":
            return
        entry.delivered = control[0]
        self._send(entry, *control)

    @staticmethod
    def _send(entry: _Watched, action: str, reason: str) -> None:
        if entry.flow is None:
            logger.warning(
                "job %s: cannot %s it (no flow given to begin)", entry.job.job_id, action
            )
            return
        with contextlib.suppress(JobStateError):  # it ended meanwhile
            getattr(entry.flow, action)(entry.job, reason)
