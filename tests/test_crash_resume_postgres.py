"""Crash injection on PostgreSQL: jobs killed with SIGKILL at random moments resume exactly once.

The same cases as ``test_crash_resume.py`` (its flow, its outside ``effects``
database, its checks), on a :class:`~flowforge.store.PostgresStore` of the
session's server, each case in a schema of its own:

- the first child (this file, run as a script) kills itself with SIGKILL
  just before the k-th thing its store sends: a statement, or the end of a
  transaction (its COMMIT); k is drawn at random over a whole run, so kills
  land before, inside and right after commits, and while the store opens;
- for half the cases, a second child resumes the job and is killed by this
  process after it has delivered a random number of items;
- a last child resumes the job to the end.

The server sees each killed client vanish mid-transaction and rolls its
transaction back; the checks are those of ``test_crash_resume.py``.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pg_server
import psycopg
import pytest
from psycopg import sql
from test_crash_resume import (
    GROUP_SIZES,
    ITEMS,
    JOB_ID,
    LEASE_SECONDS,
    check_exactly_once,
    close_sink,
    kill_after_items,
    make_effects,
    reference,
    stream_flow,
    wait_for_lease,
)

from flowforge import JobState, JobStatus
from flowforge.store import JobNotFoundError, PostgresStore

SEEDS = range(4)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]
__all__ = ["reference"]  # the fixture, shared with test_crash_resume.py


def open_store(dsn: str, schema: str, durability: str, group_max: int) -> PostgresStore:
    """The store of a case; grouping by count only, so runs are repeatable."""
    return PostgresStore(
        dsn,
        schema=schema,
        durability=durability,  # type: ignore[arg-type]
        group_max=group_max,
        group_seconds=3600,
        lease_seconds=LEASE_SECONDS,
    )


def count_sends(on_send: Callable[[bool], None]) -> Callable[[], None]:
    """Call ``on_send`` before every statement and every transaction end psycopg sends.

    ``on_send`` is told whether a transaction is open (a COMMIT counts as
    inside). Returns a function that puts psycopg back as it was.
    """
    depth = 0
    enter, leave = psycopg.Transaction.__enter__, psycopg.Transaction.__exit__

    def entered(self: Any) -> Any:
        nonlocal depth
        result = enter(self)
        depth += 1
        return result

    def left(self: Any, *args: Any) -> Any:
        nonlocal depth
        on_send(True)
        try:
            return leave(self, *args)
        finally:
            depth -= 1

    patched = [(psycopg.Transaction, "__enter__", enter, entered)]
    patched.append((psycopg.Transaction, "__exit__", leave, left))
    for name in ("execute", "executemany"):
        original = getattr(psycopg.Cursor, name)

        def sent(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            on_send(depth > 0)
            return _original(*args, **kwargs)

        patched.append((psycopg.Cursor, name, original, sent))
    for cls, name, _, wrapper in patched:
        setattr(cls, name, wrapper)

    def restore() -> None:
        for cls, name, original, _ in patched:
            setattr(cls, name, original)

    return restore


# -- the child processes ---------------------------------------------------------------


def child_run(
    dsn: str, schema: str, effects: str, durability: str, group_max: int, kill_at: int
) -> None:
    """Start the job; SIGKILL this process just before the store's ``kill_at``-th send."""
    sends = 0

    def count(_inside: bool) -> None:
        nonlocal sends
        sends += 1
        if sends == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    count_sends(count)
    flow = stream_flow(effects)
    store = open_store(dsn, schema, durability, group_max)
    flow.execute("numbers", {"count": ITEMS}, job_state=JobState(job_id=JOB_ID), store=store)


def child_resume(dsn: str, schema: str, effects: str, durability: str, group_max: int) -> None:
    """Resume the job from the store (or start it, if it never got there)."""
    flow = stream_flow(effects, progress=True)
    with open_store(dsn, schema, durability, group_max) as store:
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


# -- the parent ----------------------------------------------------------------------------


def spawn(*args: Any) -> subprocess.Popen[str]:
    """This file as a child process."""
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def drop(dsn: str, schema: str) -> None:
    """Remove a case's schema."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def sends_of_a_run(dsn: str, tmp: Path, durability: str, group_max: int) -> list[bool]:
    """The sends the store of an uninterrupted run makes: whether each is inside a transaction."""
    schema = f"count_{durability}_{group_max}"
    effects = str(tmp / f"count-{durability}-{group_max}.db")
    make_effects(effects)
    sends: list[bool] = []
    restore = count_sends(sends.append)
    flow = stream_flow(effects)
    try:
        with open_store(dsn, schema, durability, group_max) as store:
            job = JobState(job_id=JOB_ID)
            flow.execute("numbers", {"count": ITEMS}, job_state=job, store=store)
    finally:
        restore()
        close_sink(flow)
    drop(dsn, schema)
    return sends


def run_case(
    dsn: str, tmp: Path, durability: str, seed: int, traces: dict[int, list[bool]]
) -> dict[str, Any]:
    """Crash and resume one job; what the checks need."""
    rng = random.Random(f"pg-{durability}-{seed}")
    group_max = 1 if durability == "activation" else rng.choice(GROUP_SIZES)
    kill_at = rng.randint(1, len(traces[group_max]))
    schema, effects = f"crash_{durability}_{seed}", str(tmp / "effects.db")
    make_effects(effects)
    args = (dsn, schema, effects, durability, group_max)
    first = spawn("run", *args, kill_at)
    _, err = first.communicate(timeout=50)
    assert first.returncode == -signal.SIGKILL, f"seed {seed}: first child: {err}"
    kills = 1
    if rng.random() < 0.5:
        second = spawn("resume", *args)
        kill_after_items(second, rng.randint(1, ITEMS // 2), rng)
        kills += second.returncode == -signal.SIGKILL
    last = spawn("resume", *args)
    _, err = last.communicate(timeout=50)
    assert last.returncode == 0, f"seed {seed}: last child: {err}"
    with open_store(dsn, schema, durability, group_max) as opened:
        job = opened.load(JOB_ID)
    drop(dsn, schema)
    with closing(sqlite3.connect(effects)) as db:
        writes = db.execute("SELECT activation_id, n, value FROM writes").fetchall()
    return {
        "job": job,
        "writes": writes,
        "kills": kills,
        "in_commit": traces[group_max][kill_at - 1],
        "seed": seed,
    }


def cases(dsn: str, tmp: Path, durability: str) -> Iterator[dict[str, Any]]:
    """Run every seed's case, a few at a time."""
    sizes = (1,) if durability == "activation" else GROUP_SIZES
    traces = {size: sends_of_a_run(dsn, tmp, durability, size) for size in sizes}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for seed in SEEDS:
            folder = tmp / f"seed-{seed}"
            folder.mkdir()
            futures.append(pool.submit(run_case, dsn, folder, durability, seed, traces))
        for future in futures:
            yield future.result()


@pytest.mark.parametrize("durability", ["activation", "grouped"])
def test_killed_jobs_resume_on_postgres_with_every_item_processed_exactly_once(
    tmp_path: Path,
    durability: str,
    reference: dict[str, Any],
    postgres_server: pg_server.PgServer,
) -> None:
    """After SIGKILLs at random moments, jobs resumed from PostgreSQL match an uninterrupted run."""
    check_exactly_once(
        list(cases(postgres_server.dsn, tmp_path, durability)), reference, len(SEEDS)
    )


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "run":
        child_run(rest[0], rest[1], rest[2], rest[3], int(rest[4]), int(rest[5]))
    else:
        child_resume(rest[0], rest[1], rest[2], rest[3], int(rest[4]))
