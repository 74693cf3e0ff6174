"""A job that survives the death of its process.

Run it with ``python examples/durable_job.py``. The script starts itself
three times:

1. a worker runs a billing job on a :class:`~flowforge.store.SQLiteStore`
   and dies abruptly halfway through (``os._exit``: no cleanup, like
   ``kill -9``), right after billing order 6 and before that step is
   committed;
2. the script looks in the store: the job is still ``running``, with what
   was committed before the crash;
3. a second worker rebuilds the flow from the store, waits for the dead
   worker's lease on the job to expire, loads the job and resumes it to
   the end.

Billing is a side effect outside FlowForge (a row in a ledger database), so
the handler uses the activation id as an idempotency key: order 6 runs again
after the crash, under the same id, and the ledger keeps one row for it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from flowforge import Flow, Routine, current_activation
from flowforge.store import SQLiteStore

#: The worker that should die sets this to the order it dies after.
CRASH_AFTER: int | None = None


class Orders(Routine):
    """Emits one ``order`` per amount in ``amounts``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.start)
        self.define_event("order", ["order_id", "amount"])

    def start(self, amounts: list[int]) -> None:
        """Number the orders from 1."""
        for order_id, amount in enumerate(amounts, start=1):
            self.emit("order", order_id=order_id, amount=amount)


class Bill(Routine):
    """Charges each order once, in the ledger database named by the ``ledger`` config."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.charge)

    def charge(self, order_id: int, amount: int) -> None:
        """Record the charge under this activation's id; a repeat is ignored."""
        activation = current_activation()
        assert activation is not None
        with open_ledger(self.get_config("ledger")) as ledger:
            ledger.execute("INSERT INTO attempts VALUES (?)", (order_id,))
            ledger.execute(
                "INSERT OR IGNORE INTO charges VALUES (?, ?, ?)",
                (activation.activation_id, order_id, amount),
            )
        if order_id == CRASH_AFTER:
            os._exit(1)
        self._stats["billed"] = self._stats.get("billed", 0) + 1
        self._stats["amount"] = self._stats.get("amount", 0) + amount


@contextmanager
def open_ledger(path: str) -> Iterator[sqlite3.Connection]:
    """The ledger database; what is done inside is committed on the way out."""
    with closing(sqlite3.connect(path)) as db, db:
        yield db


def build_flow(ledger: str) -> Flow:
    """The billing flow; its jobs are checkpointed after every activation."""
    flow = Flow(flow_id="billing")
    flow.add_routine(Orders(), "orders")
    bill = Bill()
    bill.set_config(ledger=ledger)
    flow.add_routine(bill, "bill")
    flow.connect("orders", "order", "bill", "in")
    return flow


def first_worker(store_path: str, ledger: str) -> None:
    """Run the job, dying after billing order 6."""
    global CRASH_AFTER
    CRASH_AFTER = 6
    flow = build_flow(ledger)
    # A short lease (1 s, instead of 30) lets worker 2 take the job over soon after a crash.
    with SQLiteStore(store_path, durability="activation", lease_seconds=1) as store:
        store.save_flow(flow)
        flow.execute("orders", {"amounts": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]}, store=store)


def second_worker(store_path: str) -> None:
    """Rebuild the flow from the store and resume the interrupted job."""
    with SQLiteStore(store_path, durability="activation") as store:
        flow = store.load_flow("billing")
        (summary,) = store.list_jobs(flow_id="billing", status="running")
        # Worker 1 died holding the job's lease: the job can be resumed once it expires.
        while (lease := store.lease(summary.job_id)) is not None and lease.live():
            time.sleep(0.1)
        job = flow.resume(store.load(summary.job_id), store=store)
    print(f"worker 2 resumed the job: {job.status}")
    print(f"bill stats: {job.routine_states['bill']['stats']}")


def report(store_path: str) -> None:
    """What the store holds after the crash."""
    with SQLiteStore(store_path) as store:
        (summary,) = store.list_jobs(flow_id="billing")
        job = store.load(summary.job_id)
    billed = job.routine_states["bill"]["stats"].get("billed", 0)
    print(
        f"in the store: job {job.status}, {billed} order(s) billed, "
        f"{len(job.pending)} message(s) pending"
    )


def ledger_report(ledger: str) -> None:
    """How often each order ran, and how often it was charged."""
    with open_ledger(ledger) as db:
        charges = db.execute("SELECT order_id, amount FROM charges ORDER BY order_id").fetchall()
        runs = dict(db.execute("SELECT order_id, COUNT(*) FROM attempts GROUP BY order_id"))
    twice = [order for order, count in runs.items() if count > 1]
    print(
        f"ledger: {len(charges)} order(s) charged once each, total "
        f"{sum(amount for _, amount in charges)}"
    )
    print(f"order(s) that ran twice, charged once: {twice}")


def run_worker(*args: str) -> int:
    """Run this file as a worker process; its exit status."""
    done = subprocess.run([sys.executable, __file__, *args], check=False)
    return done.returncode


def main() -> None:
    """Crash a worker halfway, look at the store, resume in a new worker."""
    with tempfile.TemporaryDirectory() as tmp:
        store_path, ledger = str(Path(tmp, "jobs.db")), str(Path(tmp, "ledger.db"))
        with open_ledger(ledger) as db:
            db.execute("CREATE TABLE charges (activation_id TEXT PRIMARY KEY, order_id, amount)")
            db.execute("CREATE TABLE attempts (order_id)")
        status = run_worker("first", store_path, ledger)
        print(f"worker 1 died after billing order 6 (exit status {status})")
        report(store_path)
        if run_worker("second", store_path) != 0:
            raise SystemExit("worker 2 failed")
        ledger_report(ledger)


if __name__ == "__main__":
    if sys.argv[1:2] == ["first"]:
        first_worker(*sys.argv[2:4])
    elif sys.argv[1:2] == ["second"]:
        second_worker(sys.argv[2])
    else:
        main()
