"""Where handler calls run.

``"sequential"`` (the default) runs every call on the job's own thread, one
after another, in a deterministic order: messages are processed first in,
first out, and the messages one call emits are queued in emit order, each
event's connections in the order they were made (breadth-first).

``"thread"`` runs calls on a pool of ``max_workers`` threads.

``"process"`` runs calls in ``max_workers`` worker processes (CPU-bound
handlers); routines and message data must be picklable.

``"dask"`` (the ``flowforge[dask]`` extra) runs calls on a Dask cluster:
``DaskExecutor(address)`` uses a running scheduler, ``DaskExecutor()``
starts a local cluster of worker processes.

The names live in one registry here, which ``Flow(executor=...)``, flow
files and the CLI share: :func:`executor_kinds` lists them and
:func:`create_executor` builds one, importing an optional extra's module only
then (a missing extra raises :class:`~flowforge.errors.MissingExtraError`
naming what to ``pip install``). Every executor runs a call through
:func:`~flowforge.runtime.activation.invoke`, here or in a worker, and knows
of the job only the activation's frozen
:class:`~flowforge.runtime.activation.CallContext`.

With every parallel executor the job's own thread stays the only one that
touches its state: it hands calls out, at most ``max_concurrency`` of one
routine at a time across all workers, and applies each result when it comes
back. A call whose worker died is sent again (up to 3 times).

What a timeout can interrupt: the sequential and thread executors cannot stop
a running Python function, so a call past its timeout is failed and
abandoned (it keeps running in the background; whatever it does later is
discarded); it keeps its place in the routine's ``max_concurrency`` until it
really returns. ``async def`` handlers are cancelled at their next ``await``. The
process executor interrupts the call inside its worker (a timer signal raises
in the handler; a call blocked inside C code is interrupted when it returns
to Python). On Dask the call is abandoned on its worker like a thread.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import pickle
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from ..errors import DefinitionError, MissingExtraError, quoted
from .activation import (
    Activation,
    Outcome,
    enable_interrupting_timeouts,
    failed,
    invoke,
)
from .remote import RemoteResult, Shipper, run_remote

if TYPE_CHECKING:
    from ..routine import Routine
    from .chain import Chain


class WorkerLost(Exception):
    """The worker running a call went away; the call must be sent again."""


class Session(Protocol):
    """One job's use of an executor."""

    def submit(self, act: Activation) -> Any:
        """Start ``act`` (through :func:`~flowforge.runtime.activation.invoke`,
        here or in a worker); returns a future with ``add_done_callback``.

        What the session may know of the job is ``act.call``, a frozen
        :class:`~flowforge.runtime.activation.CallContext`."""

    def outcome(self, future: Any) -> Outcome:
        """The finished call's :class:`Outcome`; :class:`WorkerLost` to send it again.

        The scheduler takes each finished future's outcome once, and calls
        :meth:`flush` again before it next waits."""

    def flush(self) -> None:
        """Send what :meth:`submit` may have held back (the scheduler is about to wait).

        A session may go on holding calls while others it sent are still out:
        each of those coming back makes the scheduler wait, and flush, again.
        """

    def close(self) -> None:
        """Release what the session holds."""


class Executor:
    """Base of the executors; ``inline`` ones run calls on the job's thread."""

    inline: ClassVar[bool] = True
    name: ClassVar[str] = "sequential"

    def start(
        self, routines: Mapping[str, Routine], middleware: Mapping[str, Chain] | None = None
    ) -> Session | None:
        """Start what one job needs, or ``None`` for inline executors.

        ``middleware`` holds the middleware chain of each routine that has
        one (it is passed only when some routine has one). Calls carry their
        chain (``act.chain``), so only an executor that sends calls
        elsewhere needs it here: to check that it can send it before the
        job starts, and to send it with the routine.
        """
        return None

    def settings(self) -> dict[str, Any]:
        """The executor as saved in a flow file."""
        return {"kind": self.name}

    def close(self) -> None:
        """Release pools or clusters kept between jobs (they restart when needed)."""


class SequentialExecutor(Executor):
    """Run calls one at a time on the job's thread (the default; deterministic)."""


def _workers(max_workers: int | None, default: int) -> int:
    if max_workers is None:
        return default
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise DefinitionError(f"max_workers must be an int >= 1, got {max_workers!r}.")
    return max_workers


class ThreadExecutor(Executor):
    """Run calls on a pool of ``max_workers`` threads (default 8).

    The pool starts with the first job that needs it and is kept for later
    jobs (jobs running at the same time share it) until :meth:`close`.
    """

    inline = False
    name = "thread"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _workers(max_workers, 8)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(
        self, routines: Mapping[str, Routine], middleware: Mapping[str, Chain] | None = None
    ) -> Session:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="flowforge-worker"
                )
            return _ThreadSession(self._pool)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def settings(self) -> dict[str, Any]:
        return {"kind": self.name, "max_workers": self.max_workers}


class _ThreadSession:
    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.pool = pool

    def submit(self, act: Activation) -> Any:
        return self.pool.submit(invoke, act)

    def outcome(self, future: Any) -> Outcome:
        result: Outcome = future.result()
        return result

    def flush(self) -> None:
        """Every call was sent at once."""

    def close(self) -> None:
        """The pool stays for the next job."""


class ProcessExecutor(Executor):
    """Run calls in ``max_workers`` worker processes (default: one per CPU).

    Workers are started with the ``forkserver`` method where available (so
    they do not inherit the parent's threads) when the first job needs them,
    and kept for later jobs until :meth:`close` (or :meth:`Flow.close
    <flowforge.Flow.close>`). Routines are pickled once per job and cached by
    each worker.
    """

    inline = False
    name = "process"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _workers(max_workers, multiprocessing.cpu_count())
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(
        self, routines: Mapping[str, Routine], middleware: Mapping[str, Chain] | None = None
    ) -> Session:
        shipper = Shipper(pickle.dumps)
        shipper.check_routines(routines, middleware or {})
        return _ProcessSession(self, shipper)

    def pool(self, broken: Any = None) -> concurrent.futures.ProcessPoolExecutor:
        """The worker pool; a new one if ``broken`` is the current (broken) pool."""
        with self._lock:
            if self._pool is not None and self._pool is broken:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.max_workers,
                    mp_context=_context(),
                    initializer=enable_interrupting_timeouts,
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def settings(self) -> dict[str, Any]:
        return {"kind": self.name, "max_workers": self.max_workers}


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _ProcessSession:
    def __init__(self, executor: ProcessExecutor, shipper: Shipper) -> None:
        self.executor = executor
        self.shipper = shipper

    def submit(self, act: Activation) -> Any:
        remote = self.shipper.call(act, act.call.job_id)
        pool = self.executor.pool()
        try:
            return pool.submit(run_remote, remote, act.error_handler)
        except concurrent.futures.BrokenExecutor:
            return self.executor.pool(broken=pool).submit(run_remote, remote, act.error_handler)

    def outcome(self, future: Any) -> Outcome:
        return remote_outcome(future, (concurrent.futures.BrokenExecutor,))

    def flush(self) -> None:
        """Every call was sent at once."""

    def close(self) -> None:
        """The pool stays for the next job."""


def remote_outcome(future: Any, lost: tuple[type[BaseException], ...]) -> Outcome:
    """The :class:`Outcome` of a remote call's future.

    Raises:
        WorkerLost: the worker died (an exception in ``lost``).
    """
    try:
        result: RemoteResult = future.result()
    except lost as exc:
        raise WorkerLost(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the call could not run remotely at all
        return failed(exc)
    return result.outcome()


# -- the registry: every executor kind, by name ----------------------------------------


@attrs.frozen
class ExecutorKind:
    """A name :func:`create_executor` accepts.

    Attributes:
        name: The name (``Flow(executor=name)``, ``kind:`` in flow files,
            ``--executor`` on the command line).
        factory: ``"module:Class"``, imported when the kind is first used,
            so an optional extra is needed only by those who use it.
        options: The keyword options the executor takes.
        extra: The ``flowforge[...]`` extra its module needs, if any.
    """

    name: str
    factory: str
    options: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def pool(self) -> bool:
        """True when ``max_workers`` sizes it."""
        return "max_workers" in self.options


_KINDS: dict[str, ExecutorKind] = {
    kind.name: kind
    for kind in (
        ExecutorKind("sequential", f"{__name__}:SequentialExecutor"),
        ExecutorKind("thread", f"{__name__}:ThreadExecutor", ("max_workers",)),
        ExecutorKind("process", f"{__name__}:ProcessExecutor", ("max_workers",)),
        ExecutorKind(
            "dask", "flowforge.runtime.dask:DaskExecutor", ("address", "max_workers"), "dask"
        ),
    )
}


def executor_kinds() -> tuple[str, ...]:
    """The executor names :func:`create_executor` accepts, in order of weight."""
    return tuple(_KINDS)


def executor_kind(kind: str) -> ExecutorKind:
    """The registry entry of ``kind``.

    Raises:
        DefinitionError: ``kind`` is not an executor name.
    """
    found = _KINDS.get(kind)
    if found is None:
        raise DefinitionError(
            f"Unknown executor {kind!r}. Use one of {quoted(_KINDS)} or an Executor instance."
        )
    return found


def create_executor(kind: str, **options: Any) -> Executor:
    """A new executor of the named ``kind``; options left ``None`` are not given.

    Raises:
        DefinitionError: unknown kind, or an option the kind does not take.
        MissingExtraError: the kind's extra is not installed (the message
            says what to ``pip install``).
    """
    entry = executor_kind(kind)
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(given.keys() - set(entry.options))
    if unknown:
        raise DefinitionError(
            f"The {kind!r} executor takes no option {unknown[0]!r}; "
            f"its options are: {quoted(entry.options)}."
        )
    module_name, _, class_name = entry.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if entry.extra is None:
            raise
        raise MissingExtraError(
            f"The {kind!r} executor needs the {entry.extra!r} extra, which is not installed "
            f'(no module {exc.name!r}). Install it: pip install "flowforge[{entry.extra}]"',
            extra=entry.extra,
            module=exc.name or module_name,
        ) from exc
    executor: Executor = getattr(module, class_name)(**given)
    return executor


def make_executor(
    kind: str | Executor | None, max_workers: int | None = None, **options: Any
) -> Executor:
    """An :class:`Executor` from a name (see :func:`create_executor`) or an instance.

    ``max_workers`` is ignored by executors without a pool, so a flow may set
    it before choosing one.
    """
    if isinstance(kind, Executor):
        return kind
    entry = executor_kind(kind or "sequential")
    if entry.pool:
        options["max_workers"] = max_workers
    return create_executor(entry.name, **options)
