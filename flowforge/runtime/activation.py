"""Running one activation: a handler call with its retries and timeout.

:func:`run_activation` is what an executor runs. It never raises for a
handler's failure: it returns an :class:`Outcome` that the scheduler (the one
owner of the job's state) applies. Emits and counter changes of a failed
attempt are dropped with the attempt's context, which is what makes an
activation all-or-nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._activation import CURRENT, ActivationContext, JobControl
from ..errors import HandlerTimeoutError
from ._async import AsyncRunner, run_here

if TYPE_CHECKING:
    from ..error_handler import ErrorHandler
    from ..routine import Routine
    from ..slot import Slot

RetryCallback = Callable[["Activation", int, float, BaseException], None]


class Activation:
    """One handler call the scheduler has dispatched.

    ``slot`` is ``None`` for an entry call of a routine that overrides
    ``__call__``. ``new_state`` is the slot's merge state to commit when the
    call is done (``NO_STATE`` for slots without merge state).
    """

    __slots__ = (
        "base_stats",
        "control",
        "data",
        "error_handler",
        "message",
        "new_state",
        "routine",
        "routine_id",
        "slot",
        "slot_key",
    )

    def __init__(
        self,
        routine: Routine,
        routine_id: str,
        slot: Slot | None,
        message: Any,
        data: Mapping[str, Any],
        new_state: Any,
        slot_key: str | None,
        base_stats: dict[str, Any],
        error_handler: ErrorHandler,
    ) -> None:
        self.routine = routine
        self.routine_id = routine_id
        self.slot = slot
        self.message = message
        self.data = data
        self.new_state = new_state
        self.slot_key = slot_key
        self.base_stats = base_stats
        self.error_handler = error_handler
        #: The job's scheduler, for handlers that pause or cancel it (local calls only).
        self.control: JobControl | None = None

    def activation_id(self, job_id: str) -> str:
        """The stable id of this activation: the job and the message it consumes."""
        return f"{job_id}:{self.message.seq}"

    @property
    def slot_name(self) -> str | None:
        """The slot's name, or ``None`` for an entry ``__call__``."""
        return None if self.slot is None else self.slot.name


NO_STATE: Any = object()


class CancelFlag:
    """Set once, from any thread; retry waits wake up when it is set.

    Cheaper than :class:`threading.Event` (one lock, no condition), which
    matters because every job makes one.
    """

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._set = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if not self._set:
            self._set = True
            with contextlib.suppress(RuntimeError):  # released by a racing set()
                self._lock.release()

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if the flag is (or gets) set."""
        if self._set:
            return True
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
        return self._set


class Outcome:
    """What an activation did: its emits and counters, or its error."""

    __slots__ = ("durations", "emits", "error", "ok", "retries", "stats", "traceback")

    def __init__(
        self,
        ok: bool,
        durations: list[float],
        emits: list[tuple[str, Any]],
        stats: dict[str, Any] | None,
        error: BaseException | None = None,
        tb: str = "",
    ) -> None:
        self.ok = ok
        self.durations = durations
        self.emits = emits
        self.stats = stats
        self.error = error
        self.traceback = tb
        #: Retries made in another process: ``(attempt, delay, repr(error))``.
        self.retries: list[tuple[int, float, str]] = []


def run_activation(
    act: Activation,
    job_id: str,
    runner: AsyncRunner | None,
    cancelled: CancelFlag | None,
    on_retry: RetryCallback | None,
    first: tuple[float, Exception] | None = None,
) -> Outcome:
    """Call the handler, retrying by the routine's error handler; never raises.

    ``first`` is a first attempt's failure that the caller already saw.
    """
    slot = act.slot
    if (
        first is None
        and slot is not None
        and not slot.is_async
        and slot.invoke is not None
        and act.routine._policy.timeout is None
    ):
        # The common case, kept flat: one sync call, no timeout.
        ctx = ActivationContext(
            act.routine, act.routine_id, job_id, act.message.seq, act.base_stats, 0, act.control
        )
        token = CURRENT.set(ctx)
        start = time.perf_counter()
        try:
            slot.invoke(act.data)
            return Outcome(True, [time.perf_counter() - start], ctx.emits, ctx.stats)
        except Exception as exc:
            first = (time.perf_counter() - start, exc)
        finally:
            CURRENT.reset(token)
    return _run_with_retries(act, job_id, runner, cancelled, on_retry, first)


def _run_with_retries(
    act: Activation,
    job_id: str,
    runner: AsyncRunner | None,
    cancelled: CancelFlag | None,
    on_retry: RetryCallback | None,
    first: tuple[float, Exception] | None,
) -> Outcome:
    handler = act.error_handler
    durations: list[float] = []
    retries = 0
    error: Exception | None = None
    if first is not None:
        seconds, error = first
        durations.append(seconds)
    while True:
        if error is None:
            ctx = ActivationContext(
                act.routine,
                act.routine_id,
                job_id,
                act.message.seq,
                act.base_stats,
                retries,
                act.control,
            )
            start = time.perf_counter()
            try:
                _call(act, ctx, runner)
            except Exception as exc:
                error = exc
            durations.append(time.perf_counter() - start)
            if error is None:
                return Outcome(True, durations, ctx.emits, ctx.stats)
        if not handler.should_retry(error, retries):
            return Outcome(False, durations, [], None, error, format_exception(error))
        retries += 1
        delay = handler.delay(retries)
        if on_retry is not None:
            on_retry(act, retries, delay, error)
        if cancelled is None:
            time.sleep(delay)
        elif cancelled.wait(delay):
            return Outcome(False, durations, [], None, error, format_exception(error))
        error = None


def format_exception(exc: BaseException) -> str:
    """The formatted traceback of ``exc``."""
    return "".join(traceback.format_exception(exc))


def _call(act: Activation, ctx: ActivationContext, runner: AsyncRunner | None) -> None:
    slot = act.slot
    if slot is None:
        invoke: Callable[[Mapping[str, Any]], Any] | None = _entry_call(act.routine)
        is_async = False
    else:
        invoke, is_async = slot.invoke, slot.is_async
    if invoke is None:
        return
    timeout = act.routine._policy.timeout
    if is_async:
        run = runner.run if runner is not None else run_here
        run(invoke, act.data, ctx, timeout, _timeout_error(act, timeout))
    elif timeout is None:
        token = CURRENT.set(ctx)
        try:
            invoke(act.data)
        finally:
            CURRENT.reset(token)
    elif _interrupting and threading.current_thread() is threading.main_thread():
        _call_with_alarm(invoke, act.data, ctx, timeout, _timeout_error(act, timeout))
    else:
        _call_in_thread(invoke, act.data, ctx, timeout, _timeout_error(act, timeout))


_interrupting = False


def enable_interrupting_timeouts() -> None:
    """Make timeouts interrupt handlers in this process (a worker process's initializer).

    A timer signal raises the timeout error inside the handler, so the call
    really stops. Only for processes that run nothing but handler calls.
    """
    global _interrupting
    _interrupting = True


def _call_with_alarm(
    invoke: Callable[[Mapping[str, Any]], Any],
    data: Mapping[str, Any],
    ctx: ActivationContext,
    timeout: float,
    timeout_error: HandlerTimeoutError,
) -> None:
    def expire(signum: int, frame: Any) -> None:
        raise timeout_error

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    token = CURRENT.set(ctx)
    try:
        invoke(data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        CURRENT.reset(token)


def _entry_call(routine: Routine) -> Callable[[Mapping[str, Any]], Any]:
    return lambda data: routine(**data)


def _timeout_error(act: Activation, timeout: float | None) -> HandlerTimeoutError:
    slot = act.slot_name or "__call__"
    return HandlerTimeoutError(
        f"Routine '{act.routine_id}' slot '{slot}': the handler call exceeded the routine's "
        f"timeout of {timeout} s. Raise it (routine.timeout = ...) or make the handler faster.",
        routine_id=act.routine_id,
        slot=slot,
        timeout=timeout or 0.0,
    )


def _call_in_thread(
    invoke: Callable[[Mapping[str, Any]], Any],
    data: Mapping[str, Any],
    ctx: ActivationContext,
    timeout: float,
    timeout_error: HandlerTimeoutError,
) -> None:
    # A thread cannot be interrupted: on timeout it is abandoned, and since
    # its context is dropped, whatever it emits later goes nowhere.
    box: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        token = CURRENT.set(ctx)
        try:
            invoke(data)
        except BaseException as exc:  # handed to the caller's thread
            box.append(exc)
        finally:
            CURRENT.reset(token)
            done.set()

    worker = threading.Thread(
        target=target, name=f"flowforge-timeout-{ctx.routine_id}", daemon=True
    )
    worker.start()
    if not done.wait(timeout):
        ctx.emits = []
        raise timeout_error
    if box:
        raise box[0]
