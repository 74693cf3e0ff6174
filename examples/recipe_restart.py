"""Recipe: a long job that survives a restart, checkpointed in a SQLite store.

A nightly job loads 200 rows into a warehouse table, one call per row. It
runs in a worker process against a :class:`~flowforge.store.SQLiteStore`,
which checkpoints the job as it runs. Part-way through, this script kills
the worker with SIGKILL, as an out-of-memory killer or a power cut would:
no cleanup, no chance to pause. Then a new worker (the restarted service)
finds the job in the store, still marked ``running``, and resumes it.

The warehouse is a table outside FlowForge, so the handler writes each row
under its activation id: a call that was in flight at the kill runs again
after the restart, with the same id, and the row is written once.

Run it with ``python examples/recipe_restart.py``. The script starts itself
twice as a worker (``run`` and ``resume``). ``docs/cookbook/restart.rst``
explains it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from flowforge import Flow, JobState, Routine, current_activation
from flowforge.store import JobNotFoundError, SQLiteStore

JOB_ID = "nightly-2026-11-22"
ROWS = 200
#: How long a worker's lease on the job lasts without a heartbeat (the default is 30 s).
LEASE_SECONDS = 1.0


# [routines]
class Extract(Routine):
    """Entry: emits ``row(key, value)`` for ``count`` rows."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.extract)
        self.define_event("row", ["key", "value"])

    def extract(self, count: int) -> None:
        for key in range(count):
            self.emit("row", key=key, value=key * key)


class Load(Routine):
    """Writes each row to the warehouse database named by the ``warehouse`` config.

    The row is written under the call's activation id, so a call that runs
    again after a crash writes nothing new.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.load)

    def load(self, key: int, value: int) -> None:
        activation = current_activation()
        assert activation is not None
        time.sleep(0.005)  # the warehouse is slow
        with warehouse(self.get_config("warehouse")) as db:
            db.execute("INSERT INTO calls VALUES (?)", (key,))
            db.execute(
                "INSERT OR IGNORE INTO rows VALUES (?, ?, ?)",
                (activation.activation_id, key, value),
            )
        self._stats["rows"] = self._stats.get("rows", 0) + 1


@contextlib.contextmanager
def warehouse(path: str) -> Iterator[sqlite3.Connection]:
    """The warehouse database; what is done inside is committed on the way out."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
        yield db


# [/routines]


# [build]
def build_flow(warehouse_path: str) -> Flow:
    flow = Flow(flow_id="nightly")
    flow.add_routine(Extract(), "extract")
    flow.add_routine(Load(), "load")
    flow.connect("extract", "row", "load", "input")
    flow.get_routine("load").set_config(warehouse=warehouse_path)
    return flow


# [/build]


# [worker]
def run_job(store_path: str, warehouse_path: str) -> None:
    """The worker: run the nightly job, checkpointed in the store.

    It holds the job's lease while it runs; a short lease (1 s instead of
    30) lets the restarted worker take the job over soon after a crash.
    """
    with SQLiteStore(store_path, lease_seconds=LEASE_SECONDS) as store:
        flow = build_flow(warehouse_path)
        flow.execute("extract", {"count": ROWS}, job_state=JobState(job_id=JOB_ID), store=store)


def resume_job(store_path: str) -> None:
    """The restarted worker: rebuild the flow from the store and resume the job."""
    with SQLiteStore(store_path, lease_seconds=LEASE_SECONDS) as store:
        # The killed worker's lease must expire first; until then resuming is refused.
        while (lease := store.lease(JOB_ID)) is not None and lease.live():
            time.sleep(0.1)
        flow = store.load_flow("nightly")
        job = flow.resume(store.load(JOB_ID), store=store)
    print(f"restarted worker: job {job.status}, stats {job.get_routine_state('load')['stats']}")


# [/worker]


# [crash]
def start_and_kill(store_path: str, warehouse_path: str, after_rows: int) -> None:
    """Start a worker, wait until the store has ``after_rows`` rows committed, kill it."""
    worker = subprocess.Popen([sys.executable, __file__, "run", store_path, warehouse_path])
    with SQLiteStore(store_path) as store:
        while committed_rows(store) < after_rows:
            if worker.poll() is not None:
                raise SystemExit(f"the worker ended early (exit status {worker.returncode})")
            time.sleep(0.02)
    worker.kill()  # SIGKILL on POSIX: the worker gets no chance to clean up
    worker.wait()
    print("killed the worker part-way through the job")


def committed_rows(store: SQLiteStore) -> int:
    """How many rows the job's last commit says were loaded (0 before it starts)."""
    try:
        job = store.load(JOB_ID)
    except JobNotFoundError:
        return 0
    rows: int = job.get_routine_state("load")["stats"].get("rows", 0)
    return rows


# [/crash]


def report(store_path: str) -> None:
    # [report]
    with SQLiteStore(store_path) as store:
        (summary,) = store.list_jobs(flow_id="nightly")
        print(f"in the store: {summary.job_id} is {summary.status}, {summary.pending} pending")
    # [/report]


def check(warehouse_path: str) -> None:
    # [check]
    with warehouse(warehouse_path) as db:
        keys = [key for (key,) in db.execute("SELECT key FROM rows ORDER BY key")]
        calls = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    print(f"warehouse: {len(keys)} row(s), each exactly once: {keys == list(range(ROWS))}")
    print(f"calls that ran again after the kill: {calls - ROWS}")
    # [/check]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store_path, warehouse_path = str(Path(tmp, "jobs.db")), str(Path(tmp, "warehouse.db"))
        with warehouse(warehouse_path) as db:
            db.execute("CREATE TABLE rows (activation_id TEXT PRIMARY KEY, key, value)")
            db.execute("CREATE TABLE calls (key)")
        # [run]
        start_and_kill(store_path, warehouse_path, after_rows=50)
        report(store_path)
        resumed = subprocess.run([sys.executable, __file__, "resume", store_path], check=False)
        if resumed.returncode != 0:
            raise SystemExit("the restarted worker failed")
        check(warehouse_path)
        # [/run]


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run_job(*sys.argv[2:4])
    elif sys.argv[1:2] == ["resume"]:
        resume_job(sys.argv[2])
    else:
        main()
