"""Stores under faults: a vanished file, damage, read-only media, bad arguments.

The read-only filesystem tests mount a directory read-only with a bind mount
in a private mount namespace (``unshare -m``), because file permissions do
not stop root; they are skipped where that is not allowed.
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import chain

from flowforge import Flow, JobState, JobStatus, Routine
from flowforge.store import (
    CorruptStoreError,
    MemoryStore,
    NotAStoreError,
    SQLiteStore,
    Store,
    StoreAccessError,
    StoreReadOnlyError,
    StoreTypeError,
    StoreUsageError,
    StoreVanishedError,
    StoreVersionError,
    sqlite,
)
from flowforge.testing import Collect, Source

GARBAGE = bytes((i * 37 + 11) % 256 for i in range(4096))
#: SQLite's b-tree page types (interior/leaf, index/table).
_BTREE_PAGES = (0x02, 0x05, 0x0A, 0x0D)


def damage_middle_page(data: bytearray) -> None:
    """Overwrite the b-tree page nearest the middle of a database file with garbage.

    A b-tree page, not just the middle bytes: those may fall on a free page,
    which no check reads.
    """
    size = int.from_bytes(data[16:18], "big") or 65536
    pages = len(data) // size
    for number in sorted(range(1, pages), key=lambda n: abs(n - pages // 2)):
        if data[number * size] in _BTREE_PAGES:
            data[number * size : (number + 1) * size] = (GARBAGE * (size // len(GARBAGE) + 1))[
                :size
            ]
            return
    raise AssertionError("the file has no b-tree page past the first")


def stored_job(path: Path, values: int = 3) -> JobState:
    """Run a ``src -> sink`` job against a new store at ``path`` and close the store."""
    with SQLiteStore(path) as store:
        flow = Flow(flow_id="faults", store=store)
        chain(flow, ("src", Source()), ("sink", Collect()))
        return flow.execute("src", {"values": list(range(values))})


# -- the store's file vanishes ---------------------------------------------------------


def test_a_store_whose_directory_is_deleted_raises_at_the_next_commit(tmp_path: Path) -> None:
    """Deleting the store's directory makes the next commit raise StoreVanishedError."""
    path = tmp_path / "gone" / "jobs.db"
    path.parent.mkdir()
    store = SQLiteStore(path)
    store.save(JobState())
    shutil.rmtree(path.parent)
    with pytest.raises(StoreVanishedError, match="was deleted") as caught:
        store.save(JobState())
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert isinstance(caught.value, OSError)
    store.close()


def test_a_store_whose_file_is_replaced_raises_at_the_next_commit(tmp_path: Path) -> None:
    """Replacing the store's file by another makes the next commit raise StoreVanishedError."""
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    SQLiteStore(tmp_path / "other.db").close()
    os.replace(tmp_path / "other.db", path)
    with pytest.raises(StoreVanishedError, match="replaced or moved"):
        store.save(JobState())
    store.close()


def test_a_store_opened_by_a_relative_path_survives_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is watched by its absolute path, so chdir does not look like a deletion."""
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("jobs.db") as store:
        monkeypatch.chdir(tmp_path.parent)
        store.save(JobState(job_id="kept"))
        assert [s.job_id for s in store.list_jobs()] == ["kept"]


class Vanish(Routine):
    """Relays ``value``; deletes the directory in config ``doomed`` when it sees 2."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Delete the store's directory on cue, then pass the value on."""
        if value == 2:
            shutil.rmtree(self.get_config("doomed"))
        self.emit("out", value=value)


def test_a_job_whose_store_vanishes_does_not_complete(tmp_path: Path) -> None:
    """A job whose store is deleted while it runs ends failed, naming the store."""
    path = tmp_path / "doomed" / "jobs.db"
    path.parent.mkdir()
    vanish = Vanish()
    vanish.set_config(doomed=str(path.parent))
    flow = Flow(flow_id="vanishing")
    chain(flow, ("src", Source()), ("vanish", vanish), ("sink", Collect()))
    with SQLiteStore(path, durability="activation") as store:
        job = flow.execute("src", {"values": [1, 2, 3]}, store=store)
    assert job.status == JobStatus.FAILED
    assert str(path) in str(job.reason)


# -- damage ------------------------------------------------------------------------------


def test_garbage_written_mid_file_is_found_when_opening(tmp_path: Path) -> None:
    """A page of garbage in the middle of a store raises CorruptStoreError on open, untouched."""
    path = tmp_path / "jobs.db"
    stored_job(path, values=2000)
    data = bytearray(path.read_bytes())
    damage_middle_page(data)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="damaged") as caught:
        SQLiteStore(path)
    message = str(caught.value)
    assert str(path) in message and "restore it from a backup" in message and "delete" in message
    assert path.read_bytes() == bytes(data)


def test_check_false_skips_the_check_when_opening(tmp_path: Path) -> None:
    """check=False opens a store with damaged pages without reading them all."""
    path = tmp_path / "jobs.db"
    stored_job(path, values=2000)
    data = bytearray(path.read_bytes())
    damage_middle_page(data)
    path.write_bytes(bytes(data))
    SQLiteStore(path, check=False).close()


def test_files_above_the_check_limit_are_not_checked_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With check=None, a file larger than CHECK_LIMIT is opened without the full check."""
    path = tmp_path / "jobs.db"
    stored_job(path, values=2000)
    checked: list[str] = []
    real_check = sqlite._quick_check
    monkeypatch.setattr(
        sqlite, "_quick_check", lambda conn, p: checked.append(p) or real_check(conn, p)
    )
    monkeypatch.setattr(sqlite, "CHECK_LIMIT", path.stat().st_size - 1)
    SQLiteStore(path).close()
    assert checked == []
    SQLiteStore(path, check=True).close()
    assert checked == [str(path)]


@pytest.mark.parametrize(("column", "read"), [("header", "load"), ("reason", "list_jobs")])
def test_text_that_is_not_utf8_raises_corrupt_store(tmp_path: Path, column: str, read: str) -> None:
    """A row holding invalid UTF-8 raises CorruptStoreError naming the file."""
    path = tmp_path / "jobs.db"
    job = stored_job(path)
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE jobs SET {column} = CAST(X'80FF' AS TEXT)")
    db.close()
    with SQLiteStore(path) as store, pytest.raises(CorruptStoreError, match="damaged") as caught:
        store.load(job.job_id) if read == "load" else store.list_jobs()
    assert caught.value.path == str(path)


def test_an_unknown_status_in_the_file_raises_corrupt_store(tmp_path: Path) -> None:
    """A job row whose status FlowForge never writes raises CorruptStoreError from list_jobs."""
    path = tmp_path / "jobs.db"
    stored_job(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET status = 'exploded'")
    db.close()
    with SQLiteStore(path) as store, pytest.raises(CorruptStoreError, match="exploded"):
        store.list_jobs()


def test_a_saved_flow_that_is_not_json_raises_corrupt_store(tmp_path: Path) -> None:
    """load_flow() of a definition that is not JSON raises CorruptStoreError."""
    path = tmp_path / "jobs.db"
    stored_job(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE flows SET definition = '{not json'")
    db.close()
    with SQLiteStore(path) as store, pytest.raises(CorruptStoreError, match=r"'faults'.*not JSON"):
        store.load_flow("faults")


# -- read-only stores ------------------------------------------------------------------


def test_a_readonly_store_reads_jobs_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """readonly=True lists and loads jobs without writing a byte of the file."""
    path = tmp_path / "jobs.db"
    job = stored_job(path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with SQLiteStore(path, readonly=True) as store:
        assert store.readonly
        assert [s.job_id for s in store.list_jobs()] == [job.job_id]
        assert store.load(job.job_id).status == JobStatus.COMPLETED
        assert store.load_flow("faults").flow_id == "faults"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_a_readonly_store_refuses_every_write(tmp_path: Path) -> None:
    """Writes to a read-only store raise StoreReadOnlyError (an OSError)."""
    path = tmp_path / "jobs.db"
    job = stored_job(path)
    flow = Flow(flow_id="faults")
    chain(flow, ("src", Source()), ("sink", Collect()))
    with SQLiteStore(path, readonly=True) as store:
        writes: list[Callable[[], object]] = [
            lambda: store.save(JobState()),
            lambda: store.delete(job.job_id),
            lambda: store.prune(0),
            lambda: store.save_flow(flow),
            lambda: flow.execute("src", {"values": [1]}, store=store),
        ]
        for write in writes:
            with pytest.raises(StoreReadOnlyError, match=r"read-only \(readonly=True\)"):
                write()
        assert [s.job_id for s in store.list_jobs()] == [job.job_id]


def test_a_readonly_store_must_exist(tmp_path: Path) -> None:
    """readonly=True of a missing or empty file raises, and creates nothing."""
    with pytest.raises(StoreAccessError, match="no store at"):
        SQLiteStore(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "empty.db").touch()
    with pytest.raises(NotAStoreError, match="is empty"):
        SQLiteStore(tmp_path / "empty.db", readonly=True)
    assert (tmp_path / "empty.db").stat().st_size == 0


def test_a_readonly_store_of_an_older_schema_is_not_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """readonly=True of an older schema raises StoreVersionError and leaves it as it was."""
    path = tmp_path / "jobs.db"
    stored_job(path)
    data = path.read_bytes()
    monkeypatch.setattr(sqlite, "SCHEMA_VERSION", sqlite.SCHEMA_VERSION + 1)
    with pytest.raises(StoreVersionError, match="without readonly=True to migrate"):
        SQLiteStore(path, readonly=True)
    assert path.read_bytes() == data


def _can_bind_mount_readonly(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    (tmp_path / "probe-rw").mkdir()
    (tmp_path / "probe-ro").mkdir()
    script = 'mount --bind -o ro "$1" "$2" && ! touch "$2/x" 2>/dev/null'
    probe = [*_unshare(script), str(tmp_path / "probe-rw"), str(tmp_path / "probe-ro")]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _unshare(script: str) -> list[str]:
    return ["unshare", "-m", "sh", "-c", script, "sh"]


@pytest.fixture
def readonly_mount(tmp_path: Path) -> Iterator[tuple[Path, Callable[..., Any]]]:
    """``rw/`` and a runner of commands that see it read-only as ``ro/``.

    The runner takes a command line (``{ro}`` in it is replaced) and runs it
    in a private mount namespace with ``ro/`` bound read-only onto ``rw/``.
    """
    if not _can_bind_mount_readonly(tmp_path):
        pytest.skip("cannot make a read-only bind mount here (needs unshare -m and mount)")
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        line = [part.replace("{ro}", str(ro)) for part in command]
        script = 'mount --bind -o ro "$1" "$2" && shift 2 && exec "$@"'
        return subprocess.run(
            [*_unshare(script), str(rw), str(ro), *line],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    yield rw, run


READ_ON_RO_MEDIA = """
import sys
from flowforge.store import SQLiteStore, StoreAccessError
path = sys.argv[1]
try:
    SQLiteStore(path)
except StoreAccessError as exc:
    print("writable:", exc)
with SQLiteStore(path, readonly=True) as store:
    print("jobs:", [s.job_id for s in store.list_jobs()])
"""


def test_a_store_on_a_readonly_filesystem_opens_readonly(
    readonly_mount: tuple[Path, Callable[..., Any]],
) -> None:
    """On a read-only mount, readonly=True reads the jobs; a writable open says to use it."""
    rw, run = readonly_mount
    job = stored_job(rw / "jobs.db")
    done = run(sys.executable, "-c", READ_ON_RO_MEDIA, "{ro}/jobs.db")
    assert done.returncode == 0, done.stderr
    writable, jobs = done.stdout.splitlines()
    assert jobs == f"jobs: {[job.job_id]}"
    assert "readonly=True" in writable and writable.count("Cannot open") == 1
    assert sorted(p.name for p in rw.iterdir()) == ["jobs.db"]


def test_a_store_with_a_write_ahead_log_on_a_readonly_filesystem_is_read(
    readonly_mount: tuple[Path, Callable[..., Any]],
) -> None:
    """A store still open elsewhere (its log beside it) is read whole from a read-only mount."""
    rw, run = readonly_mount
    path = rw / "jobs.db"
    with SQLiteStore(path) as writer:
        writer.save(JobState(job_id="in-the-log"))
        assert (rw / "jobs.db-wal").stat().st_size > 0
        done = run(sys.executable, "-c", READ_ON_RO_MEDIA, "{ro}/jobs.db")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "jobs: ['in-the-log']"


def _cli(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "flowforge.cli", *args)


def test_the_cli_lists_jobs_of_a_store_on_a_readonly_filesystem(
    readonly_mount: tuple[Path, Callable[..., Any]],
) -> None:
    """`flowforge jobs` works on a store on a read-only filesystem."""
    rw, run = readonly_mount
    job = stored_job(rw / "jobs.db")
    done = run(*_cli("jobs", "--store", "{ro}/jobs.db"))
    assert done.returncode == 0, done.stderr
    assert job.job_id[:8] in done.stdout


def test_the_cli_says_once_that_it_cannot_open_a_readonly_store(
    readonly_mount: tuple[Path, Callable[..., Any]],
) -> None:
    """A command that writes to a store on a read-only filesystem fails saying so once."""
    rw, run = readonly_mount
    job = stored_job(rw / "jobs.db")
    done = run(*_cli("cancel", job.job_id, "--store", "{ro}/jobs.db"))
    assert done.returncode != 0
    assert done.stderr.count("Cannot open") == 1 and "read-only" in done.stderr


# -- arguments -----------------------------------------------------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("options", "argument", "error"),
    [
        ({"timeout": NAN}, "timeout", StoreUsageError),
        ({"timeout": INF}, "timeout", StoreUsageError),
        ({"timeout": 0}, "timeout", StoreUsageError),
        ({"timeout": -1.0}, "timeout", StoreUsageError),
        ({"timeout": 10**400}, "timeout", StoreUsageError),
        ({"timeout": "30"}, "timeout", StoreTypeError),
        ({"timeout": True}, "timeout", StoreTypeError),
        ({"group_seconds": NAN}, "group_seconds", StoreUsageError),
        ({"group_seconds": -INF}, "group_seconds", StoreUsageError),
        ({"group_max": 2.5}, "group_max", StoreTypeError),
        ({"durability": 1}, "durability", StoreTypeError),
        ({"synchronous": None}, "synchronous", StoreTypeError),
        ({"synchronous": "off"}, "synchronous", StoreUsageError),
        ({"readonly": "yes"}, "readonly", StoreTypeError),
        ({"check": "auto"}, "check", StoreTypeError),
        ({"path": 42}, "path", StoreTypeError),
        ({"path": b"jobs.db"}, "path", StoreTypeError),
        ({"path": ""}, "path", StoreUsageError),
        ({"path": "jobs\x00.db"}, "path", StoreUsageError),
        ({"path": ":memory:", "readonly": True}, "path", StoreUsageError),
    ],
)
def test_sqlite_store_refuses_bad_options(
    tmp_path: Path, options: dict[str, Any], argument: str, error: type[Exception]
) -> None:
    """Non-finite, negative or mistyped options raise a StoreUsageError naming the argument."""
    options.setdefault("path", tmp_path / "jobs.db")
    with pytest.raises(error, match=f"^{argument} must be") as caught:
        SQLiteStore(**options)
    assert isinstance(caught.value, ValueError)
    assert caught.value.argument == argument and caught.value.expected
    assert not (tmp_path / "jobs.db").exists()


def test_mistyped_options_are_also_type_errors() -> None:
    """StoreTypeError is a TypeError as well as a StoreUsageError."""
    with pytest.raises(TypeError, match="got '1'"):
        MemoryStore(group_seconds="1")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize(
    ("call", "argument", "error"),
    [
        (lambda s: s.prune(NAN), "older_than", StoreUsageError),
        (lambda s: s.prune(INF), "older_than", StoreUsageError),
        (lambda s: s.prune(datetime.timedelta(days=-1)), "older_than", StoreUsageError),
        (lambda s: s.prune("1d"), "older_than", StoreTypeError),
        (lambda s: s.prune(0, statuses=[1]), "status", StoreTypeError),
        (lambda s: s.list_jobs(flow_id=3), "flow_id", StoreTypeError),
        (lambda s: s.list_jobs(flow_id=""), "flow_id", StoreUsageError),
        (lambda s: s.list_jobs(status=3), "status", StoreTypeError),
        (lambda s: s.load(""), "job_id", StoreUsageError),
        (lambda s: s.delete(None), "job_id", StoreTypeError),
        (lambda s: s.save({"job_id": "x"}), "job", StoreTypeError),
        (lambda s: s.begin("job"), "job", StoreTypeError),
        (lambda s: s.begin(JobState(), flow="flow"), "flow", StoreTypeError),
        (lambda s: s.end("job"), "job", StoreTypeError),
        (lambda s: s.load_flow("f", allowed_modules="mymodule"), "allowed_modules", StoreTypeError),
    ],
)
def test_store_methods_refuse_bad_arguments(
    tmp_path: Path, kind: str, call: Callable[[Store], object], argument: str, error: type
) -> None:
    """Every public method checks its arguments, raising errors that name them."""
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "jobs.db")
    with store:
        with pytest.raises(error) as caught:
            call(store)
        assert caught.value.argument == argument
        assert argument in str(caught.value)
        assert store.list_jobs() == []


def test_a_write_ahead_log_that_cannot_be_read_on_a_readonly_filesystem_is_named(
    tmp_path: Path, readonly_mount: tuple[Path, Callable[..., Any]]
) -> None:
    """A store whose -wal holds commits but has no -shm, on a read-only mount, says why."""
    rw, run = readonly_mount
    with SQLiteStore(tmp_path / "jobs.db") as writer:
        writer.save(JobState(job_id="in-the-log"))
        for suffix in ("", "-wal"):
            shutil.copyfile(tmp_path / f"jobs.db{suffix}", rw / f"jobs.db{suffix}")
    done = run(sys.executable, "-c", READ_ON_RO_MEDIA, "{ro}/jobs.db")
    assert done.returncode != 0
    assert "write-ahead log" in done.stderr and "Copy the store with its -wal" in done.stderr
