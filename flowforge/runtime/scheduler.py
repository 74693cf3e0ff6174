"""The scheduler: the one runner of a job, which changes it only through its JobState.

A :class:`JobRunner` takes messages from the job's pending queue, merges them
into their slots, and has each resulting activation called through
:func:`~flowforge.runtime.activation.invoke` -- on its own thread for the
sequential executor, by the executor's session otherwise -- then applies each
:class:`~flowforge.runtime.activation.Outcome` when it comes back. Applying is
done by the :class:`~flowforge.JobState` methods, so the job owns its changes:
``commit_call`` (a successful call in one go: the tracker's count, the
routine's :class:`~flowforge.job_state.RoutineRun` and the job's own counters
as ``record_success`` does, and its emits as ``record_emits`` does: history,
event flow and the messages queued), ``record_failure`` /
``record_skipped_call`` / ``fail`` (the
error strategy's outcome), ``set_slot_state`` and ``end_run``. Handlers never call each
other, so chains of any length and long loops use no stack.

With a store (a :class:`Journal`), each committed step is journaled. What a
call emitted and its counters are offered to the store (``Journal.unstorable``)
before the step changes the job: data the store cannot keep fails the call
with :class:`~flowforge.errors.UnstorableDataError`, and the job stops
``failed`` at that step whatever the error strategy. Any other error of the
store while the job runs also stops it ``failed``. However the run stops, the
job's status is final (never ``running``) before the store is told
(``Journal.end``), and ``tracker.elapsed`` counts the run's time.

When the queue runs dry with nothing running, joins still waiting for
sources are resolved (see :meth:`JobRunner._resolve_joins`), and the job
ends -- unless it is a live job (:mod:`flowforge.runtime.live`) that is open:
then the runner waits on its inbox for submitted input until it is closed.
Input handed in from other threads is taken between two calls; with a store
it is journaled and committed before ``submit`` is told it was taken.

Slots with a ``capacity`` are counted per job (:class:`Capacities`): a
message counts from when it is queued until it is delivered to its slot. A
message of a routine that feeds a full slot is held back, in order, until
the slot has room. Flows without capacities pay one falsy check per message.

A ``deadline`` starts a timer; when it fires, the job stops at once: calls
still running are dropped as for a timeout (their messages stay pending),
and the job ends ``failed`` with a ``DeadlineExceededError``.
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._activation import JobControl
from ..error_handler import ErrorStrategy
from ..errors import (
    ActivationLimitError,
    DeadlineExceededError,
    DefinitionError,
    JobStateError,
    UnstorableDataError,
    quoted,
)
from ..job_state import ErrorInfo, JobState, JobStatus, Message, RoutineRun
from ..routine import lookup
from ..signals import (
    event_emitted,
    job_finished,
    job_started,
    retry_scheduled,
    routine_failed,
    routine_finished,
    routine_started,
    send,
)
from ..slot import join_partial
from . import tasks as task_hooks
from ._async import AsyncRunner
from .activation import (
    NO_STATE,
    Activation,
    CallContext,
    CancelFlag,
    Outcome,
    Running,
    failed,
    format_exception,
    invoke,
)
from .executors import Executor, Session, WorkerLost
from .live import Capacities, Inbox, Submission
from .plan import Plan
from .remote import ShippingError

if TYPE_CHECKING:
    from ..slot import Slot

logger = logging.getLogger(__name__)
#: How often a call whose worker died is sent again before it counts as failed.
MAX_RESENDS = 3
#: How often a wait for an abandoned call looks for pause and cancel requests.
_POLL = 0.05


class _Unsent:
    """Stands for the future of a call that failed before it could be sent."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


#: What the pooled loop waits for: a finished call and its future; ``(None,
#: routine_id)`` when an abandoned call of that routine really returned; or
#: ``(None, None)`` to look at pause and cancel requests.
Done = queue.SimpleQueue[tuple[Activation | None, Any]]


class Journal(Protocol):
    """Receives every committed step of a job (a store implements it)."""

    def begin(self, job: JobState, flow: Any = None) -> None:
        """The job starts or resumes; record it whole (and ``flow``'s definition)."""

    def unstorable(
        self,
        job: JobState,
        routine_id: str,
        emits: Sequence[tuple[str, dict[str, Any]]],
        stats: dict[str, Any] | None,
    ) -> UnstorableDataError | None:
        """Why a call of ``routine_id`` about to be committed with these emits and
        counters cannot be recorded, naming the routine and event; ``None`` if
        it can. The call then fails and the job stops at it."""

    def step(
        self,
        job: JobState,
        consumed: Sequence[Message],
        produced: Sequence[Message],
        routine_id: str | None,
        slot_key: str | None,
    ) -> None:
        """One step committed: messages consumed and produced, state touched."""

    def end(self, job: JobState) -> None:
        """The job stopped running (any status); make everything durable."""


def _send_retry(
    sender: Any, job_id: str, act: Activation, attempt: int, delay: float, error: BaseException
) -> None:
    send(
        retry_scheduled,
        sender,
        job_id=job_id,
        routine_id=act.routine_id,
        slot=act.slot_name,
        activation_id=act.activation_id(job_id),
        attempt=attempt,
        delay=delay,
        error=error,
    )


_new_tuple = tuple.__new__
# Looking up an enum's member by name costs about 80 ns; every job needs these.
_RUNNING, _COMPLETED = JobStatus.RUNNING, JobStatus.COMPLETED


def slot_key(routine_id: str, slot_name: str) -> str:
    """How a slot's merge state is keyed in ``JobState.slot_states``."""
    return f"{routine_id}.{slot_name}"


class JobRunner:
    """Run one job of a flow to its end, a pause, or a cancel."""

    def __init__(
        self,
        sender: Any,
        plan: Plan,
        job: JobState,
        executor: Executor,
        async_runner: AsyncRunner,
        journal: Journal | None = None,
        inbox: Inbox | None = None,
        deadline: float | None = None,
    ) -> None:
        self.sender = sender
        self.plan = plan
        self.job = job
        self.executor = executor
        self.async_runner = async_runner
        self.journal = journal
        self.cancelled = CancelFlag()
        #: All a handler may ask of its job; all an executor knows of it.
        self.control = JobControl(self)
        on_retry = functools.partial(_send_retry, sender, job.job_id)
        # CallContext's own __new__ is a Python call; every job makes one.
        self.call = _new_tuple(
            CallContext, (job.job_id, self.cancelled, on_retry, async_runner, self.control)
        )
        self._halt = False
        self._pause_reason: str | None = None
        self._cancel_reason: str | None = None
        self._running: dict[str, int] = {}
        self._routines = plan.routines
        self._sites = plan.sites
        self._waiting: dict[str, deque[Message]] = {}
        self._busy_slots: set[str] = set()
        self._in_flight: dict[int, Message] = {}
        self._resent: dict[int, int] = {}
        #: Timed-out calls still running in their threads, per routine (inline runs).
        self._abandoned: dict[str, list[Running]] = {}
        self._done: Done | None = None
        #: Live jobs: input from other threads, and slot capacities (None: none).
        self._inbox = inbox
        self.deadline = deadline
        self._expired = False
        self._feeds = plan.feeds
        self.capacities: Capacities | None = (
            Capacities(plan.capacities, job.pending) if plan.capacities else None
        )
        self._held: dict[str, deque[Message]] = {}
        self._force = False
        if inbox is not None:
            inbox.wake = self._wake

    # -- control from other threads or handlers -----------------------------

    def request_pause(self, reason: str | None) -> None:
        """Stop taking new work; running calls finish; the job ends paused."""
        self._pause_reason = reason or "paused"
        self._halt = True
        self._wake()

    def request_cancel(self, reason: str | None) -> None:
        """Stop taking new work and end the job cancelled."""
        self._cancel_reason = reason or "cancelled"
        self._halt = True
        self.cancelled.set()
        self._wake()

    @property
    def stopping(self) -> bool:
        """True once the job was asked to pause or cancel (or must stop)."""
        return self._halt

    def _expire(self) -> None:
        """The job's deadline passed (a timer thread): stop at once, failed."""
        self._expired = True
        self._halt = True
        self.cancelled.set()
        self._wake()

    def _wake(self) -> None:
        done = self._done
        if done is not None:
            done.put((None, None))
        if self._inbox is not None:
            self._inbox.notify()

    def entry_slot(self, routine_id: str, slot: str | None) -> str | None:
        """Check that ``routine_id`` has ``slot`` (its only slot when None); the slot."""
        routine = lookup("routine", "submit()", routine_id, self._routines)
        if slot is not None:
            lookup("slot", f"submit(): routine '{routine_id}'", slot, routine.slots)
            return slot
        if len(routine._slots) != 1:
            raise DefinitionError(
                f"submit(): routine '{routine_id}' has {len(routine._slots)} slots "
                f"({quoted(routine.slots)}); name the one to deliver to with slot=..."
            )
        only: str = next(iter(routine._slots))
        return only

    def held_count(self) -> int:
        """Messages taken off the pending queue and held back per routine until it is
        free, or until the slots it feeds have room."""
        held = sum(len(h) for h in list(self._held.values()))
        return held + sum(len(w) for w in list(self._waiting.values()))

    # -- running ---------------------------------------------------------------

    def run(self) -> JobState:
        """Run until no work is left (or pause, cancel, STOP); returns the JobState."""
        job = self.job
        chains = self.plan.chains
        # Without middleware, executors written before it (start(routines)) still work.
        session = (
            self.executor.start(self.plan.routines, chains)
            if chains
            else self.executor.start(self.plan.routines)
        )
        before = (job.status, job.reason, job.started_at)
        job.status = _RUNNING
        job.reason = None
        job.started_at = job.started_at or time.time()
        if self.journal is not None:
            try:
                self.journal.begin(job, self.sender)
            except BaseException:  # the store refused the job: it never started
                job.status, job.reason, job.started_at = before
                if session is not None:
                    session.close()
                raise
        job.tracker.start_run()
        if job_started.receivers:
            send(job_started, self.sender, job_state=job)
        timer = None if self.deadline is None else self._start_deadline()
        try:
            if session is None:
                self._run_inline()
            else:
                self._run_pooled(session)
        finally:
            if timer is not None:
                timer.cancel()
            self._finish()
        return job

    def _start_deadline(self) -> threading.Timer:
        timer = threading.Timer(self.deadline or 0.0, self._expire)
        timer.daemon = True
        timer.start()
        return timer

    def _run_inline(self) -> None:
        job = self.job
        pending, runs, sites, call = job.pending, job.runs, self._sites, self.call
        prepare, complete, commit = self._prepare, self._complete, job.commit_call
        new_object = object.__new__
        inbox, feeds, timed = self._inbox, self._feeds, self.deadline is not None
        # The lane: calls that need nothing around them but the call itself skip
        # _prepare and _complete (the same steps, folded in below).
        lanes = self.journal is None and inbox is None and not feeds and not timed
        while True:
            while pending and not self._halt:
                if inbox is not None and inbox.ready:
                    self._take_input()
                if feeds and self._gated():
                    continue
                msg = pending.popleft()
                rid = msg.routine_id
                if self._abandoned and not self._await_abandoned(rid):
                    pending.appendleft(msg)
                    break
                site = sites[rid]
                slot = site.lanes.get(msg.slot) if lanes else None
                if (
                    slot is None
                    or not slot.plain  # a slot defined since the plan was made
                    or routine_started.receivers
                    or routine_finished.receivers
                ):
                    act = prepare(msg)
                    if act is None:
                        continue
                    base = None
                else:
                    base = runs[rid].stats
                    # Activation(site.routine, rid, slot, msg, msg.data, NO_STATE, None,
                    # base, site.handler, call) without the class call, which costs
                    # more than the stores (tests/test_invoke.py keeps the two equal).
                    act = new_object(Activation)
                    act.routine = site.routine
                    act.routine_id = rid
                    act.slot = slot
                    act.message = msg
                    act.data = msg.data
                    act.new_state = NO_STATE
                    act.slot_key = None
                    act.base_stats = base
                    act.error_handler = site.handler
                    act.call = call
                    act.chain = None
                    act.attempt = 0
                    act.stats = None
                    act.emits = []
                try:
                    outcome = invoke(act)
                except BaseException:  # KeyboardInterrupt, SystemExit: the message stays
                    pending.appendleft(msg)
                    raise
                if timed and self._expired:  # past the deadline: dropped as for a timeout
                    pending.appendleft(msg)
                    return
                durations, emits = outcome.durations, outcome.emits
                if base is not None and outcome.ok and len(durations) == 1:
                    if not (emits and event_emitted.receivers):
                        commit(rid, durations[0], base, outcome.stats, emits, site.routes)
                        continue
                elif outcome.running is not None:
                    self._abandoned.setdefault(rid, []).append(outcome.running)
                complete(act, outcome)
            if self._halt or not self._settled_more():
                return

    def _await_abandoned(self, rid: str) -> bool:
        """Wait while timed-out calls of ``rid`` fill its concurrency; False if halted."""
        running = self._abandoned.get(rid)
        limit = self._routines[rid]._policy.max_concurrency
        while running:
            running[:] = [r for r in running if not r.done()]
            if len(running) < limit:
                break
            if self._halt:
                return False
            concurrent.futures.wait(running, _POLL, concurrent.futures.FIRST_COMPLETED)
        if not running:
            self._abandoned.pop(rid, None)
        return True

    def _run_pooled(self, session: Session) -> None:
        done: Done = queue.SimpleQueue()
        self._done = done
        try:
            self._pump(session, done)
        finally:
            self._done = None
            session.close()

    def _pump(self, session: Session, done: Done) -> None:
        pending = self.job.pending
        inbox, feeds = self._inbox, self._feeds
        while True:
            if feeds and self._held and self.capacities.freed:  # type: ignore[union-attr]
                self._release_held()
            while pending and not self._halt:
                if inbox is not None and inbox.ready:
                    self._take_input()
                if feeds and self._gated():
                    continue
                msg = pending.popleft()
                if self._must_wait(msg):
                    self._waiting.setdefault(msg.routine_id, deque()).append(msg)
                    continue
                act = self._prepare(msg)
                if act is not None:
                    self._dispatch(session, act, done)
            # With nothing in flight, messages still waiting wait for abandoned calls.
            if not self._in_flight and (self._halt or not self._any_waiting()):
                self._release_all_waiting()
                if self._halt or (not pending and not self._settled_more()):
                    return
                continue
            session.flush()
            act, future = done.get()
            if act is None:
                if self._expired:
                    return
                if inbox is not None and inbox.ready:
                    self._take_input()
                if future is not None:
                    self._release_abandoned(session, future, done)
                continue
            try:
                outcome = future.outcome if isinstance(future, _Unsent) else session.outcome(future)
            except WorkerLost as lost:
                if self._resend(session, act, done, lost):
                    continue
                outcome = failed(lost)
            released = self._settle(act, outcome, done)
            self._complete(act, outcome)
            if released is not None:
                self._start_released(session, released, done)

    def _any_waiting(self) -> bool:
        return any(self._waiting.values())

    def _release_abandoned(self, session: Session, rid: str, done: Done) -> None:
        self._running[rid] -= 1
        waiting = self._waiting.get(rid)
        if waiting:
            self._start_released(session, waiting.popleft(), done)

    def _must_wait(self, msg: Message, queued_ok: bool = False) -> bool:
        rid = msg.routine_id
        if not queued_ok and self._waiting.get(rid):
            return True
        routine = self._routines[rid]
        if self._running.get(rid, 0) >= routine._policy.max_concurrency:
            return True
        slot = None if msg.slot is None else routine._slots[msg.slot]
        return (
            slot is not None
            and slot.merge is not None
            and slot_key(rid, slot.name) in self._busy_slots
        )

    def _dispatch(self, session: Session, act: Activation, done: Done) -> None:
        self._running[act.routine_id] = self._running.get(act.routine_id, 0) + 1
        if act.slot_key is not None:
            self._busy_slots.add(act.slot_key)
        self._in_flight[id(act)] = act.message
        try:
            future = session.submit(act)
        except ShippingError as exc:
            done.put((act, _Unsent(failed(exc))))
            return
        future.add_done_callback(lambda f: done.put((act, f)))

    def _resend(
        self,
        session: Session,
        act: Activation,
        done: Done,
        lost: WorkerLost,
    ) -> bool:
        """Send a call whose worker died again; False once it has been sent too often."""
        sent = self._resent.get(id(act), 0)
        if sent >= MAX_RESENDS:
            return False
        self._resent[id(act)] = sent + 1
        logger.warning("Worker lost during %s (%s); sending the call again", act.routine_id, lost)
        future = session.submit(act)
        future.add_done_callback(lambda f: done.put((act, f)))
        return True

    def _settle(self, act: Activation, outcome: Outcome, done: Done) -> Message | None:
        """Free the call's place; the routine's next waiting message, if any.

        A call abandoned after its timeout keeps its place in the routine's
        concurrency until it really returns (then ``done`` hears of it).
        """
        self._resent.pop(id(act), None)
        rid = act.routine_id
        running = outcome.running
        if running is None:
            self._running[rid] -= 1
        else:
            running.add_done_callback(lambda _: done.put((None, rid)))
        if act.slot_key is not None:
            self._busy_slots.discard(act.slot_key)
        del self._in_flight[id(act)]
        waiting = self._waiting.get(rid)
        return waiting.popleft() if waiting and running is None else None

    def _start_released(self, session: Session, msg: Message, done: Done) -> None:
        # The oldest waiting messages of the routine go next, ahead of newer ones,
        # until one of them is dispatched (a join delivery may only be buffered).
        waiting = self._waiting[msg.routine_id]
        while True:
            if self._halt or self._must_wait(msg, queued_ok=True):
                waiting.appendleft(msg)
                return
            act = self._prepare(msg)
            if act is not None:
                self._dispatch(session, act, done)
                return
            if not waiting:
                return
            msg = waiting.popleft()

    def _release_all_waiting(self) -> None:
        for waiting in self._waiting.values():
            self.job.pending.extendleft(reversed(waiting))
            waiting.clear()

    # -- live jobs: capacities and input -----------------------------------------

    def _gated(self) -> bool:
        """Hold back the next message if its routine feeds a full slot; True if held."""
        counts = self.capacities
        assert counts is not None
        if counts.freed and self._held:
            self._release_held()
        msg = self.job.pending[0]
        rid = msg.routine_id
        keys = self._feeds.get(rid)
        if keys is None:
            return False
        held = self._held.get(rid)
        if self._force:
            self._force = False
            return False
        if held or counts.full(keys):
            self._held.setdefault(rid, deque()).append(self.job.pending.popleft())
            return True
        return False

    def _release_held(self, everything: bool = False) -> None:
        """Put held-back messages of routines whose fed slots have room back in front."""
        counts = self.capacities
        if counts is None or not self._held:
            return
        counts.freed = False
        pending = self.job.pending
        for rid in list(self._held):
            if everything or not counts.full(self._feeds[rid]):
                pending.extendleft(reversed(self._held.pop(rid)))

    def _settled_more(self) -> bool:
        """At quiescence: True if settling joins or :meth:`_more_work` gave the job work."""
        if self.plan.joins and self._resolve_joins():
            return True
        if not self._held and self._inbox is None:  # what _more_work finds, without the call
            return False
        return self._more_work()

    def _more_work(self) -> bool:
        """At quiescence: held-back messages to force on, or input to wait for."""
        if self._held:
            # Nothing runs and nothing else is pending: the full slots cannot drain
            # (a loop of capacities), so one held message goes on regardless.
            self._release_held(everything=True)
            self._force = True
            return True
        inbox = self._inbox
        if inbox is None:
            return False
        while inbox.wait_for_input(lambda: self._halt):
            self._take_input()
            if self.job.pending:
                return True
        if not self._halt:
            self.job.open = False
        return False

    def _take_input(self) -> None:
        """Queue what was submitted (journaled and committed first with a store)."""
        assert self._inbox is not None
        items, snapshots = self._inbox.take()
        if items:
            self._accept(items)
        for future in snapshots:
            future.set_result(copy.deepcopy(self.job))

    def _accept(self, items: list[Submission]) -> None:
        job = self.job
        produced = [job.queue(item.routine_id, item.slot, item.data) for item in items]
        error = None
        if self.journal is not None:
            self._journal_step((), produced, None, None)
            error = self._flush()
        for item in items:
            item.settle(error)

    def _flush(self) -> JobStateError | None:
        """Make the store commit now; the error to give submitters if it could not."""
        flush = getattr(self.journal, "flush", None)
        if flush is not None and self.job.error is None:
            try:
                flush(self.job)
            except Exception as exc:
                self._stop_job(self._store_failure(exc, None, "submitted input"))
        if self.job.error is None:
            return None
        return JobStateError(
            f"Job {self.job.job_id}: the store could not record the submitted item, so the "
            f"job stops: {self.job.error.message}",
            job_id=self.job.job_id,
            status="failed",
        )

    def _count_emits(self, routine: Any, emits: list[tuple[str, Any]]) -> None:
        counts = self.capacities
        assert counts is not None
        events = routine._events
        for event_name, _ in emits:
            for route in events[event_name]._connections:
                counts.added(f"{route.target_id}.{route.slot_name}")

    def _end_input(self) -> list[Submission]:
        """The job stops: input still in the inbox joins the job (unless cancelled)."""
        inbox = self._inbox
        if self.capacities is not None:
            self.capacities.stop()
        if inbox is None:
            return []
        items = inbox.end(str(self._final_status()[0]))
        if self._cancel_reason is not None and not self._expired:
            refused = JobStateError(
                f"Job {self.job.job_id} was cancelled before the item was taken.",
                job_id=self.job.job_id,
                status="cancelled",
            )
            for item in items:
                item.settle(refused)
            return []
        for item in items:
            self.job.queue(item.routine_id, item.slot, item.data)
        return items

    def _deadline_failure(self) -> ErrorInfo:
        job_id = self.job.job_id
        error = DeadlineExceededError(
            f"Job {job_id} ran past its deadline of {self.deadline} s, so it stops failed; "
            "calls still running were dropped and their messages stay pending. Resume it "
            "with a later deadline, or start it with a longer one.",
            job_id=job_id,
            deadline=self.deadline or 0.0,
        )
        return ErrorInfo("", None, type(error).__name__, str(error), "", "stop", 0)

    # -- one activation: prepare, then complete --------------------------------

    def _prepare(self, msg: Message) -> Activation | None:
        """Merge ``msg`` into its slot; the activation to run, or None if buffered."""
        rid = msg.routine_id
        site = self._sites[rid]
        slot = None if msg.slot is None else site.slots[msg.slot]
        state = self.job.runs[rid]
        counts = self.capacities
        if counts is not None and slot is not None:
            counted = slot_key(rid, slot.name)
            if counted in counts.counts:
                counts.delivered(counted)
        cap = site.cap
        if cap is not None and state.activations + self._running.get(rid, 0) >= cap:
            self._fail_on_cap(msg, rid, cap)
            return None
        data, new_state, key = msg.data, NO_STATE, None
        if slot is not None and slot.merge is not None:
            name = slot.name
            key = site.keys.get(name) or slot_key(rid, name)
            sources = site.sources.get(name)
            try:
                fire, new_state = slot.merge(
                    self.job.slot_states.get(key),
                    msg.data,
                    msg.source,
                    slot.source_keys() if sources is None else sources,
                )
            except Exception as exc:  # a merge function failed: the routine's call failed
                self._fail_before_call(site.routine, rid, slot, msg, state, exc)
                return None
            if fire is None:
                self._commit_slot(key, new_state)
                self._journal_step((msg,), (), None, key)
                return None
            data = fire
        if site.task:
            task_hooks.started(self.job, rid)
        act = Activation(
            site.routine,
            rid,
            slot,
            msg,
            data,
            new_state,
            key,
            state.stats,
            site.handler,
            self.call,
            site.chain,
        )
        if routine_started.receivers:
            send(
                routine_started,
                self.sender,
                job_state=self.job,
                routine_id=rid,
                slot=act.slot_name,
                activation_id=act.activation_id(self.job.job_id),
            )
        return act

    def _complete(self, act: Activation, outcome: Outcome) -> None:
        """Apply a finished call's outcome: record it, then commit or fail it."""
        rid = act.routine_id
        job = self.job
        site = self._sites[rid]
        journal = self.journal
        if not site.plain or journal is not None or not outcome.ok:
            outcome = self._checked(act, outcome, site.task)
        ok, durations, emits = outcome.ok, outcome.durations, outcome.emits
        stats, retries = outcome.stats, outcome.retries
        if len(durations) > 1 or retries:
            self._record_retries(act, outcome)
        if not ok:
            job.tracker.record_call(rid, False, durations[-1])
            self._fail(act, outcome)
            return
        key = act.slot_key
        if key is not None:
            self._commit_slot(key, act.new_state)
        produced: list[Message] | None = None if journal is None else []
        if emits and event_emitted.receivers:
            job.commit_call(rid, durations[-1], act.base_stats, stats, (), site.routes)
            self._signal_emits(act.routine, rid, emits, produced)
        else:
            job.commit_call(rid, durations[-1], act.base_stats, stats, emits, site.routes, produced)
        if emits and self._feeds and rid in self._feeds:
            self._count_emits(act.routine, emits)
        if journal is not None:
            self._journal_step((act.message,), produced or (), rid, key)
        if site.task:
            task_hooks.after_commit(self, rid)
        if routine_finished.receivers:
            self._send_finished(rid, act.slot_name, act.message, durations[-1])

    def _checked(self, act: Activation, outcome: Outcome, task: bool) -> Outcome:
        """``outcome`` once the store and the task hooks have seen it."""
        if outcome.ok and self.journal is not None:
            outcome = self._storable(act, outcome)
        if task:
            outcome = task_hooks.before_commit(self.job, act, outcome)
        return outcome

    def _record_retries(self, act: Activation, outcome: Outcome) -> None:
        """Record the failed attempts before the last; signal retries made elsewhere."""
        rid = act.routine_id
        for seconds in outcome.durations[:-1]:
            self.job.tracker.record_call(rid, False, seconds)
        for attempt, delay, error in outcome.retries:  # made in another process
            send(
                retry_scheduled,
                self.sender,
                job_id=self.job.job_id,
                routine_id=rid,
                slot=act.slot_name,
                activation_id=act.activation_id(self.job.job_id),
                attempt=attempt,
                delay=delay,
                error=error,
            )

    def _send_finished(self, rid: str, slot: str | None, msg: Message, seconds: float) -> None:
        send(
            routine_finished,
            self.sender,
            job_state=self.job,
            routine_id=rid,
            slot=slot,
            activation_id=f"{self.job.job_id}:{msg.seq}",
            duration=seconds,
        )

    def _fail_before_call(
        self,
        routine: Any,
        rid: str,
        slot: Slot,
        msg: Message,
        state: RoutineRun,
        error: Exception,
        seconds: float = 0.0,
    ) -> None:
        act = Activation(
            routine,
            rid,
            slot,
            msg,
            msg.data,
            NO_STATE,
            None,
            state.stats,
            self.plan.handlers[rid],
            self.call,
        )
        self._complete(act, failed(error, [seconds]))

    # -- committing a step -------------------------------------------------------

    def _storable(self, act: Activation, outcome: Outcome) -> Outcome:
        """``outcome``, or a failed one if the store cannot keep what the call produced."""
        assert self.journal is not None
        refused = self.journal.unstorable(self.job, act.routine_id, outcome.emits, outcome.stats)
        if refused is None:
            return outcome
        if act.routine_id in self.plan.tasks:
            refused = task_hooks.unstorable_result(act.routine_id, outcome.emits, refused)
        return failed(refused, outcome.durations)

    def _signal_emits(
        self, routine: Any, rid: str, emits: list[tuple[str, Any]], produced: list[Message] | None
    ) -> None:
        """Record each emit, then tell ``event_emitted``'s receivers of it."""
        job = self.job
        now = time.time()
        events = routine._events
        for event_name, data in emits:
            job.record_emit(rid, event_name, data, events[event_name]._connections, now, produced)
            send(
                event_emitted,
                self.sender,
                job_state=job,
                routine_id=rid,
                event=event_name,
                data=data,
            )

    def _commit_slot(self, key: str, new_state: Any) -> None:
        self.job.set_slot_state(key, new_state)

    # -- failures ----------------------------------------------------------------

    def _fail(self, act: Activation, outcome: Outcome) -> None:
        rid = act.routine_id
        error = outcome.error
        assert error is not None
        strategy = act.error_handler.final_strategy(error)
        if self.cancelled.is_set() or isinstance(error, UnstorableDataError):
            strategy = ErrorStrategy.STOP  # kept for the record, never retried or passed over
        info = ErrorInfo(
            rid,
            act.slot_name,
            type(error).__name__,
            str(error),
            outcome.traceback,
            str(strategy),
            len(outcome.durations),
            act.activation_id(self.job.job_id),
        )
        self.job.record_failure(info)
        if strategy is ErrorStrategy.STOP:
            self.job.requeue(act.message)
            if not self.cancelled.is_set():
                self._stop_job(info)
            self._journal_step((), (), rid, None)
        else:
            self._consume_failed(act, strategy, None)
        if rid in self.plan.tasks:
            task_hooks.after_failure(self, rid, strategy, info)
        send(
            routine_failed,
            self.sender,
            job_state=self.job,
            routine_id=rid,
            slot=act.slot_name,
            activation_id=act.activation_id(self.job.job_id),
            error=error,
            strategy=strategy,
        )

    def _consume_failed(self, act: Activation, strategy: ErrorStrategy, state: Any) -> None:
        # The failure itself was counted by JobState.record_failure; the message is used up.
        if act.slot_key is not None:
            self._commit_slot(act.slot_key, act.new_state)
        self._journal_step((act.message,), (), act.routine_id, act.slot_key)

    def _fail_on_cap(self, msg: Message, rid: str, cap: int) -> None:
        error = ActivationLimitError(
            f"Routine '{rid}' was activated {cap} times in this job, its cap; the flow is "
            "probably looping without end. Guard the loop, or raise the cap with "
            f"routine.max_activations = N (or Flow(max_activations=N); None disables it).",
            routine_id=rid,
            limit=cap,
        )
        self.job.requeue(msg)
        info = ErrorInfo(
            rid,
            msg.slot,
            type(error).__name__,
            str(error),
            "",
            "stop",
            0,
            f"{self.job.job_id}:{msg.seq}",
        )
        self.job.record_error(info)
        self._stop_job(info)

    def _stop_job(self, info: ErrorInfo) -> None:
        self.job.fail(info)
        self._halt = True

    # -- joins at quiescence ------------------------------------------------------

    def _resolve_joins(self) -> bool:
        """Settle joins that wait for sources that can no longer deliver.

        Called only when no message is pending and no call is running, so
        nothing more can arrive. A join round whose every missing source is a
        routine that failed under CONTINUE fires with the data that did
        arrive. Otherwise (a missing source was skipped, or simply never
        emitted) the round is dropped and recorded as skipped, and the join's
        routine counts as skipped for joins further down. Returns True when
        anything changed, so the job goes on.
        """
        job = self.job
        for rid, slot in self.plan.joins:
            key = slot_key(rid, slot.name)
            state = job.slot_states.get(key)
            if not state:
                continue
            combined, rest, missing = join_partial(state, slot.source_keys())
            if self._all_continued(missing):
                msg = self._partial_message(rid, slot, combined)
                job.set_slot_state(key, rest)
                self._journal_step((), (msg,), None, key)
                return True
            self._commit_slot(key, rest)
            job.record_skipped_call(
                rid, slot.name, "join incomplete: some sources never delivered", tuple(missing)
            )
            self._journal_step((), (), rid, key)
            return True
        return False

    def _all_continued(self, missing: list[str]) -> bool:
        return self.job.only_continued(key.partition(".")[0] for key in missing)

    def _partial_message(self, rid: str, slot: Slot, combined: dict[str, Any]) -> Message:
        # Addressed to the join with no source, so it fires as it is.
        if self.capacities is not None:
            self.capacities.added(slot_key(rid, slot.name))
        return self.job.queue(rid, slot.name, combined)

    # -- the end -------------------------------------------------------------------

    def _finish(self) -> None:
        job = self.job
        taken: list[Submission] = []
        try:
            if self._waiting:
                self._release_all_waiting()
            if self._held:
                self._release_held(everything=True)
            if self._in_flight:  # after a deadline, or an unexpected error in the scheduler
                job.pending.extend(self._in_flight.values())
                self._in_flight.clear()
            # A deadline that passed as the work ran out changes nothing.
            if self._expired and (self._work_left() or job.open):
                job.fail(self._deadline_failure())
            if not self.executor.inline:
                # Parallel runs hold messages back per routine; what is left goes back in
                # the order it was sent, so a resumed job sees every stream in order.
                job.pending = deque(sorted(job.pending, key=lambda m: m.seq))
            if self._inbox is not None or self.capacities is not None:
                taken = self._end_input()
        finally:
            # Whatever went wrong above, the job must not stay running.
            job.tracker.stop_run()
            job.end_run(*self._final_status())
        if self.plan.tasks:
            task_hooks.at_end(self)
        if self.journal is not None:
            self._end_journal()
        for item in taken:
            item.settle()
        if job_finished.receivers:
            send(job_finished, self.sender, job_state=job)

    def _end_journal(self) -> None:
        """Tell the store how the job ended; a store that cannot record it fails the job."""
        job = self.job
        assert self.journal is not None
        try:
            self.journal.end(job)
        except Exception as exc:
            if job.error is None:  # the first failure is the one the job reports
                job.fail(self._store_failure(exc, None, "how the job ended"))
                job.end_run(*self._final_status())

    def _final_status(self) -> tuple[JobStatus, str | None]:
        error = self.job.error
        if error is not None:
            return JobStatus.FAILED, f"{error.error_type}: {error.message}"
        if self._cancel_reason is not None:
            return JobStatus.CANCELLED, self._cancel_reason
        if self._pause_reason is not None and (self._work_left() or self.job.open):
            return JobStatus.PAUSED, self._pause_reason
        if self.job.pending:
            return JobStatus.PAUSED, "interrupted"
        return _COMPLETED, None

    def _work_left(self) -> bool:
        return self.job.has_work(slot_key(rid, slot.name) for rid, slot in self.plan.joins)

    def _journal_step(
        self,
        consumed: Sequence[Message],
        produced: Sequence[Message],
        routine_id: str | None,
        slot_key: str | None,
    ) -> None:
        if self.journal is None:
            return
        try:
            self.journal.step(self.job, consumed, produced, routine_id, slot_key)
        except Exception as exc:  # the store failed: the job cannot go on durably
            step = "a step" if routine_id is None else f"a step of routine '{routine_id}'"
            self._stop_job(self._store_failure(exc, routine_id, step))

    def _store_failure(self, exc: Exception, routine_id: str | None, what: str) -> ErrorInfo:
        logger.error("job %s: its store failed: %s", self.job.job_id, exc)
        return ErrorInfo(
            routine_id or "",
            None,
            type(exc).__name__,
            f"The store could not record {what}, so the job stops: {exc}",
            format_exception(exc),
            "stop",
            0,
        )
