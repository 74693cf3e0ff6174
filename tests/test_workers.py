"""Queued jobs, workers, leases and control from another process, with real processes.

``flowforge submit`` queues jobs, ``flowforge worker`` processes run them;
jobs are stopped with ``flowforge pause``/``cancel`` from another process,
and workers are killed with SIGKILL and SIGTERM. Leases are short (1 s) so
that takeovers happen quickly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pg_server
import pytest
from cli_support import SLOW_FLOW, SLOW_ROUTINES, cli, write

from flowforge import JobStatus
from flowforge.store import SQLiteStore, Store, open_store

pytestmark = pytest.mark.timeout(60)

FAST = {"FLOWFORGE_LEASE_SECONDS": "1"}
#: Values of the slow flow: 5 s of work, so a job is still running when another process acts.
COUNT = 100


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """A directory with the slow flow (each of COUNT values takes 0.05 s) and its routine module."""
    directory = tmp_path / "flows"
    directory.mkdir()
    write(directory, "slow_notes.py", SLOW_ROUTINES)
    write(directory, "slow.yaml", SLOW_FLOW % list(range(COUNT)))
    return directory


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``flowforge ARGS`` in the background (its output goes to ``cwd/log.txt``)."""
    with (cwd / "log.txt").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flowforge.cli", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **(env or {})},
        )


def wait_until(condition: object, what: str) -> None:
    """Poll ``condition()`` until it is true (the test's timeout bounds the wait)."""
    deadline = time.monotonic() + 40
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def the_job(store: Store) -> str:
    wait_until(lambda: store.list_jobs(), "a job is stored")
    return store.list_jobs()[0].job_id


def noted(store: Store, job_id: str) -> int:
    return int(store.load(job_id).routine_states["note"]["stats"]["noted"])


def test_resuming_a_running_job_is_refused_until_its_dead_owners_lease_expires(
    tmp_path: Path, flows: Path
) -> None:
    """A second resume names the live owner; after SIGKILL and expiry it finishes exactly."""
    proc = start("run", "flows/slow.yaml", "-q", cwd=tmp_path, env=FAST)
    with SQLiteStore(tmp_path / "flowforge.db") as store:
        job_id = the_job(store)
        wait_until(lambda: lines(flows / "seen.txt") >= 3, "the job is under way")
        refused = cli("resume", job_id, "-q", cwd=tmp_path, env=FAST)
        assert refused.returncode != 0
        assert f":{proc.pid}:" in refused.stderr and "lease" in refused.stderr
        proc.kill()
        proc.wait(30)
        assert store.load(job_id).status == JobStatus.RUNNING
        wait_until(lambda: not store.lease(job_id).live(), "the dead owner's lease expires")  # type: ignore[union-attr]
        resumed = cli("resume", job_id, "-q", cwd=tmp_path, env=FAST)
        assert resumed.returncode == 0, resumed.stderr
        assert store.load(job_id).status == JobStatus.COMPLETED
        assert noted(store, job_id) == COUNT
        assert store.lease(job_id) is None


@pytest.mark.parametrize(
    ("action", "status", "code"), [("pause", "paused", 3), ("cancel", "cancelled", 1)]
)
def test_pause_and_cancel_stop_a_job_running_in_another_process(
    tmp_path: Path, flows: Path, action: str, status: str, code: int
) -> None:
    """flowforge pause/cancel reach the job's runner through the store and stop it."""
    proc = start("run", "flows/slow.yaml", "-q", cwd=tmp_path)
    with SQLiteStore(tmp_path / "flowforge.db") as store:
        job_id = the_job(store)
        wait_until(lambda: lines(flows / "seen.txt") >= 2, "the job is under way")
        result = cli(action, job_id[:8], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"Job {job_id} {status}." in result.stdout
        assert f":{proc.pid}:" in result.stderr
        assert proc.wait(30) == code
        job = store.load(job_id)
        assert (str(job.status), job.reason) == (status, f"{status} from the command line")
        assert lines(flows / "seen.txt") < COUNT


def test_status_names_the_runner_of_a_live_job_and_suggests_no_resume(
    tmp_path: Path, flows: Path
) -> None:
    """status shows who runs the job, and no resume command while its lease is live."""
    proc = start("run", "flows/slow.yaml", "-q", cwd=tmp_path)
    try:
        with SQLiteStore(tmp_path / "flowforge.db") as store:
            job_id = the_job(store)
        wait_until(lambda: lines(flows / "seen.txt") >= 1, "the job is under way")
        shown = cli("status", job_id, cwd=tmp_path)
        assert "Running in " in shown.stdout and f":{proc.pid}:" in shown.stdout
        assert "Resume it with" not in shown.stdout
    finally:
        proc.kill()
        proc.wait(30)


def test_submit_queues_a_job_and_a_draining_worker_runs_it(tmp_path: Path, flows: Path) -> None:
    """submit prints the id of a queued job; worker --drain runs it and exits 0."""
    submitted = cli("submit", "flows/slow.yaml", "--param", "values=[1, 2]", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    with SQLiteStore(tmp_path / "flowforge.db") as store:
        assert store.load(job_id).status == JobStatus.QUEUED
    worked = cli("worker", "--drain", "-q", "--store", str(tmp_path / "flowforge.db"), cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    with SQLiteStore(tmp_path / "flowforge.db") as store:
        job = store.load(job_id)
        assert job.status == JobStatus.COMPLETED
        assert job.routine_states["note"]["stats"]["noted"] == 2


def test_sigterm_pauses_a_workers_job_back_into_the_queue(tmp_path: Path, flows: Path) -> None:
    """SIGTERM: the worker exits 0, its job is queued again and another worker finishes it."""
    job_id = cli("submit", "flows/slow.yaml", cwd=tmp_path).stdout.strip()
    proc = start("worker", "-q", "--poll", "0.05", cwd=tmp_path)
    wait_until(lambda: lines(flows / "seen.txt") >= 3, "the worker runs the job")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    with SQLiteStore(tmp_path / "flowforge.db") as store:
        (summary,) = store.list_jobs()
        assert summary.status == JobStatus.QUEUED and summary.pending > 0
        assert store.lease(job_id) is None
        assert cli("worker", "--drain", "-q", cwd=tmp_path).returncode == 0
        assert store.load(job_id).status == JobStatus.COMPLETED
        assert noted(store, job_id) == COUNT


@pytest.fixture
def store_url(postgres_server: pg_server.PgServer) -> str:
    """A fresh schema of the session's PostgreSQL server, as a store URL."""
    return f"{postgres_server.dsn}?schema=workers_{uuid.uuid4().hex[:10]}"


def test_workers_take_over_the_jobs_of_a_killed_worker_exactly_once(
    tmp_path: Path, flows: Path, store_url: str
) -> None:
    """3 workers, one SIGKILLed mid-job: every queued job completes with exact results."""
    values = list(range(20))
    write(flows, "slow.yaml", SLOW_FLOW % values)
    env = {"FLOWFORGE_STORE": store_url}
    ids = [cli("submit", "flows/slow.yaml", cwd=tmp_path, env=env).stdout.strip() for _ in range(6)]
    options = ("--concurrency", "2", "--lease-seconds", "1", "--poll", "0.05", "-q")
    workers: dict[int, subprocess.Popen[bytes]] = {}
    for _ in range(3):
        proc = start("worker", *options, cwd=tmp_path, env=env)
        workers[proc.pid] = proc
    with open_store(store_url) as store:
        try:
            owners: list[int] = []

            def a_worker_runs_a_job() -> bool:
                leases = [store.lease(job_id) for job_id in ids]
                owners[:] = [int(x.owner.split(":")[-2]) for x in leases if x and x.live()]
                return bool(owners)

            wait_until(a_worker_runs_a_job, "a worker runs a job")
            victim = workers.pop(owners[0])
            victim.kill()
            victim.wait(30)
            wait_until(lambda: all(s.status.finished for s in store.list_jobs()), "every job ends")
            assert [(s.status, s.reason) for s in store.list_jobs()] == [
                (JobStatus.COMPLETED, None)
            ] * len(ids)
            for job_id in ids:
                job = store.load(job_id)
                assert job.routine_states["note"]["stats"]["noted"] == len(values)
                assert job.routine_states["sink"]["stats"]["calls"] == len(values)
                emitted = [r.data["value"] for r in job.get_execution_history("note")]
                assert sorted(emitted) == values
                assert store.lease(job_id) is None
        finally:
            for proc in workers.values():
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(30) for proc in workers.values()]
    assert codes == [0, 0]
