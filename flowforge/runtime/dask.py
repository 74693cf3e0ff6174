"""Running handler calls on a Dask cluster (the ``flowforge[dask]`` extra).

``DaskExecutor("tcp://scheduler:8786")`` uses a running cluster;
``DaskExecutor()`` starts a local cluster of ``max_workers`` worker
processes when the first job needs it and keeps it until
:meth:`DaskExecutor.close` (or :meth:`Flow.close <flowforge.Flow.close>`). Routines are pickled with
cloudpickle (as Dask does), once per job, and cached by each worker. Dask
itself re-runs a call whose worker died; FlowForge applies a call's result
only once, when it comes back. Results are fetched in batches while the
workers have queued work (see :class:`_DaskSession`), so a finished call's
result may reach the job up to :data:`HOLD_AT_MOST` seconds later.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import multiprocessing
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import cloudpickle
import dask
from distributed import Client, LocalCluster
from distributed.client import FutureCancelledError

from ..errors import DefinitionError
from .executors import Executor, Session, remote_outcome
from .remote import RemoteCall, RemoteResult, Shipper, run_remote

if TYPE_CHECKING:
    from ..routine import Routine
    from .activation import Activation, Outcome
    from .chain import Chain


class DaskExecutor(Executor):
    """Run calls on Dask workers.

    Args:
        address: A running scheduler's address; ``None`` starts a local
            cluster on first use and keeps it until :meth:`close`.
        max_workers: Worker processes of the local cluster (default: one
            per CPU).
    """

    inline = False
    name = "dask"

    def __init__(self, address: str | None = None, max_workers: int | None = None) -> None:
        if address is not None and not isinstance(address, str):
            raise DefinitionError(f"address must be a scheduler address string, got {address!r}.")
        self.address = address
        self.max_workers = max_workers or multiprocessing.cpu_count()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()

    def start(
        self, routines: Mapping[str, Routine], middleware: Mapping[str, Chain] | None = None
    ) -> Session:
        shipper = Shipper(cloudpickle.dumps)
        shipper.check_routines(routines, middleware or {})
        return _DaskSession(self.client(), shipper)

    def client(self) -> Client:
        """The Dask client, connecting (or starting the local cluster) on first use."""
        with self._lock:
            if self._client is None:
                cluster = None
                address = self.address
                if address is None:
                    # The workers' sampling profiler costs CPU that handlers need.
                    with dask.config.set({"distributed.worker.profile.enabled": False}):
                        cluster = LocalCluster(
                            n_workers=self.max_workers,
                            threads_per_worker=1,
                            processes=True,
                            dashboard_address=":0",
                        )
                    address = cluster.scheduler_address
                self._client = Client(address, set_as_default=False)
                self._cluster = cluster
                self._finalizer = weakref.finalize(self, _shut, self._client, cluster)
                # Registered after distributed's own exit hooks, so it runs before them.
                atexit.register(self._finalizer)
            return self._client

    def close(self) -> None:
        with self._lock:
            finalizer, self._client, self._cluster = self._finalizer, None, None
            self._finalizer = None
        if finalizer is not None:
            finalizer()

    def settings(self) -> dict[str, Any]:
        return {"kind": self.name, "address": self.address, "max_workers": self.max_workers}


def _shut(client: Client, cluster: LocalCluster | None) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


Part = list[tuple[RemoteCall, Any, concurrent.futures.Future[Any]]]


class _DaskSession:
    """Sends short calls in batches, other calls one task each, in few messages;
    fetches results in few round trips.

    Dask's own cost per task (a few milliseconds on a small machine) would
    eat the gain of a second worker if every short call were its own task,
    so calls of routines whose calls came back in less than
    :data:`BATCH_BELOW` seconds go in one task per worker for what is ready
    at once. Other calls (also those of a routine not yet seen) go one per
    task: batching them would gain little and could leave one worker with a
    long batch while the other idles.

    Every message costs CPU in this process (which also hosts a local
    cluster's scheduler), and on a small machine that CPU is taken from the
    workers. Fetching a task's result is a round trip through the scheduler,
    so results are fetched in batches: while more than :data:`BACKLOG`
    tasks per worker are still running, a finished task's result waits to
    be fetched with the next ones (the workers have queued work meanwhile,
    so nothing waits for it), at most :data:`HOLD_AT_MOST` seconds. Sending
    is batched the same way: what is ready goes in one message, and while
    more than :data:`BACKLOG` tasks per worker are running, newly ready
    calls wait to go with the next ones. The scheduler calls :meth:`flush`
    whenever it is about to wait, and every result that comes back makes it
    wait again, so held calls always go out before the workers run dry.

    Each task is fetched by exactly one batch, so each call's result reaches
    the scheduler once; a task that failed (worker lost, cancelled) fails
    its calls.
    """

    def __init__(self, client: Client, shipper: Shipper) -> None:
        self.client = client
        self.shipper = shipper
        self._ready: Part = []
        self._workers = max(1, len(client.scheduler_info().get("workers", {})))
        #: Routines whose calls took less than BATCH_BELOW seconds (and none more).
        self._short: set[str] = set()
        self._long: set[str] = set()
        #: Tasks sent and not finished; changed from Dask's thread too.
        self._running = 0
        #: Finished tasks whose results wait to be fetched with the next ones.
        self._held: list[tuple[Part, Any]] = []
        self._timer: threading.Timer | None = None
        #: Results handed to the scheduler that it has not taken (outcome) yet.
        self._unread = 0
        self._closed = False
        self._lock = threading.Lock()

    def submit(self, act: Activation) -> Any:
        remote = self.shipper.call(act, act.call.job_id)
        placeholder: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._ready.append((remote, act.error_handler, placeholder))
        return placeholder

    def flush(self) -> None:
        if not self._ready:
            return
        with self._lock:
            if self._busy() or self._unread:
                return
        ready, self._ready = self._ready, []
        short = [item for item in ready if item[0].routine_id in self._short]
        parts = [[item] for item in ready if item[0].routine_id not in self._short]
        batches = min(self._workers, len(short))
        parts += [short[i::batches] for i in range(batches)]
        self._send(parts)

    def _busy(self) -> bool:
        """Whether the workers have work queued beyond what they run (under the lock)."""
        return self._running > BACKLOG * self._workers

    def _send(self, parts: list[Part]) -> None:
        with self._lock:
            self._running += len(parts)
        tasks = self.client.map(
            run_remote_batch,
            [[(call, handler) for call, handler, _ in part] for part in parts],
            pure=False,
        )
        for part, task in zip(parts, tasks, strict=True):
            task.add_done_callback(functools.partial(self._finished, part))

    def outcome(self, future: Any) -> Outcome:
        with self._lock:
            self._unread -= 1
        return remote_outcome(future, (FutureCancelledError, OSError))

    def close(self) -> None:
        """Drop what is still held or out (no one reads it any more); the client
        and cluster stay for the next job."""
        with self._lock:
            self._closed = True
            self._take_held()

    def _finished(self, part: Part, task: Any) -> None:
        """A task is done (on Dask's callback thread): fetch now, or hold it."""
        with self._lock:
            if self._closed:
                return
            self._running -= 1
            self._held.append((part, task))
            if self._busy():
                if self._timer is None:
                    self._timer = threading.Timer(HOLD_AT_MOST, self._overdue)
                    self._timer.daemon = True
                    self._timer.start()
                return
            batch = self._take_held()
        self._fetch(batch)

    def _overdue(self) -> None:
        with self._lock:
            batch = self._take_held()
        self._fetch(batch)

    def _take_held(self) -> list[tuple[Part, Any]]:
        """Every held task, each taken once (under the lock)."""
        batch, self._held = self._held, []
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        return batch

    def _fetch(self, batch: list[tuple[Part, Any]]) -> None:
        """Fetch the results of ``batch`` in one round trip and settle their calls."""
        finished: list[tuple[Part, Any]] = []
        others: list[tuple[Part, Any]] = []
        for item in batch:
            (finished if item[1].status == "finished" else others).append(item)
        if finished:
            try:
                results = self.client.gather([task for _, task in finished])
            except BaseException:  # settled one by one, each with its own error
                others += finished
            else:
                for (part, _), result in zip(finished, results, strict=True):
                    self._settle(part, result)
        for part, task in others:
            self._settle_alone(part, task)

    def _settle_alone(self, part: Part, task: Any) -> None:
        if task.status in ("pending", "lost"):  # its data was lost: Dask runs it again
            with self._lock:
                self._running += 1
            task.add_done_callback(functools.partial(self._finished, part))
            return
        try:
            results: list[RemoteResult] = task.result()
        except BaseException as exc:  # the task itself failed (worker lost, cancelled)
            self._deliver(len(part))
            for *_, placeholder in part:
                placeholder.set_exception(exc)
            return
        self._settle(part, results)

    def _settle(self, part: Part, results: list[RemoteResult]) -> None:
        self._deliver(len(part))
        for (call, _, placeholder), result in zip(part, results, strict=True):
            self._learn(call.routine_id, sum(result.durations))
            placeholder.set_result(result)

    def _deliver(self, count: int) -> None:
        """Count results about to reach the scheduler: until it has taken them all,
        it comes back to :meth:`flush`, so ready calls wait to go together."""
        with self._lock:
            self._unread += count

    def _learn(self, routine_id: str, seconds: float) -> None:
        if seconds >= BATCH_BELOW:
            self._long.add(routine_id)
            self._short.discard(routine_id)
        elif routine_id not in self._long:
            self._short.add(routine_id)


#: While more tasks than this per worker are running, newly ready calls wait to
#: be sent, and finished tasks' results to be fetched, with the next ones (the
#: workers have queued work meanwhile).
BACKLOG = 2
#: The longest a finished task's result waits to be fetched with others (seconds).
HOLD_AT_MOST = 0.5
#: Calls shorter than this (seconds) are batched; longer ones go one per task.
BATCH_BELOW = 0.02


def run_remote_batch(calls: list[tuple[RemoteCall, Any]]) -> list[RemoteResult]:
    """Run several activations in one Dask task, one after another."""
    return [run_remote(call, handler) for call, handler in calls]
