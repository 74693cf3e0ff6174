"""Running handler calls on a Dask cluster (the ``flowforge[dask]`` extra).

``DaskExecutor("tcp://scheduler:8786")`` uses a running cluster;
``DaskExecutor()`` starts a local cluster of ``max_workers`` worker
processes when the first job needs it and keeps it until
:meth:`DaskExecutor.close` (or :meth:`Flow.close <flowforge.Flow.close>`). Routines are pickled with
cloudpickle (as Dask does), once per job, and cached by each worker. Dask
itself re-runs a call whose worker died; FlowForge applies a call's result
only once, when it comes back.
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


class _DaskSession:
    """Sends short calls in batches, other calls one task each.

    Dask's own cost per task (a few milliseconds on a small machine) would
    eat the gain of a second worker if every short call were its own task,
    so calls of routines whose calls came back in less than
    :data:`BATCH_BELOW` seconds go in one task per worker for what is ready
    at once. Other calls (also those of a routine not yet seen) go one per
    task: batching them would gain little and could leave one worker with a
    long batch while the other idles. The scheduler calls :meth:`flush`
    whenever it is about to wait, so a call never waits for a batch to fill.
    """

    def __init__(self, client: Client, shipper: Shipper) -> None:
        self.client = client
        self.shipper = shipper
        self._ready: list[tuple[RemoteCall, Any, concurrent.futures.Future[Any]]] = []
        self._workers = max(1, len(client.scheduler_info().get("workers", {})))
        #: Routines whose calls took less than BATCH_BELOW seconds (and none more).
        self._short: set[str] = set()
        self._long: set[str] = set()

    def submit(self, act: Activation) -> Any:
        remote = self.shipper.call(act, act.call.job_id)
        placeholder: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._ready.append((remote, act.error_handler, placeholder))
        return placeholder

    def flush(self) -> None:
        ready, self._ready = self._ready, []
        short = [item for item in ready if item[0].routine_id in self._short]
        for item in ready:
            if item[0].routine_id not in self._short:
                self._send([item])
        batches = min(self._workers, len(short))
        for i in range(batches):
            self._send(short[i::batches])

    def _send(self, part: list[tuple[RemoteCall, Any, concurrent.futures.Future[Any]]]) -> None:
        task = self.client.submit(
            run_remote_batch, [(call, handler) for call, handler, _ in part], pure=False
        )
        task.add_done_callback(functools.partial(self._settle, part))

    def outcome(self, future: Any) -> Outcome:
        return remote_outcome(future, (FutureCancelledError, OSError))

    def close(self) -> None:
        """The client and cluster stay for the next job."""

    def _settle(
        self, part: list[tuple[RemoteCall, Any, concurrent.futures.Future[Any]]], task: Any
    ) -> None:
        try:
            results: list[RemoteResult] = task.result()
        except BaseException as exc:  # the task itself failed (worker lost, cancelled)
            for *_, placeholder in part:
                placeholder.set_exception(exc)
            return
        for (call, _, placeholder), result in zip(part, results, strict=True):
            self._learn(call.routine_id, sum(result.durations))
            placeholder.set_result(result)

    def _learn(self, routine_id: str, seconds: float) -> None:
        if seconds >= BATCH_BELOW:
            self._long.add(routine_id)
            self._short.discard(routine_id)
        elif routine_id not in self._long:
            self._short.add(routine_id)


#: Calls shorter than this (seconds) are batched; longer ones go one per task.
BATCH_BELOW = 0.02


def run_remote_batch(calls: list[tuple[RemoteCall, Any]]) -> list[RemoteResult]:
    """Run several activations in one Dask task, one after another."""
    return [run_remote(call, handler) for call, handler in calls]
