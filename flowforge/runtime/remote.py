"""Shipping activations to other processes and machines.

The job's scheduler stays the one owner of its state. For an executor that
runs handlers elsewhere, it sends a :class:`RemoteCall` (the routine and
its middleware chain, pickled once per job and cached by each worker; the
slot; the data; the routine's counters) and applies the
:class:`RemoteResult` that comes back exactly as it applies a local
outcome: emits are routed and counters merged only then.
A worker that dies mid-call loses nothing: the call is sent again.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .._middleware import describe
from ..errors import FlowForgeError
from .activation import Activation, CallContext, Outcome, failed, invoke
from .chain import Chain

Dumps = Callable[[Any], bytes]


class ShippingError(FlowForgeError, TypeError):
    """A routine, its middleware or a message cannot be sent to another process.

    Attributes:
        routine_id: The routine concerned.
        what: What could not be sent (``"routine"``, ``"middleware <name>"``
            or ``"data['key']"``).
    """

    def __init__(self, message: str, *, routine_id: str, what: str) -> None:
        super().__init__(message)
        self.routine_id = routine_id
        self.what = what


class RemoteHandlerError(Exception):
    """A handler failed in another process with an exception that could not travel.

    Attributes:
        original_type: The name of the exception's type.
    """

    def __init__(self, original_type: str, message: str) -> None:
        super().__init__(message)
        self.original_type = original_type

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.original_type, str(self)))


class RemoteCall:
    """Everything a worker needs for one activation."""

    __slots__ = ("base_stats", "blob", "data", "digest", "job_id", "routine_id", "seq", "slot")

    def __init__(self, act: Activation, job_id: str, blob: bytes, digest: str) -> None:
        self.blob = blob
        self.digest = digest
        self.routine_id = act.routine_id
        self.slot = act.slot_name
        self.data = dict(act.data)
        self.base_stats = act.base_stats
        self.seq = act.message.seq
        self.job_id = job_id

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class RemoteResult:
    """What a worker sends back: an :class:`Outcome` made fit to travel."""

    __slots__ = ("durations", "emits", "error", "ok", "retries", "stats", "traceback")

    def __init__(self, outcome: Outcome, retries: list[tuple[int, float, str]]) -> None:
        self.ok = outcome.ok
        self.durations = outcome.durations
        self.emits = outcome.emits
        self.stats = outcome.stats
        self.error = _portable(outcome.error)
        self.traceback = outcome.traceback
        self.retries = retries

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def outcome(self) -> Outcome:
        """The result as the scheduler's :class:`Outcome`."""
        return Outcome(
            self.ok,
            self.durations,
            self.emits,
            self.stats,
            self.error,
            self.traceback,
            None,
            self.retries,
        )


def _portable(error: BaseException | None) -> BaseException | None:
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RemoteHandlerError(type(error).__name__, str(error))
    return error


# -- the worker's side ---------------------------------------------------------

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 256


def run_remote(call: RemoteCall, error_handler: Any) -> RemoteResult:
    """Run one activation in a worker (the function executors ship), through
    :func:`~flowforge.runtime.activation.invoke` like every call."""
    routine, chain = _routine(call)
    slot = None if call.slot is None else routine._slots[call.slot]
    retries: list[tuple[int, float, str]] = []

    def note_retry(_: Activation, attempt: int, delay: float, error: BaseException) -> None:
        retries.append((attempt, delay, repr(error)))

    act = Activation(
        routine,
        call.routine_id,
        slot,
        _Seq(call.seq),
        call.data,
        None,
        None,
        call.base_stats,
        error_handler,
        CallContext(call.job_id, on_retry=note_retry),
        chain,
    )
    outcome = invoke(act)
    if outcome.ok:
        outcome = _checked_emits(outcome, call.routine_id)
    return RemoteResult(outcome, retries)


def _checked_emits(outcome: Outcome, routine_id: str) -> Outcome:
    """The outcome, or a failure naming what the call emitted that cannot travel back."""
    try:
        pickle.dumps((outcome.emits, outcome.stats))
    except Exception as exc:
        where = _unpicklable(outcome.emits, outcome.stats)
        error = ShippingError(
            f"Routine '{routine_id}': {where} cannot be sent back from the worker process "
            f"({type(exc).__name__}: {exc}). Emit plain data (dicts, lists, numbers, strings).",
            routine_id=routine_id,
            what=where,
        )
        return failed(error, outcome.durations)
    return outcome


def _unpicklable(emits: list[tuple[str, Any]], stats: dict[str, Any] | None) -> str:
    for event, data in emits:
        for key, value in data.items():
            if not _picklable(value):
                return f"event '{event}' data[{key!r}] = {value!r:.80}"
    for key, value in (stats or {}).items():
        if not _picklable(value):
            return f"self._stats[{key!r}] = {value!r:.80}"
    return "what it emitted"


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


class _Seq:
    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


def _routine(call: RemoteCall) -> tuple[Any, Chain | None]:
    """The call's routine and middleware chain, unpickled once per worker."""
    with _cache_lock:
        found = _cache.get(call.digest)
    if found is None:
        found = pickle.loads(call.blob)
        with _cache_lock:
            if len(_cache) >= _CACHE_SIZE:
                _cache.clear()
            _cache[call.digest] = found
    return found  # type: ignore[no-any-return]


# -- the coordinator's side ------------------------------------------------------


class Shipper:
    """Pickles each routine of a job once and checks what is sent."""

    def __init__(self, dumps: Dumps) -> None:
        self._dumps = dumps
        self._blobs: dict[str, tuple[bytes, str]] = {}

    def check_routines(
        self, routines: Mapping[str, Any], middleware: Mapping[str, Chain] | None = None
    ) -> None:
        """Pickle every routine (with its middleware) now, so an unshippable one
        fails before the job starts."""
        chains = middleware or {}
        for rid, routine in routines.items():
            self.blob(rid, routine, chains.get(rid))

    def blob(self, routine_id: str, routine: Any, chain: Chain | None = None) -> tuple[bytes, str]:
        """The pickle of the routine and its middleware chain, and its digest."""
        found = self._blobs.get(routine_id)
        if found is None:
            try:
                blob = self._dumps((routine, chain))
            except Exception as exc:
                if chain is not None:
                    self._check_middleware(routine_id, chain)
                raise ShippingError(
                    f"Routine '{routine_id}' ({type(routine).__name__}) cannot be sent to a "
                    f"worker process: {type(exc).__name__}: {exc}. Keep unpicklable objects "
                    "(locks, open files, clients) out of the routine's attributes, or create "
                    "them lazily in the handler; or use the thread executor.",
                    routine_id=routine_id,
                    what="routine",
                ) from exc
            found = self._blobs[routine_id] = (blob, hashlib.sha1(blob).hexdigest())
        return found

    def _check_middleware(self, routine_id: str, chain: Chain) -> None:
        for mw in chain.layers:
            try:
                self._dumps(mw)
            except Exception as exc:
                name = describe(mw)
                raise ShippingError(
                    f"Middleware {name} of routine '{routine_id}' cannot be sent to a worker "
                    f"process: {type(exc).__name__}: {exc}. Middleware runs next to the "
                    "handler, so on the process and Dask executors it must be picklable: "
                    "use a function defined at module level or an instance of a module-level "
                    "class, not a lambda or a closure; or use the thread executor.",
                    routine_id=routine_id,
                    what=f"middleware {name}",
                ) from exc

    def call(self, act: Activation, job_id: str) -> RemoteCall:
        """A :class:`RemoteCall` for ``act``, checked to be shippable."""
        blob, digest = self.blob(act.routine_id, act.routine, act.chain)
        call = RemoteCall(act, job_id, blob, digest)
        try:
            self._dumps(call.data)
        except Exception as exc:
            raise self._data_error(act, call.data, exc) from exc
        return call

    def _data_error(self, act: Activation, data: dict[str, Any], exc: Exception) -> ShippingError:
        key = next((k for k, v in data.items() if not self._ships(v)), None)
        what = "the data" if key is None else f"data[{key!r}] = {data[key]!r:.80}"
        return ShippingError(
            f"Routine '{act.routine_id}' slot '{act.slot_name}': {what} cannot be sent to a "
            f"worker process ({type(exc).__name__}: {exc}). Send plain data (dicts, lists, "
            "numbers, strings) between routines, or use the thread executor.",
            routine_id=act.routine_id,
            what="data" if key is None else f"data[{key!r}]",
        )

    def _ships(self, value: Any) -> bool:
        try:
            self._dumps(value)
        except Exception:
            return False
        return True
