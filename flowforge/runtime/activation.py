"""Turning an activation into an outcome: the one path of every handler call.

:func:`invoke` is the only function that calls a handler. Every executor runs
its calls through it -- the sequential and thread executors on the job's
machine, the process and Dask executors in their workers (through
:func:`~flowforge.runtime.remote.run_remote`) -- so every call gets the same
activation context, timing, timeout, retries and exception sorting. Which
way it goes depends on the call alone (a sync handler without a timeout runs
flat), never on global state such as signal receivers.

``invoke(act) -> Outcome`` never raises for a handler's failure: the
:class:`Outcome` says what the call did, and the scheduler (the one owner of
the job's state) applies it. The :class:`Activation` is also the handler's
context while it runs (``emit`` and ``self._stats`` write to it); emits and
counter changes of a failed attempt are dropped with it, which is what makes
an activation all-or-nothing. What an executor knows of the job is the
activation's frozen :class:`CallContext`: the job id, the cancel flag, the
retry callback, the async runner and a narrow
:class:`~flowforge._activation.JobControl` -- never the scheduler itself.

Middleware wraps every handler call here, inside each attempt: an
activation whose routine has middleware carries the routine's composed
:class:`~flowforge.runtime.chain.Chain` (made once per flow, with its plan),
and each attempt runs the chain around the handler, so a retry runs it
again and a middleware's error is sorted like the handler's. An activation
without middleware has no chain and takes the plain path.

Timeouts: a sync handler past its routine's timeout is failed and, outside a
worker process, abandoned in its thread (it cannot be stopped). An abandoned
call keeps its place until it really returns: the :class:`Outcome` carries it
as ``running``, the scheduler counts it against the routine's
``max_concurrency``, and a retry of the same activation waits for it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .._activation import CURRENT, ActivationContext, ActivationInfo, JobControl
from ..errors import HandlerTimeoutError
from ._async import AsyncRunner, run_here

if TYPE_CHECKING:
    from ..error_handler import ErrorHandler
    from ..routine import Routine
    from ..slot import Slot
    from .chain import Chain

RetryCallback = Callable[["Activation", int, float, BaseException], None]
#: A call still running in a thread after its timeout; done when it returns.
Running = concurrent.futures.Future[None]


class Activation(ActivationContext):
    """One handler call the scheduler has dispatched, and its context while it runs.

    ``slot`` is ``None`` for an entry call of a routine that overrides
    ``__call__``. ``new_state`` is the slot's merge state to commit when the
    call is done (``NO_STATE`` for slots without merge state). ``call`` is
    what the executor may know of the job (:class:`CallContext`). ``chain``
    is the routine's middleware, or ``None``.
    """

    __slots__ = ("chain", "data", "error_handler", "new_state", "slot", "slot_key")

    # The sequential executor's plain calls make theirs without __init__ (see
    # JobRunner._run_inline): a field added here must be set there too.

    call: CallContext

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
        call: CallContext,
        chain: Chain | None = None,
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
        self.call = call
        self.chain = chain
        self.attempt = 0
        self.stats = None
        self.emits = []

    def activation_id(self, job_id: str) -> str:
        """The stable id of this activation: the job and the message it consumes."""
        return f"{job_id}:{self.message.seq}"

    @property
    def slot_name(self) -> str | None:
        """The slot's name, or ``None`` for an entry ``__call__``."""
        return None if self.slot is None else self.slot.name

    def start_attempt(self, attempt: int) -> None:
        """Start afresh for a retry: what an earlier attempt did is dropped."""
        self.attempt = attempt
        self.stats = None
        self.emits = []


NO_STATE: Any = object()


class CancelFlag:
    """Set once, from any thread; retry waits wake up when it is set.

    Cheaper than :class:`threading.Event` (one lock, no condition), which
    matters because every job makes one; the lock itself is made only when
    a retry first waits on the flag (most jobs never wait).
    """

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._set = False
        self._lock: threading.Lock | None = None

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._set:
            return
        self._set = True
        with _MAKING_FLAGS:
            lock = self._lock
        if lock is not None:
            with contextlib.suppress(RuntimeError):  # released by a racing set()
                lock.release()

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if the flag is (or gets) set."""
        if self._set:
            return True
        lock = self._lock or self._waited_on()
        if lock.acquire(timeout=timeout):
            lock.release()
        return self._set

    def _waited_on(self) -> threading.Lock:
        """The flag's lock, held while the flag is not set (made on the first wait)."""
        with _MAKING_FLAGS:
            if self._lock is None:
                lock = threading.Lock()
                if not self._set:  # a set() from now on takes this lock and releases it
                    lock.acquire()
                self._lock = lock
            return self._lock


#: Guards making a CancelFlag's lock against a set() in another thread.
_MAKING_FLAGS = threading.Lock()


class CallContext(NamedTuple):
    """What an executor may know of the job whose calls it runs (frozen; a
    tuple because every job makes one).

    Attributes:
        job_id: The job's id (activation ids are ``"job_id:seq"``).
        cancelled: Set when the job is cancelled; retry waits end early.
        on_retry: Told of every retry before its delay (the scheduler sends
            the ``retry_scheduled`` signal from it).
        async_runner: Runs ``async def`` handlers; ``None`` runs them on a
            fresh event loop in the calling thread (worker processes).
        control: Lets a handler pause or cancel its job; ``None`` where that
            is not possible (calls in another process).
    """

    job_id: str
    cancelled: CancelFlag | None = None
    on_retry: RetryCallback | None = None
    async_runner: AsyncRunner | None = None
    control: JobControl | None = None


class Outcome:
    """What an activation did: its emits and counters, or its error.

    ``running`` is a timed-out attempt still running in its thread (failed
    outcomes only); it holds the routine's concurrency slot until done.
    ``retries`` lists retries made in another process: ``(attempt, delay,
    repr(error))``. Treat it as immutable (:meth:`replace` makes a changed
    copy). A slotted object rather than a named tuple: one is made per call,
    and a tuple subclass costs more to make and to read.
    """

    __slots__ = ("durations", "emits", "error", "ok", "retries", "running", "stats", "traceback")

    def __init__(
        self,
        ok: bool,
        durations: list[float],
        emits: list[tuple[str, Any]],
        stats: dict[str, Any] | None,
        error: BaseException | None = None,
        traceback: str = "",
        running: Running | None = None,
        retries: Sequence[tuple[int, float, str]] = (),
    ) -> None:
        self.ok = ok
        self.durations = durations
        self.emits = emits
        self.stats = stats
        self.error = error
        self.traceback = traceback
        self.running = running
        self.retries = retries

    def __iter__(self) -> Iterator[Any]:
        """The fields in order, so an outcome unpacks like the tuple it once was."""
        return iter([getattr(self, name) for name in _OUTCOME_FIELDS])

    def replace(self, **changes: Any) -> Outcome:
        """A copy with ``changes`` made."""
        fields = {name: getattr(self, name) for name in _OUTCOME_FIELDS}
        fields.update(changes)
        return Outcome(**fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Outcome:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _OUTCOME_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _OUTCOME_FIELDS)
        return f"Outcome({inner})"


_OUTCOME_FIELDS = ("ok", "durations", "emits", "stats", "error", "traceback", "running", "retries")


_new_object = object.__new__
_clock = time.perf_counter


def failed(error: BaseException, durations: list[float] | None = None) -> Outcome:
    """The outcome of a call that failed with ``error`` (or could not run)."""
    return Outcome(False, durations or [0.0], [], None, error, format_exception(error))


def invoke(act: Activation) -> Outcome:
    """Call the handler of ``act``, retrying by its error handler; never raises
    for the handler's failure (``KeyboardInterrupt`` and the like propagate).

    The one function through which every executor calls handlers. A plain
    sync first attempt (no timeout) runs flat here: it is most calls, and the
    general loop would cost it a third more.
    """
    slot = act.slot
    if (
        slot is None
        or slot.invoke is None
        or slot.is_async
        or act.routine._policy.timeout is not None
        or act.chain is not None
    ):
        return _attempts(act, None)
    token = CURRENT.set(act)
    start = _clock()
    try:
        slot.invoke(act.data)
    except Exception as exc:
        first = (_clock() - start, exc)
    else:
        # Skips Outcome.__init__: this runs once per handler call.
        done = _new_object(Outcome)
        done.ok = True
        done.durations = [_clock() - start]
        done.emits = act.emits
        done.stats = act.stats
        done.error = done.running = None
        done.traceback = ""
        done.retries = ()
        return done
    finally:
        CURRENT.reset(token)
    return _attempts(act, first)


class _Abandoned(Exception):
    """A sync call timed out and was left running in its thread."""

    def __init__(self, error: HandlerTimeoutError, running: Running) -> None:
        super().__init__(str(error))
        self.error = error
        self.running = running


def _attempts(act: Activation, first: tuple[float, Exception] | None) -> Outcome:
    call = act.call
    handler = act.error_handler
    durations: list[float] = []
    attempt = 0
    error: Exception | None = None
    running: Running | None = None
    if first is not None:
        seconds, error = first
        durations.append(seconds)
    while True:
        if error is None:
            act.start_attempt(attempt)
            start = time.perf_counter()
            try:
                if act.chain is None:
                    _call(act, call.async_runner)
                else:
                    _chained(act, act.chain, call.async_runner)
            except _Abandoned as abandoned:
                error, running = abandoned.error, abandoned.running
            except Exception as exc:
                error = exc
            durations.append(time.perf_counter() - start)
            if error is None:
                return Outcome(True, durations, act.emits, act.stats)
        if not handler.should_retry(error, attempt):
            return _failure(error, durations, running)
        attempt += 1
        delay = handler.delay(attempt)
        if call.on_retry is not None:
            call.on_retry(act, attempt, delay, error)
        if _cancelled_while_waiting(call.cancelled, delay, running):
            return _failure(error, durations, running)
        error = running = None


def _failure(error: Exception, durations: list[float], running: Running | None) -> Outcome:
    if running is not None and running.done():
        running = None
    return Outcome(False, durations, [], None, error, format_exception(error), running)


#: How often a wait for an abandoned call looks at the cancel flag.
_POLL = 0.05


def _cancelled_while_waiting(
    cancelled: CancelFlag | None, delay: float, running: Running | None
) -> bool:
    """Wait out a retry's delay, then for the timed-out attempt to really return."""
    if cancelled is None:
        time.sleep(delay)
        if running is not None:
            running.result()
        return False
    if cancelled.wait(delay):
        return True
    while running is not None and not running.done():
        if cancelled.wait(_POLL):
            return True
    return False


def format_exception(exc: BaseException) -> str:
    """The formatted traceback of ``exc``."""
    return "".join(traceback.format_exception(exc))


def _chained(act: Activation, chain: Chain, runner: AsyncRunner | None) -> None:
    job_id = act.call.job_id
    info = ActivationInfo(
        job_id, act.routine_id, act.activation_id(job_id), act.attempt, act.slot_name, act.data
    )

    abandoned: list[_Abandoned] = []

    def handler() -> Any:
        try:
            return _call(act, runner)
        except BaseException as exc:
            # A middleware that swallows the error must not commit what the
            # failed handler emitted: the handler's call stays all-or-nothing.
            act.emits = []
            act.stats = None
            if isinstance(exc, _Abandoned):
                abandoned.append(exc)
                raise exc.error from None  # middleware sees the timeout itself
            raise

    token = CURRENT.set(act)
    try:
        chain(info, handler)
    except HandlerTimeoutError as exc:
        if abandoned and exc is abandoned[0].error:
            raise abandoned[0] from None  # the call keeps its slot while it runs on
        raise
    finally:
        CURRENT.reset(token)


def _call(act: Activation, runner: AsyncRunner | None) -> Any:
    """Run the handler of ``act`` once; returns what it returned."""
    slot = act.slot
    if slot is None:
        invoke: Callable[[Mapping[str, Any]], Any] | None = _entry_call(act.routine)
        is_async = False
    else:
        invoke, is_async = slot.invoke, slot.is_async
    if invoke is None:
        return None
    timeout = act.routine._policy.timeout
    if is_async:
        run = runner.run if runner is not None else run_here
        return run(invoke, act.data, act, timeout, _timeout_error(act, timeout))
    if timeout is None:
        token = CURRENT.set(act)
        try:
            return invoke(act.data)
        finally:
            CURRENT.reset(token)
    if _interrupting and threading.current_thread() is threading.main_thread():
        return _call_with_alarm(invoke, act.data, act, timeout, _timeout_error(act, timeout))
    return _call_in_thread(invoke, act.data, act, timeout, _timeout_error(act, timeout))


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
) -> Any:
    def expire(signum: int, frame: Any) -> None:
        raise timeout_error

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    token = CURRENT.set(ctx)
    try:
        return invoke(data)
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
) -> Any:
    # A thread cannot be interrupted: on timeout it is abandoned, and since
    # its context is dropped, whatever it emits later goes nowhere.
    running: Running = concurrent.futures.Future()
    returned: list[Any] = [None]

    def target() -> None:
        token = CURRENT.set(ctx)
        try:
            returned[0] = invoke(data)
        except BaseException as exc:  # handed to the caller's thread
            running.set_exception(exc)
        else:
            running.set_result(None)
        finally:
            CURRENT.reset(token)

    worker = threading.Thread(
        target=target, name=f"flowforge-timeout-{ctx.routine_id}", daemon=True
    )
    worker.start()
    finished, _ = concurrent.futures.wait((running,), timeout)
    if not finished:
        ctx.emits = []
        raise _Abandoned(timeout_error, running)
    running.result()
    return returned[0]
