"""Crash injection: jobs killed with SIGKILL at random moments resume exactly once.

Each case runs a stream job in a child process (this file, run as a script)
on a :class:`~flowforge.store.SQLiteStore` and kills it:

- the first child kills itself with SIGKILL just before the k-th SQL
  statement its store runs, k drawn at random over a whole run, so kills
  land before, inside and right after commits;
- for half the cases, a second child resumes the job and is killed by this
  process after it has delivered a random number of items, at whatever
  instruction it is then running;
- a last child resumes the job to the end.

The job's sink writes every item it processes to an outside SQLite table,
with the activation id, so what happened outside FlowForge is visible. The
test then checks: every item reached the sink, each through exactly one
message (all its writes carry one activation id: a call that ran again after
a crash kept its id), the routines' stats equal those of an uninterrupted
run, and the job ended ``completed``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from flowforge import Flow, JobState, JobStatus, Routine, current_activation
from flowforge.store import JobNotFoundError, SQLiteStore, Store

ITEMS = 120
SEEDS = range(10)
#: Group sizes the grouped cases draw from.
GROUP_SIZES = (2, 7, 40)
JOB_ID = "crash-job"
#: The children's lease: a killed child's job can be resumed this long after it died.
LEASE_SECONDS = 0.3

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


# -- the job ---------------------------------------------------------------------------


class Numbers(Routine):
    """Emits ``out(n=i)`` for ``i`` in ``range(count)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.start)
        self.define_event("out", ["n"])

    def start(self, count: int) -> None:
        """Stream the numbers."""
        for n in range(count):
            self.emit("out", n=n)


class Square(Routine):
    """Emits ``out(n, square)``; counts and sums what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.square)
        self.define_event("out", ["n", "square"])

    def square(self, n: int) -> None:
        """Square ``n``."""
        self._stats["seen"] = self._stats.get("seen", 0) + 1
        self._stats["total"] = self._stats.get("total", 0) + n
        self.emit("out", n=n, square=n * n)


class Split(Routine):
    """Routes even squares to ``even`` and odd ones to ``odd``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.split)
        self.define_event("even", ["n", "square"])
        self.define_event("odd", ["n", "square"])

    def split(self, n: int, square: int) -> None:
        """Count and route by parity."""
        side = "even" if square % 2 == 0 else "odd"
        self._stats[side] = self._stats.get(side, 0) + 1
        self.emit(side, n=n, square=square)


class Scale(Routine):
    """Emits ``out(n, value=square * factor)`` (config ``factor``)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.scale)
        self.define_event("out", ["n", "value"])

    def scale(self, n: int, square: int) -> None:
        """Scale and pass on."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", n=n, value=square * self.get_config("factor", 1))


class Sink(Routine):
    """Writes each item, with its activation id, to the ``effects`` database (config)."""

    def __init__(self) -> None:
        super().__init__()
        self.db: sqlite3.Connection | None = None
        self.define_slot("in", handler=self.write)

    def write(self, n: int, value: int) -> None:
        """Record the item outside FlowForge, then count it."""
        activation = current_activation()
        assert activation is not None
        if self.db is None:
            self.db = sqlite3.connect(self.get_config("effects"), isolation_level=None)
        self.db.execute("INSERT INTO writes VALUES (?, ?, ?)", (activation.activation_id, n, value))
        if self.get_config("progress", False):
            print("item", n, flush=True)
        self._stats["count"] = self._stats.get("count", 0) + 1
        self._stats["sum"] = self._stats.get("sum", 0) + value


def stream_flow(effects: str, progress: bool = False) -> Flow:
    """numbers -> square -> split -> (evens | odds) -> sink."""
    flow = Flow(flow_id="crash-stream")
    sink = Sink()
    sink.set_config(effects=effects, progress=progress)
    evens, odds = Scale(), Scale()
    evens.set_config(factor=2)
    odds.set_config(factor=3)
    for rid, routine in [
        ("numbers", Numbers()),
        ("square", Square()),
        ("split", Split()),
        ("evens", evens),
        ("odds", odds),
        ("sink", sink),
    ]:
        flow.add_routine(routine, rid)
    flow.connect("numbers", "out", "square", "in")
    flow.connect("square", "out", "split", "in")
    flow.connect("split", "even", "evens", "in")
    flow.connect("split", "odd", "odds", "in")
    flow.connect("evens", "out", "sink", "in")
    flow.connect("odds", "out", "sink", "in")
    return flow


def close_sink(flow: Flow) -> None:
    """Close the sink's connection to the outside database."""
    sink = flow.get_routine("sink")
    assert isinstance(sink, Sink)
    if sink.db is not None:
        sink.db.close()


def make_effects(path: str) -> None:
    """The outside database the sink writes to."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE writes (activation_id TEXT, n INTEGER, value INTEGER)")
        db.commit()


def open_store(path: str, durability: str, group_max: int) -> SQLiteStore:
    """The store of a case; grouping by count only, so runs are repeatable."""
    return SQLiteStore(
        path,
        durability=durability,
        group_max=group_max,  # type: ignore[arg-type]
        group_seconds=3600,
        lease_seconds=LEASE_SECONDS,
    )


def wait_for_lease(store: Store) -> None:
    """Wait until the killed child's lease on the job has expired (resuming needs it)."""
    while (lease := store.lease(JOB_ID)) is not None and lease.live():
        time.sleep(0.02)


# -- the child processes ------------------------------------------------------------------


def child_run(store_path: str, effects: str, durability: str, group_max: int, kill_at: int) -> None:
    """Start the job; SIGKILL this process just before the store's ``kill_at``-th statement."""
    flow = stream_flow(effects)
    store = open_store(store_path, durability, group_max)
    count = 0

    def trace(statement: str) -> None:
        nonlocal count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    store._conn.set_trace_callback(trace)
    flow.execute("numbers", {"count": ITEMS}, job_state=JobState(job_id=JOB_ID), store=store)


def child_resume(store_path: str, effects: str, durability: str, group_max: int) -> None:
    """Resume the job from the store (or start it, if it never got there)."""
    flow = stream_flow(effects, progress=True)
    with open_store(store_path, durability, group_max) as store:
        wait_for_lease(store)
        try:
            job = store.load(JOB_ID)
        except JobNotFoundError:
            job = flow.execute(
                "numbers", {"count": ITEMS}, job_state=JobState(job_id=JOB_ID), store=store
            )
        if job.status != JobStatus.COMPLETED:
            job = flow.resume(job, store=store)
    print("done", job.status, flush=True)


# -- the parent --------------------------------------------------------------------------


@functools.cache
def statements(durability: str, group_max: int) -> list[str]:
    """The SQL statements the store of an uninterrupted run executes, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        effects = str(Path(tmp, "effects.db"))
        make_effects(effects)
        seen: list[str] = []
        flow = stream_flow(effects)
        with open_store(str(Path(tmp, "jobs.db")), durability, group_max) as store:
            store._conn.set_trace_callback(seen.append)
            flow.execute(
                "numbers", {"count": ITEMS}, job_state=JobState(job_id=JOB_ID), store=store
            )
        close_sink(flow)
    return seen


def spawn(*args: Any) -> subprocess.Popen[str]:
    """This file as a child process."""
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_after_items(child: subprocess.Popen[str], items: int, rng: random.Random) -> None:
    """SIGKILL ``child`` once it has reported ``items`` items (if it lives that long)."""
    assert child.stdout is not None
    seen = 0
    for line in child.stdout:
        seen += line.startswith("item")
        if seen >= items:
            time.sleep(rng.uniform(0, 0.002))
            child.kill()
            break
    child.communicate(timeout=50)


def in_transaction(trace: list[str], index: int) -> bool:
    """Whether the statement at ``index`` runs inside a transaction, COMMIT included."""
    before = [s for s in trace[:index] if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]
    return bool(before) and before[-1] == "BEGIN IMMEDIATE"


def run_case(tmp: Path, durability: str, seed: int) -> dict[str, Any]:
    """Crash and resume one job; what the checks need."""
    rng = random.Random(f"{durability}-{seed}")
    group_max = 1 if durability == "activation" else rng.choice(GROUP_SIZES)
    trace = statements(durability, group_max)
    kill_at = rng.randint(1, len(trace))
    store, effects = str(tmp / "jobs.db"), str(tmp / "effects.db")
    make_effects(effects)
    first = spawn("run", store, effects, durability, group_max, kill_at)
    _, err = first.communicate(timeout=50)
    assert first.returncode == -signal.SIGKILL, f"seed {seed}: first child: {err}"
    kills = 1
    if rng.random() < 0.5:
        second = spawn("resume", store, effects, durability, group_max)
        kill_after_items(second, rng.randint(1, ITEMS // 2), rng)
        kills += second.returncode == -signal.SIGKILL
    last = spawn("resume", store, effects, durability, group_max)
    _, err = last.communicate(timeout=50)
    assert last.returncode == 0, f"seed {seed}: last child: {err}"
    with SQLiteStore(store) as opened:
        job = opened.load(JOB_ID)
    with closing(sqlite3.connect(effects)) as db:
        writes = db.execute("SELECT activation_id, n, value FROM writes").fetchall()
    return {
        "job": job,
        "writes": writes,
        "kills": kills,
        "in_commit": in_transaction(trace, kill_at - 1),
        "seed": seed,
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Stats and sink values of an uninterrupted run, without a store."""
    effects = str(tmp_path_factory.mktemp("reference") / "effects.db")
    make_effects(effects)
    flow = stream_flow(effects)
    job = flow.execute("numbers", {"count": ITEMS})
    close_sink(flow)
    values = {n: (2 if n * n % 2 == 0 else 3) * n * n for n in range(ITEMS)}
    return {"stats": {rid: s["stats"] for rid, s in job.routine_states.items()}, "values": values}


def cases(tmp: Path, durability: str) -> Iterator[dict[str, Any]]:
    """Run every seed's case, a few at a time."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for seed in SEEDS:
            folder = tmp / f"seed-{seed}"
            folder.mkdir()
            futures.append(pool.submit(run_case, folder, durability, seed))
        for future in futures:
            yield future.result()


@pytest.mark.parametrize("durability", ["activation", "grouped"])
def test_killed_jobs_resume_with_every_item_processed_exactly_once(
    tmp_path: Path, durability: str, reference: dict[str, Any]
) -> None:
    """After SIGKILLs at random moments, resumed jobs match an uninterrupted run exactly."""
    check_exactly_once(list(cases(tmp_path, durability)), reference, len(SEEDS))


def check_exactly_once(
    results: list[dict[str, Any]], reference: dict[str, Any], seeds: int
) -> None:
    """Every resumed job completed like the uninterrupted run, each item written once;
    at least one kill per seed, and one inside a transaction."""
    for result in results:
        seed, job = result["seed"], result["job"]
        assert job.status == JobStatus.COMPLETED, f"seed {seed}: {job.summary()}"
        assert {rid: s["stats"] for rid, s in job.routine_states.items()} == reference["stats"], (
            f"seed {seed}: stats differ from an uninterrupted run"
        )
        ids_by_item: dict[int, set[str]] = {}
        for activation_id, n, value in result["writes"]:
            assert value == reference["values"][n], f"seed {seed}: item {n} has value {value}"
            ids_by_item.setdefault(n, set()).add(activation_id)
        assert sorted(ids_by_item) == list(range(ITEMS)), f"seed {seed}: items lost"
        twice = {n: ids for n, ids in ids_by_item.items() if len(ids) > 1}
        assert not twice, f"seed {seed}: items delivered by two messages: {twice}"
    assert sum(r["kills"] for r in results) >= seeds
    assert any(r["in_commit"] for r in results), "no kill landed inside a transaction"


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "run":
        child_run(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
    else:
        child_resume(rest[0], rest[1], rest[2], int(rest[3]))
