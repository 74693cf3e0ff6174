"""Live jobs: input handed to a running job, slot capacities, and the job's handle.

A job started with :meth:`Flow.start <flowforge.Flow.start>` runs its
:class:`~flowforge.runtime.scheduler.JobRunner` in a background thread that
its :class:`JobHandle` owns. The runner stays the one owner of the job's
state: other threads never touch the :class:`~flowforge.JobState`. They hand
work to the runner through the job's :class:`Inbox` (items submitted,
requests for a snapshot), which the runner drains between calls; a runner
with nothing to do waits on the inbox's condition while the job is open.

With a store, ``submit`` returns only once the runner has queued the item,
journaled it and made the store commit: an item ``submit`` accepted is never
lost by a crash, and a resumed job delivers it exactly once.

Capacities (:class:`Capacities`) count, per job, the messages waiting for
each slot that has a ``capacity``: in the pending queue, held back by the
runner, or submitted and not yet taken from the inbox. A message leaves the
count when it is delivered to its slot. The runner starts no call of a
routine that feeds a full slot (its messages are held back in order until
the slot has room), and ``submit`` to a full slot waits for room.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import BackpressureTimeout, JobStateError
from ..job_state import JobState, JobStatus, Message

if TYPE_CHECKING:
    from .scheduler import JobRunner


class Submission:
    """One item handed to a running job: where it goes, and whether it was taken."""

    __slots__ = ("data", "error", "key", "routine_id", "slot", "taken")

    def __init__(
        self, routine_id: str, slot: str | None, data: dict[str, Any], key: str | None
    ) -> None:
        self.routine_id = routine_id
        self.slot = slot
        self.data = data
        #: The slot key when the slot has a capacity (its place was reserved).
        self.key = key
        #: Set once the item is in the job (durable, with a store) or refused.
        self.taken = threading.Event()
        self.error: BaseException | None = None

    def settle(self, error: BaseException | None = None) -> None:
        """The runner is done with the item: it is in the job, or ``error`` says why not."""
        self.error = error
        self.taken.set()


class Inbox:
    """What other threads hand a running job; the runner drains it.

    ``ready`` is read without the lock on the runner's hot path: a stale
    False only delays an item to the runner's next look.
    """

    def __init__(self, keep_open: bool) -> None:
        self.keep_open = keep_open
        self.ready = False
        #: No more input will come (``close()``), or the job ended.
        self.closed = False
        #: Why input is refused now, once the job stopped running.
        self.ended: str | None = None
        self._cond = threading.Condition()
        self._items: deque[Submission] = deque()
        self._snapshots: list[concurrent.futures.Future[JobState]] = []
        #: Wakes the runner when it waits elsewhere (on its executor's results).
        self.wake: Callable[[], None] | None = None

    def put(self, item: Submission) -> None:
        """Hand ``item`` to the runner; raises JobStateError once input is closed."""
        with self._cond:
            if self.closed:
                raise self._refusal()
            self._items.append(item)
            self._signal()

    def _refusal(self) -> JobStateError:
        if self.ended is not None:
            why = f"it has stopped ({self.ended})"
            hint = "Start it again with flow.start(job_state=...) to add more input."
        else:
            why = "it was closed (no more input)"
            hint = "Submit before close(), or start another job."
        return JobStateError(
            f"Cannot submit to the job: {why}. {hint}", job_id="", status=self.ended or "closed"
        )

    def request_snapshot(self) -> concurrent.futures.Future[JobState]:
        """A future the runner fills with a copy of the job between two calls."""
        future: concurrent.futures.Future[JobState] = concurrent.futures.Future()
        with self._cond:
            if self.ended is not None:
                return future  # never filled: the caller copies the stopped job itself
            self._snapshots.append(future)
            self._signal()
        return future

    def close(self) -> None:
        """No more input: the job completes when its work is done."""
        with self._cond:
            self.closed = True
            self._signal()

    def notify(self) -> None:
        """Wake a runner waiting for input (a pause, a cancel, a deadline)."""
        with self._cond:
            self._cond.notify_all()

    def _signal(self) -> None:
        self.ready = True
        self._cond.notify_all()
        wake = self.wake
        if wake is not None:
            wake()

    # -- the runner's side -------------------------------------------------------

    def take(self) -> tuple[list[Submission], list[concurrent.futures.Future[JobState]]]:
        """Everything handed in since the last take."""
        with self._cond:
            self.ready = False
            items, self._items = list(self._items), deque()
            snapshots, self._snapshots = self._snapshots, []
        return items, snapshots

    def wait_for_input(self, halted: Callable[[], bool]) -> bool:
        """Wait until something is handed in (True) or no more can come (False).

        A job that is not open takes no more once it is out of work.
        """
        with self._cond:
            while not self.ready:
                if self.closed or not self.keep_open or halted():
                    self.closed = True
                    return False
                self._cond.wait()
            return True

    def end(self, status: str) -> list[Submission]:
        """The job stopped: refuse input from now on; what was handed in and not taken."""
        with self._cond:
            self.closed = True
            self.ended = status
            self.ready = False
            items, self._items = list(self._items), deque()
            snapshots, self._snapshots = self._snapshots, []
        for future in snapshots:
            future.cancel()
        return items


class Capacities:
    """Per job, how many messages wait for each slot that has a capacity.

    Changed by the runner as messages are queued and delivered, and by
    ``submit`` (which reserves a place before handing an item in), so every
    change holds the lock; flows without capacities never make one.
    """

    def __init__(self, capacities: Mapping[str, int], pending: Iterable[Message]) -> None:
        self.capacities = dict(capacities)
        self.counts = dict.fromkeys(capacities, 0)
        #: Set (by the runner's thread) when a full slot got room.
        self.freed = False
        self._cond = threading.Condition()
        self._waiters = 0
        self._stopped = False
        for msg in pending:
            self.added(f"{msg.routine_id}.{msg.slot}")

    def added(self, key: str) -> None:
        """A message for slot ``key`` was queued (keys without a capacity are ignored)."""
        if key in self.counts:
            with self._cond:
                self.counts[key] += 1

    def delivered(self, key: str) -> None:
        """A message left slot ``key``'s queue for its handler."""
        with self._cond:
            count = self.counts[key]
            self.counts[key] = count - 1
            if count >= self.capacities[key]:
                self.freed = True
                if self._waiters:
                    self._cond.notify_all()

    def full(self, keys: Iterable[str]) -> bool:
        """True when any of ``keys`` has no room."""
        counts, capacities = self.counts, self.capacities
        return any(counts[k] >= capacities[k] for k in keys)

    def reserve(self, key: str, timeout: float | None) -> bool:
        """Take a place in slot ``key`` for a submitted item; False after ``timeout``."""
        with self._cond:
            self._waiters += 1
            try:
                room = self._cond.wait_for(
                    lambda: self._stopped or self.counts[key] < self.capacities[key], timeout
                )
            finally:
                self._waiters -= 1
            if room and not self._stopped:
                self.counts[key] += 1
            return bool(room)

    def unreserve(self, key: str) -> None:
        """A reserved place was not used (the item was refused)."""
        with self._cond:
            self.counts[key] -= 1
            self._cond.notify_all()

    def stop(self) -> None:
        """The job stopped: wake every submit waiting for room."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class JobHandle:
    """A job running in the background (see :meth:`Flow.start <flowforge.Flow.start>`).

    The handle owns the thread the job's runner runs in. Every method may be
    called from any thread. As a context manager it closes the job and waits
    for it on exit, and cancels it if the block raised.
    """

    def __init__(
        self,
        runner: JobRunner,
        inbox: Inbox,
        run: Callable[[], None],
        entry: tuple[str | None, str | None],
        durable: bool,
    ) -> None:
        self._runner = runner
        self._inbox = inbox
        self._entry = entry
        self._durable = durable
        self._error: BaseException | None = None

        def target() -> None:
            try:
                run()
            except BaseException as exc:  # given to whoever waits for the job
                self._error = exc

        self._thread = threading.Thread(
            target=target, name=f"flowforge-job-{runner.job.job_id[:8]}", daemon=True
        )
        self._thread.start()

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._runner.job.job_id

    @property
    def status(self) -> JobStatus:
        """The job's status now (``running`` until it stops)."""
        if self._thread.is_alive():
            return JobStatus.RUNNING
        return self._runner.job.status

    @property
    def job_state(self) -> JobState:
        """The job's JobState itself; read it once the job has stopped (:meth:`done`)."""
        return self._runner.job

    def done(self) -> bool:
        """True once the job stopped running (completed, failed, cancelled or paused)."""
        return not self._thread.is_alive()

    def snapshot(self) -> JobState:
        """A consistent copy of the JobState, taken by the runner between two calls."""
        if self.done():
            return copy.deepcopy(self._runner.job)
        future = self._inbox.request_snapshot()
        while True:
            try:
                return future.result(timeout=0.05)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                if self.done():
                    return copy.deepcopy(self._runner.job)

    def submit(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        routine: str | None = None,
        slot: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Hand one item to the job: ``params`` delivered to ``routine``'s ``slot``.

        By default the item goes where the job started. While the slot is
        full (its ``capacity``), this blocks, or raises
        :class:`~flowforge.errors.BackpressureTimeout` after ``timeout``
        seconds. With a store, it returns once the item is stored.

        Raises:
            JobStateError: The job is closed, finished or paused (the item
                was not taken).
            UnknownNameError: No such routine or slot.
        """
        rid, slot_name = self._target(routine, slot)
        data = _params(params)
        key = f"{rid}.{slot_name}"
        counts = self._runner.capacities
        if counts is None or key not in counts.capacities:
            key_or_none = None
        else:
            key_or_none = key
            self._reserve(counts, rid, slot_name, key, timeout)
        item = Submission(rid, slot_name, data, key_or_none)
        try:
            self._inbox.put(item)
        except JobStateError as exc:
            if counts is not None and key_or_none is not None:
                counts.unreserve(key)
            raise self._refused(exc) from None
        if self._durable:
            item.taken.wait()
            if item.error is not None:
                raise item.error

    def _reserve(
        self, counts: Capacities, rid: str, slot: str | None, key: str, timeout: float | None
    ) -> None:
        if self._inbox.closed:
            raise self._refused(self._inbox._refusal())
        if not counts.reserve(key, timeout):
            capacity = counts.capacities[key]
            raise BackpressureTimeout(
                f"Slot '{slot}' of routine '{rid}' stayed full ({capacity} messages waiting, "
                f"its capacity) for {timeout} s, so the item was not submitted. Submit again "
                "later, raise the timeout, or raise the slot's capacity.",
                routine_id=rid,
                slot=slot or "",
                capacity=capacity,
                timeout=timeout or 0.0,
            )
        if self._inbox.closed:
            counts.unreserve(key)
            raise self._refused(self._inbox._refusal())

    def _refused(self, exc: JobStateError) -> JobStateError:
        job = self._runner.job
        status = self._inbox.ended or "closed"
        return JobStateError(
            str(exc).replace("the job", f"job {job.job_id}", 1), job_id=job.job_id, status=status
        )

    def _target(self, routine: str | None, slot: str | None) -> tuple[str, str | None]:
        rid, default_slot = self._entry
        if routine is None and rid is None:
            raise JobStateError(
                f"Job {self.job_id} has no entry routine (its flow starts at its tasks), so "
                "submit() needs one: job.submit(params, routine='...').",
                job_id=self.job_id,
                status=str(self.status),
            )
        if (routine is None or routine == rid) and slot is None:
            return str(rid), default_slot
        target = str(rid) if routine is None else routine
        return target, self._runner.entry_slot(target, slot)

    def close(self) -> None:
        """No more input: the job completes once its queued work is done."""
        self._inbox.close()

    def pause(self, reason: str | None = None) -> None:
        """Pause the job: running calls finish, the rest stays in its JobState."""
        self._runner.request_pause(reason)

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the job: no new calls start; it ends ``cancelled``."""
        self._runner.request_cancel(reason)

    def wait(self, timeout: float | None = None) -> JobState:
        """The JobState once the job stops running, or a snapshot after ``timeout``.

        Raises what stopped the job from starting at all (for example a store
        that refused it).
        """
        self._thread.join(timeout)
        if self.done():
            if self._error is not None:
                raise self._error
            return self._runner.job
        return self.snapshot()

    async def wait_async(self) -> JobState:
        """Await the job's end without blocking the event loop; returns its JobState."""
        return await asyncio.to_thread(self.wait)

    def __await__(self) -> Generator[Any, None, JobState]:
        return self.wait_async().__await__()

    def __enter__(self) -> JobHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.cancel(f"the block raised {exc_type.__name__}")
        else:
            self.close()
        self.wait()

    def __repr__(self) -> str:
        return f"<JobHandle {self.job_id}: {self.status}>"


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(
            f"submit() takes a mapping of parameter names to values, got "
            f"{type(params).__name__}. Write job.submit({{'item': ...}})."
        )
    return dict(params)
