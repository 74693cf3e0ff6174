"""``flowforge submit FLOW`` and ``flowforge worker``: queued jobs and the processes that run them.

``submit`` stores a job with status ``queued`` (and its flow's definition,
with where its routine classes came from) and prints its id. ``worker``
claims queued jobs, one per free slot of ``--concurrency``, and runs each
under a lease it renews, so several workers on one store never run the same
job at once. A worker killed outright leaves its jobs ``running`` with a
lease that lapses after ``--lease-seconds``; another worker then claims them
and resumes them from their last commit, so every message is delivered
exactly once. SIGTERM (or Ctrl-C) makes a worker stop claiming, pause its
running jobs (running calls finish first), put them back in the queue for
another worker, and exit 0.

A job's flow comes from the flow files given with ``--flows`` (matched by
flow id) or else from the definition the store kept, its routine modules
imported under the same allow-list rules as ``flowforge resume``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import click

from ..errors import JobStateError
from ..flow import Flow
from ..job_state import JobState, JobStatus
from ..store import Store, StoreError, parse_store_url
from ._common import (
    CommandError,
    allow_option,
    err,
    example,
    flow_argument,
    guarded,
    lease_option,
    param_option,
    quiet_option,
    store_option,
)
from ._loading import entry_params, open_flow, resolve_entry
from ._store import open_store, shown, stored_flow

#: The reason a worker's job is paused with when the worker stops; it goes back to the queue.
STOP_REASON = "worker stopping"
FLOW_SUFFIXES = (".yaml", ".yml", ".json")
_LOADING = threading.Lock()


@click.command(
    "submit",
    short_help="Queue a job of a flow file for the workers.",
    epilog=example(
        "flowforge submit report.yaml --param month=2024-05 --store jobs.db",
        "flowforge worker --store jobs.db",
    ),
)
@flow_argument
@param_option
@click.option("--job-id", help="The new job's id (default: a new random one).")
@store_option
@allow_option
@guarded
def submit(
    flow_file: str, param: Sequence[str], job_id: str | None, store: str, allow: Sequence[str]
) -> None:
    """Queue a job of FLOW_FILE, with status queued, and print its id.

    The job starts at the flow file's entry with its params, overridden by
    --param. Nothing runs here: a `flowforge worker` on the same store
    claims the job and runs it.
    """
    loaded = open_flow(flow_file, allow)
    flow = loaded.flow
    routine_id, slot = resolve_entry(flow, None)
    params = entry_params(flow, routine_id, param, None)
    job = JobState(job_id=job_id, flow_id=flow.flow_id) if job_id else None
    with open_store(store) as job_store:
        queued = flow.submit(
            params, store=job_store, entry_routine_id=routine_id, entry_slot=slot, job_state=job
        )
    click.echo(queued.job_id)


@click.command(
    "worker",
    short_help="Run queued jobs from the store.",
    epilog=example(
        "flowforge worker --store postgresql://flowforge@db/flowforge --concurrency 4",
        "flowforge worker --store jobs.db --flows flows/ --drain",
    ),
)
@store_option
@click.option(
    "--flows",
    "flow_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=True),
    metavar="DIR",
    help="A directory of flow files (or one flow file) to run jobs with (repeatable); "
    "other jobs use the flow the store kept.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many jobs this worker runs at once.",
)
@lease_option
@click.option(
    "--poll",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds between looks for queued jobs when there are none.",
)
@click.option("--drain", is_flag=True, help="Exit once no job is left to claim.")
@allow_option
@quiet_option
@guarded
def worker(
    store: str,
    flow_dirs: Sequence[str],
    concurrency: int,
    lease_seconds: float,
    poll: float,
    drain: bool,
    allow: Sequence[str],
    quiet: bool,
) -> None:
    """Claim queued jobs from the store and run them, until SIGTERM or Ctrl-C.

    Each job runs under a lease that the worker renews; SIGTERM pauses the
    running jobs, puts them back in the queue and exits 0. Exit status 0
    on a clean stop, 2 for bad usage.
    """
    flows = flow_files(flow_dirs, allow)
    options: dict[str, Any] = {"lease_seconds": lease_seconds}
    if _kind(store) == "postgresql":
        options["pool_size"] = concurrency + 2
    with open_store(store, **options) as job_store:
        runner = Worker(job_store, flows, tuple(allow), concurrency, poll, drain, quiet)
        if not quiet:
            err(
                f"Worker {job_store.owner} on {shown(store)}: up to {concurrency} job(s) at "
                f"once. SIGTERM or Ctrl-C stops it."
            )
        runner.run()


def _kind(url: str) -> str:
    try:
        return parse_store_url(url).kind
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def flow_files(places: Sequence[str], allow: Sequence[str]) -> dict[str, Path]:
    """The flow files in ``places``, by flow id (each is loaded once to check it)."""
    found: dict[str, Path] = {}
    for place in map(Path, places):
        files = [place] if place.is_file() else sorted(place.iterdir())
        for path in files:
            if path.suffix in FLOW_SUFFIXES:
                flow_id = open_flow(str(path), allow).flow.flow_id
                found.setdefault(flow_id, path)
    return found


@attrs.define
class Worker:
    """Claims jobs from ``store`` and runs them on ``concurrency`` threads."""

    store: Store
    flows: dict[str, Path]
    allow: tuple[str, ...]
    concurrency: int
    poll: float
    drain: bool
    quiet: bool
    _stopping: threading.Event = attrs.field(init=False, factory=threading.Event)
    _running: dict[str, tuple[Flow, JobState]] = attrs.field(init=False, factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _threads: list[threading.Thread] = attrs.field(init=False, factory=list)

    def run(self) -> None:
        """Run until stopped by SIGTERM or Ctrl-C (or, with ``drain``, until the queue is empty)."""
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            self.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self) -> None:
        """Start the ``concurrency`` claiming threads and return (``flowforge serve`` runs them)."""
        self._threads = [
            threading.Thread(target=self._loop, name=f"flowforge-worker-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        """Wait for the threads :meth:`start` started to end."""
        for thread in self._threads:
            while thread.is_alive():
                thread.join(0.1)

    def stop(self) -> None:
        """Stop claiming, and pause the running jobs (they go back to the queue)."""
        if not self.quiet:
            err(f"Worker {self.store.owner}: stopping; pausing its running jobs.")
        self._stopping.set()
        with self._lock:
            running = list(self._running.values())
        for flow, job in running:
            with contextlib.suppress(JobStateError):  # it ended meanwhile
                flow.pause(job, STOP_REASON)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim()
            except StoreError as exc:
                err(f"Worker {self.store.owner}: cannot claim a job: {exc}")
                job = None
            if job is None:
                if self.drain:
                    return
                self._stopping.wait(self.poll)
                continue
            self._run(job)

    def _run(self, job: JobState) -> None:
        try:
            flow = self._flow_for(job)
        except CommandError as exc:
            self._fail(job, str(exc))
            return
        with self._lock:
            self._running[job.job_id] = (flow, job)
        try:
            if self._stopping.is_set():
                self.store.release(job.job_id)
                return
            self._say(f"job {job.job_id} of flow '{job.flow_id}': claimed ({job.status})")
            with flow:
                done = flow.resume(job, store=self.store)
            self._finished(done)
        except Exception as exc:  # one job's trouble must not stop the worker
            err(f"Worker {self.store.owner}: job {job.job_id} could not run: {exc}")
        finally:
            with self._lock:
                self._running.pop(job.job_id, None)

    def _flow_for(self, job: JobState) -> Flow:
        # One at a time: a thread importing a routine module must not let another
        # thread see the module half-initialized in sys.modules.
        with _LOADING:
            path = self.flows.get(str(job.flow_id))
            if path is not None:
                return open_flow(str(path), self.allow).flow
            return stored_flow(self.store, job, self.allow)

    def _finished(self, job: JobState) -> None:
        if job.status == JobStatus.PAUSED and job.reason == STOP_REASON:
            job.status = JobStatus.QUEUED
            self.store.save(job)
            self._say(f"job {job.job_id}: paused and put back in the queue")
            return
        self._say(f"job {job.job_id}: {job.status}")

    def _fail(self, job: JobState, reason: str) -> None:
        err(f"Worker {self.store.owner}: job {job.job_id} cannot run here: {reason}")
        job.status = JobStatus.FAILED
        job.reason = reason.splitlines()[0]
        job.finished_at = time.time()
        try:
            self.store.save(job)
        except StoreError as exc:
            err(f"Worker {self.store.owner}: job {job.job_id} could not be marked failed: {exc}")

    def _say(self, message: str) -> None:
        if not self.quiet:
            err(f"Worker {self.store.owner}: {message}")


COMMANDS = (submit, worker)
