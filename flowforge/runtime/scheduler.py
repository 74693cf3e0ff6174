"""The scheduler: the one owner of a running job's state.

A :class:`JobRunner` takes messages from the job's pending queue, merges them
into their slots, hands the resulting activations to the executor and
applies each :class:`~flowforge.runtime.activation.Outcome` when it comes
back: it commits the slot's merge state and the routine's counters, queues
what was emitted, or applies the error strategy. Handlers never call each
other, so chains of any length and long loops use no stack.

When the queue runs dry with nothing running, joins still waiting for
sources are resolved (see :meth:`JobRunner._resolve_joins`), and the job
ends.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._activation import CURRENT, ActivationContext, merge_stats
from ..error_handler import ErrorStrategy
from ..errors import ActivationLimitError
from ..job_state import ErrorInfo, JobState, JobStatus, Message, SkippedWork
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
    CancelFlag,
    Outcome,
    format_exception,
    run_activation,
)
from .executors import Executor, Session, WorkerLost
from .plan import Plan
from .remote import ShippingError

if TYPE_CHECKING:
    from ..slot import Slot

logger = logging.getLogger(__name__)
#: How often a call whose worker died is sent again before it counts as failed.
MAX_RESENDS = 3


class _Unsent:
    """Stands for the future of a call that failed before it could be sent."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class Journal(Protocol):
    """Receives every committed step of a job (a store implements it)."""

    def begin(self, job: JobState, flow: Any = None) -> None:
        """The job starts or resumes; record it whole (and ``flow``'s definition)."""

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
    ) -> None:
        self.sender = sender
        self.plan = plan
        self.job = job
        self.executor = executor
        self.async_runner = async_runner
        self.journal = journal
        self.cancelled = CancelFlag()
        self._halt = False
        self._pause_reason: str | None = None
        self._cancel_reason: str | None = None
        self._running: dict[str, int] = {}
        self._routines = plan.routines
        self._waiting: dict[str, deque[Message]] = {}
        self._busy_slots: set[str] = set()
        self._in_flight: dict[int, Message] = {}
        self._resent: dict[int, int] = {}
        #: Routines whose counters this run changed (their stats are copied back).
        self.stats_changed: set[str] = set()

    # -- control from other threads or handlers -----------------------------

    def request_pause(self, reason: str | None) -> None:
        """Stop taking new work; running calls finish; the job ends paused."""
        self._pause_reason = reason or "paused"
        self._halt = True

    def request_cancel(self, reason: str | None) -> None:
        """Stop taking new work and end the job cancelled."""
        self._cancel_reason = reason or "cancelled"
        self._halt = True
        self.cancelled.set()

    # -- running ---------------------------------------------------------------

    def run(self) -> JobState:
        """Run until no work is left (or pause, cancel, STOP); returns the JobState."""
        job = self.job
        session = self.executor.start(self.plan.routines)
        before = (job.status, job.reason, job.started_at)
        job.status = JobStatus.RUNNING
        job.reason = None
        job.started_at = job.started_at or time.time()
        start = time.perf_counter()
        if self.journal is not None:
            try:
                self.journal.begin(job, self.sender)
            except BaseException:  # the store refused the job: it never started
                job.status, job.reason, job.started_at = before
                if session is not None:
                    session.close()
                raise
        send(job_started, self.sender, job_state=job)
        try:
            if session is None:
                self._run_inline()
            else:
                self._run_pooled(session)
        finally:
            self._finish(time.perf_counter() - start)
        return job

    def _run_inline(self) -> None:
        pending = self.job.pending
        while True:
            while pending and not self._halt:
                msg = pending.popleft()
                if not self._fast_step(msg):
                    act = self._prepare(msg)
                    if act is not None:
                        self._complete(act, self._run_here(act))
            if self._halt or not self._resolve_joins():
                return

    def _run_here(self, act: Activation, first: tuple[float, Exception] | None = None) -> Outcome:
        try:
            return run_activation(
                act, self.job.job_id, self.async_runner, self.cancelled, self._on_retry, first
            )
        except BaseException:  # KeyboardInterrupt, SystemExit: the message stays pending
            self.job.pending.appendleft(act.message)
            raise

    def _fast_step(self, msg: Message) -> bool:
        """Run the common activation (plain sync slot, no cap, no store, no
        listeners) flat on this thread; False when the general path must run it."""
        rid = msg.routine_id
        routine = self._routines[rid]
        slot = None if msg.slot is None else routine._slots[msg.slot]
        if slot is None or not slot.plain or rid in self.plan.guarded or routine_started.receivers:
            return False
        invoke = slot.invoke
        assert invoke is not None  # a plain slot has a handler
        job = self.job
        state = job.routine_states[rid]
        base = state["stats"]
        ctx = ActivationContext(routine, rid, job.job_id, msg.seq, base, 0, self)
        token = CURRENT.set(ctx)
        start = time.perf_counter()
        try:
            invoke(msg.data)
        except BaseException as exc:
            CURRENT.reset(token)
            if not isinstance(exc, Exception):  # KeyboardInterrupt: the message stays pending
                job.pending.appendleft(msg)
                raise
            act = Activation(
                routine, rid, slot, msg, msg.data, NO_STATE, None, base, self.plan.handlers[rid]
            )
            act.control = self
            self._complete(act, self._run_here(act, (time.perf_counter() - start, exc)))
            return True
        elapsed = time.perf_counter() - start
        CURRENT.reset(token)
        job.tracker.record_call(rid, True, elapsed)
        produced = self._commit_success(routine, rid, state, base, ctx.stats, ctx.emits)
        if self.journal is not None:
            self.journal.step(job, (msg,), produced, rid, None)
        if routine_finished.receivers:
            self._send_finished(rid, slot.name, msg, elapsed)
        return True

    def _run_pooled(self, session: Session) -> None:
        done: queue.SimpleQueue[tuple[Activation, Any]] = queue.SimpleQueue()
        try:
            self._pump(session, done)
        finally:
            session.close()

    def _pump(self, session: Session, done: queue.SimpleQueue[tuple[Activation, Any]]) -> None:
        pending = self.job.pending
        while True:
            while pending and not self._halt:
                msg = pending.popleft()
                if self._must_wait(msg):
                    self._waiting.setdefault(msg.routine_id, deque()).append(msg)
                    continue
                act = self._prepare(msg)
                if act is not None:
                    self._dispatch(session, act, done)
            if not self._in_flight:
                self._release_all_waiting()
                if self._halt or (not pending and not self._resolve_joins()):
                    return
                continue
            session.flush()
            act, future = done.get()
            try:
                outcome = future.outcome if isinstance(future, _Unsent) else session.outcome(future)
            except WorkerLost as lost:
                if self._resend(session, act, done, lost):
                    continue
                outcome = Outcome(False, [0.0], [], None, lost, format_exception(lost))
            released = self._settle(act)
            self._complete(act, outcome)
            if released is not None:
                self._start_released(session, released, done)

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

    def _dispatch(
        self, session: Session, act: Activation, done: queue.SimpleQueue[tuple[Activation, Any]]
    ) -> None:
        self._running[act.routine_id] = self._running.get(act.routine_id, 0) + 1
        if act.slot_key is not None:
            self._busy_slots.add(act.slot_key)
        self._in_flight[id(act)] = act.message
        try:
            future = session.submit(act, self)
        except ShippingError as exc:
            done.put((act, _Unsent(Outcome(False, [0.0], [], None, exc, format_exception(exc)))))
            return
        future.add_done_callback(lambda f: done.put((act, f)))

    def _resend(
        self,
        session: Session,
        act: Activation,
        done: queue.SimpleQueue[tuple[Activation, Any]],
        lost: WorkerLost,
    ) -> bool:
        """Send a call whose worker died again; False once it has been sent too often."""
        sent = self._resent.get(id(act), 0)
        if sent >= MAX_RESENDS:
            return False
        self._resent[id(act)] = sent + 1
        logger.warning("Worker lost during %s (%s); sending the call again", act.routine_id, lost)
        future = session.submit(act, self)
        future.add_done_callback(lambda f: done.put((act, f)))
        return True

    def _settle(self, act: Activation) -> Message | None:
        """Free the call's place; the routine's next waiting message, if any."""
        self._resent.pop(id(act), None)
        rid = act.routine_id
        self._running[rid] -= 1
        if act.slot_key is not None:
            self._busy_slots.discard(act.slot_key)
        del self._in_flight[id(act)]
        waiting = self._waiting.get(rid)
        return waiting.popleft() if waiting else None

    def _start_released(
        self, session: Session, msg: Message, done: queue.SimpleQueue[tuple[Activation, Any]]
    ) -> None:
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

    # -- one activation: prepare, then complete --------------------------------

    def _prepare(self, msg: Message) -> Activation | None:
        """Merge ``msg`` into its slot; the activation to run, or None if buffered."""
        rid = msg.routine_id
        routine = self._routines[rid]
        slot = None if msg.slot is None else routine._slots[msg.slot]
        state = self.job.routine_states[rid]
        cap = self.plan.caps.get(rid)
        if cap is not None and state["activations"] + self._running.get(rid, 0) >= cap:
            self._fail_on_cap(msg, rid, cap)
            return None
        data, new_state, key = msg.data, NO_STATE, None
        if slot is not None and slot.merge is not None:
            key = slot_key(rid, slot.name)
            try:
                fire, new_state = slot.merge(
                    self.job.slot_states.get(key), msg.data, msg.source, slot.source_keys()
                )
            except Exception as exc:  # a merge function failed: the routine's call failed
                self._fail_before_call(routine, rid, slot, msg, state, exc)
                return None
            if fire is None:
                self._commit_slot(key, new_state)
                self._journal_step((msg,), (), None, key)
                return None
            data = fire
        if rid in self.plan.tasks:
            task_hooks.started(self.job, rid)
        act = Activation(
            routine, rid, slot, msg, data, new_state, key, state["stats"], self.plan.handlers[rid]
        )
        act.control = self
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
        rid = act.routine_id
        if rid in self.plan.tasks:
            outcome = task_hooks.before_commit(self, act, outcome)
        record = self.job.tracker.record_call
        for seconds in outcome.durations[:-1]:
            record(rid, False, seconds)
        record(rid, outcome.ok, outcome.durations[-1])
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
        if not outcome.ok:
            self._fail(act, outcome)
            return
        state = self.job.routine_states[rid]
        if act.slot_key is not None:
            self._commit_slot(act.slot_key, act.new_state)
        produced = self._commit_success(
            act.routine, rid, state, act.base_stats, outcome.stats, outcome.emits
        )
        self._journal_step((act.message,), produced, rid, act.slot_key)
        if rid in self.plan.tasks:
            task_hooks.after_commit(self, rid)
        if routine_finished.receivers:
            self._send_finished(rid, act.slot_name, act.message, outcome.durations[-1])

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
        state: dict[str, Any],
        error: Exception,
    ) -> None:
        act = Activation(
            routine,
            rid,
            slot,
            msg,
            msg.data,
            NO_STATE,
            None,
            state["stats"],
            self.plan.handlers[rid],
        )
        self._complete(act, Outcome(False, [0.0], [], None, error, format_exception(error)))

    def _commit_success(
        self,
        routine: Any,
        rid: str,
        state: dict[str, Any],
        base: dict[str, Any],
        stats: dict[str, Any] | None,
        emits: list[tuple[str, Any]],
    ) -> Sequence[Message]:
        state["activations"] += 1
        state["status"] = "completed"
        if stats is not None and stats != base:
            state["stats"] = merge_stats(state["stats"], base, stats)
            self.stats_changed.add(rid)
        return self._route(routine, rid, emits) if emits else ()

    def _route(self, routine: Any, rid: str, emits: list[tuple[str, Any]]) -> list[Message]:
        job = self.job
        pending = job.pending
        history = job._history
        deliver = job.tracker.record_delivery
        events = routine._events
        journal = self.journal is not None
        produced: list[Message] = []
        now = time.time()
        seq = job.next_seq
        job.history_total += len(emits)
        for event_name, data in emits:
            history.append((rid, event_name, data, now))
            for connection in events[event_name]._connections:
                mapping = connection.param_mapping
                payload = (
                    data if mapping is None else {mapping.get(k, k): v for k, v in data.items()}
                )
                target, slot = connection.target_id, connection.slot_name
                msg = Message(seq, target, slot, payload, connection.key)
                seq += 1
                pending.append(msg)
                if journal:
                    produced.append(msg)
                deliver(now, rid, event_name, target, slot)
            job.next_seq = seq
            if event_emitted.receivers:
                send(
                    event_emitted,
                    self.sender,
                    job_state=job,
                    routine_id=rid,
                    event=event_name,
                    data=data,
                )
        return produced

    def _commit_slot(self, key: str, new_state: Any) -> None:
        if new_state:
            self.job.slot_states[key] = new_state
        else:
            self.job.slot_states.pop(key, None)

    # -- failures ----------------------------------------------------------------

    def _fail(self, act: Activation, outcome: Outcome) -> None:
        rid = act.routine_id
        error = outcome.error
        assert error is not None
        strategy = act.error_handler.final_strategy(error)
        if self.cancelled.is_set():
            strategy = ErrorStrategy.STOP  # the call is kept for the record, not retried
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
        self.job.record_error(info)
        state = self.job.routine_states[rid]
        state["failures"] = state.get("failures", 0) + 1
        if strategy is ErrorStrategy.STOP:
            state["status"] = "failed"
            self.job.pending.appendleft(act.message)
            if not self.cancelled.is_set():
                self._stop_job(info)
            self._journal_step((), (), rid, None)
        else:
            self._consume_failed(act, strategy, state)
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

    def _consume_failed(
        self, act: Activation, strategy: ErrorStrategy, state: dict[str, Any]
    ) -> None:
        if act.slot_key is not None:
            self._commit_slot(act.slot_key, act.new_state)
        if strategy is ErrorStrategy.SKIP:
            state["status"] = "skipped"
            state["skipped"] = state.get("skipped", 0) + 1
            self.job.record_skip(
                SkippedWork(
                    act.routine_id, act.slot_name, "the handler failed and its strategy is SKIP"
                )
            )
        else:
            state["status"] = "failed"
            state["continued"] = state.get("continued", 0) + 1
        self._journal_step((act.message,), (), act.routine_id, act.slot_key)

    def _fail_on_cap(self, msg: Message, rid: str, cap: int) -> None:
        error = ActivationLimitError(
            f"Routine '{rid}' was activated {cap} times in this job, its cap; the flow is "
            "probably looping without end. Guard the loop, or raise the cap with "
            f"routine.max_activations = N (or Flow(max_activations=N); None disables it).",
            routine_id=rid,
            limit=cap,
        )
        self.job.pending.appendleft(msg)
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
        if self.job.error is None:
            self.job.error = info
        self._halt = True

    def _on_retry(self, act: Activation, attempt: int, delay: float, error: BaseException) -> None:
        send(
            retry_scheduled,
            self.sender,
            job_id=self.job.job_id,
            routine_id=act.routine_id,
            slot=act.slot_name,
            activation_id=act.activation_id(self.job.job_id),
            attempt=attempt,
            delay=delay,
            error=error,
        )

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
        for rid, slot in self.plan.joins:
            key = slot_key(rid, slot.name)
            state = self.job.slot_states.get(key)
            if not state:
                continue
            combined, rest, missing = join_partial(state, slot.source_keys())
            if self._all_continued(missing):
                msg = self._partial_message(rid, slot, combined)
                self.job.pending.append(msg)
                self.job.slot_states[key] = rest
                self._journal_step((), (msg,), None, key)
                return True
            self._commit_slot(key, rest)
            routine_state = self.job.routine_states[rid]
            routine_state["skipped"] = routine_state.get("skipped", 0) + 1
            routine_state["status"] = "skipped"
            self.job.record_skip(
                SkippedWork(
                    rid, slot.name, "join incomplete: some sources never delivered", tuple(missing)
                )
            )
            self._journal_step((), (), rid, key)
            return True
        return False

    def _all_continued(self, missing: list[str]) -> bool:
        sources = [key.partition(".")[0] for key in missing]
        states = self.job.routine_states
        return bool(sources) and all(
            states.get(s, {}).get("continued", 0) and not states.get(s, {}).get("skipped", 0)
            for s in sources
        )

    def _partial_message(self, rid: str, slot: Slot, combined: dict[str, Any]) -> Message:
        # Addressed to the join with no source, so it fires as it is.
        msg = Message(self.job.next_seq, rid, slot.name, combined, None)
        self.job.next_seq += 1
        return msg

    # -- the end -------------------------------------------------------------------

    def _finish(self, elapsed: float) -> None:
        job = self.job
        self._release_all_waiting()
        if self._in_flight:  # only after an unexpected error in the scheduler itself
            job.pending.extend(self._in_flight.values())
            self._in_flight.clear()
        if not self.executor.inline:
            # Parallel runs hold messages back per routine; what is left goes back in
            # the order it was sent, so a resumed job sees every stream in order.
            job.pending = deque(sorted(job.pending, key=lambda m: m.seq))
        job.tracker.elapsed += elapsed
        if job.error is not None:
            job.status = JobStatus.FAILED
            job.reason = f"{job.error.error_type}: {job.error.message}"
        elif self._cancel_reason is not None:
            job.status, job.reason = JobStatus.CANCELLED, self._cancel_reason
        elif self._pause_reason is not None and self._work_left():
            job.status, job.reason = JobStatus.PAUSED, self._pause_reason
        elif job.pending:
            job.status, job.reason = JobStatus.PAUSED, "interrupted"
        else:
            job.status = JobStatus.COMPLETED
        if job.status.finished:
            job.finished_at = time.time()
        if self.plan.tasks:
            task_hooks.at_end(self)
        if self.journal is not None:
            self.journal.end(job)
        send(job_finished, self.sender, job_state=job)

    def _work_left(self) -> bool:
        slot_states = self.job.slot_states
        return bool(self.job.pending) or any(
            slot_states.get(slot_key(rid, slot.name)) for rid, slot in self.plan.joins
        )

    def _journal_step(
        self,
        consumed: Sequence[Message],
        produced: Sequence[Message],
        routine_id: str | None,
        slot_key: str | None,
    ) -> None:
        if self.journal is not None:
            self.journal.step(self.job, consumed, produced, routine_id, slot_key)
