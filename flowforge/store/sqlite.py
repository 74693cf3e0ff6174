""":class:`SQLiteStore`: jobs kept in one SQLite file (standard library ``sqlite3``).

The file is in WAL mode, so readers never wait for the writer and a
process killed mid-commit leaves the previous commit intact. One store
object holds one connection, shared by the threads that use it under a
lock. A read that would wait for a write transaction of that connection
(a job that ends writes itself whole) runs instead on one of up to
:data:`SIDE_READERS` connections of its own, and sees the last commit;
reads otherwise keep to the shared connection, whose cache stays warm
across the store's own commits. Several processes may open the same file,
and each waits up to ``timeout`` seconds for the others' commits (SQLite's
busy timeout, plus retries with a growing pause).

Opening checks the file before touching it. A new or empty file becomes a
store; a FlowForge store of an older schema is migrated forward (in one
transaction); anything else raises and the file is left exactly as it was:
another SQLite database or a file that is no database at all
(:class:`NotAStoreError`), a store from a newer FlowForge
(:class:`StoreVersionError`), a truncated or damaged file
(:class:`CorruptStoreError`). Files up to :data:`CHECK_LIMIT` bytes are also
read whole by SQLite's ``quick_check``, so damage is found before a job
relies on the store; damage met later, while reading or writing, raises
:class:`CorruptStoreError` too. The file carries an SQLite ``application_id``,
the schema version in ``user_version``, and a ``meta`` table naming its
format.

With ``readonly=True`` the file is opened read-only (``mode=ro``) and never
written: no creation, migration or checkpoint; writes raise
:class:`StoreReadOnlyError`. After every transaction the store checks (one
``stat``) that its path still names the file it opened; a file deleted or
replaced while open raises :class:`StoreVanishedError` rather than let
commits go to an orphaned file.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import attrs

from . import _checks, _lease
from ._errors import (
    CorruptStoreError,
    JobNotFoundError,
    NotAStoreError,
    StoreAccessError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreReadOnlyError,
    StoreTypeError,
    StoreUsageError,
    StoreVanishedError,
    StoreVersionError,
)
from ._lease import Control, Lease
from ._records import Batch, BriefRecord, JobRecord
from .base import Durability, JobSummary, Store

T = TypeVar("T")

#: ``PRAGMA application_id`` of a FlowForge store ("FlFg").
APPLICATION_ID = 0x466C4667
#: The schema version this FlowForge writes (``PRAGMA user_version``).
SCHEMA_VERSION = 3
#: The most reads one store runs beside its own write transaction, each on a connection of its own.
SIDE_READERS = 4
#: Files up to this size (bytes) are checked for damage when opened (``check=None``).
#: SQLite's ``quick_check`` reads the whole file: about 0.1 to 0.3 s per 100 MB.
CHECK_LIMIT = 64 * 1024 * 1024
FORMAT = "flowforge/store"
_MAGIC = b"SQLite format 3\x00"
_CHILD_TABLES = ("messages", "consumed", "routine_states", "slot_states", "tails", "task_runs")

#: The columns of a :class:`JobSummary` but its pending count.
_SUMMARY = "job_id, flow_id, status, created_at, updated_at, started_at, finished_at, reason"
#: The number of pending messages of the job ``j``, as an SQL expression.
_PENDING = (
    "(SELECT COALESCE(SUM(COALESCE(c.alive, m.count)), 0) FROM messages m LEFT JOIN "
    "consumed c ON c.jid = m.jid AND c.first = m.first WHERE m.jid = j.jid)"
)

_TASK_RUNS = (
    "CREATE TABLE task_runs (jid INTEGER NOT NULL, name TEXT NOT NULL, "
    "run TEXT NOT NULL, PRIMARY KEY (jid, name)) WITHOUT ROWID"
)

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE flows (flow_id TEXT PRIMARY KEY, definition TEXT NOT NULL, "
    "updated_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE jobs (jid INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, flow_id TEXT, "
    "status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
    "started_at REAL, finished_at REAL, reason TEXT, header TEXT NOT NULL, entry TEXT)",
    "CREATE INDEX jobs_by_flow ON jobs (flow_id, created_at)",
    "CREATE INDEX jobs_by_status ON jobs (status, updated_at)",
    "CREATE TABLE messages (jid INTEGER NOT NULL, first INTEGER NOT NULL, "
    "count INTEGER NOT NULL, entries TEXT NOT NULL, PRIMARY KEY (jid, first)) WITHOUT ROWID",
    # Kept apart from the (large, never changed) entries so that recording a
    # consumed message rewrites a small row only.
    "CREATE TABLE consumed (jid INTEGER NOT NULL, first INTEGER NOT NULL, "
    "alive INTEGER NOT NULL, runs TEXT NOT NULL, PRIMARY KEY (jid, first)) WITHOUT ROWID",
    "CREATE TABLE routine_states (jid INTEGER NOT NULL, routine_id TEXT NOT NULL, "
    "state TEXT NOT NULL, PRIMARY KEY (jid, routine_id)) WITHOUT ROWID",
    "CREATE TABLE slot_states (jid INTEGER NOT NULL, slot_key TEXT NOT NULL, "
    "state TEXT NOT NULL, PRIMARY KEY (jid, slot_key)) WITHOUT ROWID",
    "CREATE TABLE tails (jid INTEGER NOT NULL, kind TEXT NOT NULL, first INTEGER NOT NULL, "
    "count INTEGER NOT NULL, entries TEXT NOT NULL, stamps BLOB, "
    "PRIMARY KEY (jid, kind, first)) WITHOUT ROWID",
    _TASK_RUNS,
)
# Version 3: leases, control requests and the queue, on the job's row.
_LEASES = (
    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
    "ALTER TABLE jobs ADD COLUMN lease_since REAL",
    "ALTER TABLE jobs ADD COLUMN lease_heartbeat REAL",
    "ALTER TABLE jobs ADD COLUMN lease_expires REAL",
    "ALTER TABLE jobs ADD COLUMN request TEXT",
    "ALTER TABLE jobs ADD COLUMN request_reason TEXT",
    "ALTER TABLE jobs ADD COLUMN queued_at REAL",
    "CREATE INDEX jobs_queue ON jobs (queued_at) "
    "WHERE queued_at IS NOT NULL AND status IN ('queued', 'running')",
)
_SCHEMA += _LEASES


def _add_leases(conn: sqlite3.Connection) -> None:
    for statement in _LEASES:
        conn.execute(statement)


#: Upgrades: ``MIGRATIONS[n]`` brings a version ``n`` schema to ``n + 1``.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _add_leases}


def _add_task_runs(conn: sqlite3.Connection) -> None:
    """Version 2 keeps each task's run (status and result) of a job."""
    conn.execute(_TASK_RUNS)


MIGRATIONS[1] = _add_task_runs

# SQLite's primary result codes, which sqlite3 exposes on its exceptions.
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_ACCESS = {3, 8, 10, 13, 14}  # PERM, READONLY, IOERR, FULL, CANTOPEN
_READONLY = 8
_CANTOPEN = 14
# sqlite3 hands the busy timeout to SQLite in milliseconds, as a C int.
_MAX_BUSY_TIMEOUT = 2_000_000.0


class SQLiteStore(Store):
    """Jobs checkpointed in one SQLite file; see :mod:`flowforge.store`.

    Args:
        path: The file; created if it does not exist (its directory must).
        durability: ``"grouped"`` (default) or ``"activation"``; see
            :class:`~flowforge.store.Store`.
        group_max: With ``"grouped"``, the most steps in one commit.
        group_seconds: With ``"grouped"``, a group is committed at the first
            step after it has been open this long.
        timeout: Seconds to wait for another connection's commit before
            :class:`StoreBusyError`.
        synchronous: ``"normal"`` (default) survives any crash of the process
            and keeps the file consistent through a power cut; ``"full"``
            also makes every commit survive a power cut, at the cost of an
            fsync per commit.
        readonly: Open an existing store to read it only: nothing is written
            to the file (no migration, no checkpoint), it may sit on a
            read-only filesystem, and every write raises
            :class:`StoreReadOnlyError`.
        check: Run SQLite's ``quick_check`` over the whole file when opening
            it, to find damage before any job relies on it. ``None`` (the
            default) checks files up to :data:`CHECK_LIMIT` bytes, where the
            check takes a fraction of a second; ``True`` checks any size,
            ``False`` none.
        lease_seconds, heartbeat_seconds, poll_seconds: The leases of running
            jobs; see :class:`~flowforge.store.Store`.

    Example:
        >>> import tempfile, os
        >>> from flowforge.store import SQLiteStore
        >>> path = os.path.join(tempfile.mkdtemp(), "jobs.db")
        >>> with SQLiteStore(path) as store:
        ...     store.list_jobs()
        []
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "grouped",
        group_max: int = 10_000,
        group_seconds: float = 0.05,
        timeout: float = 30.0,
        synchronous: Literal["normal", "full"] = "normal",
        readonly: bool = False,
        check: bool | None = None,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        super().__init__(
            durability=durability,
            group_max=group_max,
            group_seconds=group_seconds,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
            poll_seconds=poll_seconds,
        )
        self.path = _store_path(path, readonly)
        self.timeout = _checks.seconds("timeout", timeout, positive=True)
        _checks.choice("synchronous", synchronous, ("normal", "full"))
        #: Whether the store was opened with ``readonly=True``.
        self.readonly = _checks.flag("readonly", readonly)
        if check is not None:
            _checks.flag("check", check)
        self._lock = threading.RLock()
        self._pid = os.getpid()
        how = _Opening(self.timeout, synchronous, self.readonly, check)
        self._conn, self._identity = _open(self.path, how)
        #: Set while the shared connection is in a write transaction.
        self._writing = False
        self._side: _SideReaders | None = None
        if not self.readonly and self._identity is not None:
            self._side = _SideReaders(self._identity.path, how)

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return f"SQLiteStore({self.path!r}, durability={self.durability!r}{mode})"

    def describe(self) -> str:
        return f"the store {self.path}"

    def location(self) -> str:
        return self.path

    # -- transactions ------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(
                f"{self.describe()} is closed; open it again to use it.", path=self.path
            )
        if os.getpid() != self._pid:
            raise StoreError(
                f"{self.describe()} was opened in another process (this one was forked from it); "
                "SQLite connections cannot cross a fork. Open the store in this process.",
                path=self.path,
            )
        return self._conn

    def _transact(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``work`` in one transaction, retrying while the database is locked.

        After it, the file at ``path`` must still be the one opened: a store
        whose file was deleted or replaced keeps working on the orphaned file,
        and every commit would be lost without notice.
        """
        if write and self.readonly:
            raise StoreReadOnlyError(
                f"Cannot write to {self.describe()}: it was opened read-only (readonly=True). "
                "Open it without readonly=True to run, save or delete jobs.",
                path=self.path,
            )
        deadline = time.monotonic() + self.timeout
        pause = 0.002
        while True:
            try:
                result = self._beside_the_writer(work) if not write else None
                if result is None:
                    with self._lock:
                        result = self._in_transaction(work, write)
                self._check_kept()
                return result.value
            except sqlite3.Error as exc:
                if _code(exc) not in _BUSY or time.monotonic() >= deadline:
                    raise self._translate(exc) from exc
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.1)

    def _in_transaction(self, work: Callable[[sqlite3.Connection], T], write: bool) -> _Result[T]:
        conn = self._connection()
        was = self._writing
        self._writing = write or was
        try:
            return _Result(_in_transaction(conn, work, write))
        finally:
            self._writing = was

    def _beside_the_writer(self, work: Callable[[sqlite3.Connection], T]) -> _Result[T] | None:
        """Run a read on a side connection if the shared one is writing now and one is free."""
        if not self._writing or self._side is None:
            return None
        self._connection()  # refuses a closed or forked store
        return self._side.read(work)

    def _check_kept(self) -> None:
        """Raise :class:`StoreVanishedError` if the file is no longer the one opened."""
        if self._identity is None:
            return
        try:
            found = os.stat(self._identity.path)
        except OSError:
            found = None
        if found is None or (found.st_dev, found.st_ino) != self._identity.inode:
            message = _vanished(self.path, replaced=found is not None)
            raise StoreVanishedError(message, path=self.path)

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        if _bad_text(exc):
            return _damaged(self.path, exc)
        code = _code(exc)
        if code in _BUSY:
            return StoreBusyError(
                f"{self.describe()} stayed locked by another connection for {self.timeout} s "
                f"({exc}). Another process may be holding a long transaction: retry, or give "
                "SQLiteStore a longer timeout=.",
                path=self.path,
                timeout=self.timeout,
            )
        if code in _DAMAGED:
            return _damaged(self.path, exc)
        if code in _ACCESS:
            return StoreAccessError(
                f"Cannot use {self.describe()}: {exc}.{_access_hint(self.path, code)}",
                path=self.path,
            )
        return StoreError(f"{self.describe()} failed: {exc}.", path=self.path)

    # -- storage -----------------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        self._transact(lambda conn: _write(conn, batch, self.path), write=True)

    def read_job(self, job_id: str) -> JobRecord | None:
        return self._transact(lambda conn: _read_job(conn, job_id), write=False)

    def read_brief(self, job_id: str) -> BriefRecord | None:
        return self._transact(lambda conn: _read_brief(conn, job_id), write=False)

    def read_summaries(
        self, flow_id: str | None, statuses: Collection[str] | None
    ) -> list[JobSummary]:
        where, params = _matching(flow_id, statuses)
        query = (
            f"SELECT {_SUMMARY}, {_PENDING} FROM jobs j WHERE {where} ORDER BY created_at, job_id"
        )
        rows = self._transact(lambda conn: conn.execute(query, params).fetchall(), write=False)
        return self._summaries(rows)

    def read_summary_page(
        self, flow_id: str | None, statuses: Collection[str] | None, limit: int, offset: int
    ) -> tuple[list[JobSummary], int]:
        where, params = _matching(flow_id, statuses)
        newest = "ORDER BY created_at DESC, job_id DESC"
        # The page is cut before the pending counts are summed, so a page costs its own jobs.
        page = (
            f"SELECT {_SUMMARY}, {_PENDING} FROM (SELECT jid, {_SUMMARY} FROM jobs "
            f"WHERE {where} {newest} LIMIT ? OFFSET ?) j {newest}"
        )

        def work(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            rows = conn.execute(page, [*params, limit, offset]).fetchall()
            total = conn.execute(f"SELECT count(*) FROM jobs WHERE {where}", params).fetchone()
            return rows, int(total[0])

        rows, total = self._transact(work, write=False)
        return self._summaries(rows), total

    def _summaries(self, rows: Sequence[Sequence[Any]]) -> list[JobSummary]:
        try:
            return [JobSummary(*row) for row in rows]
        except (ValueError, TypeError) as exc:
            raise _damaged(self.path, exc) from exc

    def remove_job(self, job_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT jid FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is not None:
                _drop_jobs(conn, [row[0]])
            return row is not None

        return self._transact(work, write=True)

    def remove_jobs(self, cutoff: float, statuses: Collection[str], keep: Collection[str]) -> int:
        query = (
            f"SELECT jid, job_id FROM jobs WHERE updated_at <= ? AND status IN "
            f"({', '.join(['?'] * len(statuses))})"
        )

        def work(conn: sqlite3.Connection) -> int:
            rows = conn.execute(query, (cutoff, *statuses)).fetchall()
            jids = [jid for jid, job_id in rows if job_id not in keep]
            _drop_jobs(conn, jids)
            return len(jids)

        return self._transact(work, write=True)

    def write_flow(self, flow_id: str, definition: str, when: float) -> None:
        self._transact(lambda conn: _put_flow(conn, flow_id, definition, when), write=True)

    def read_flow(self, flow_id: str) -> str | None:
        row = self._transact(
            lambda conn: conn.execute(
                "SELECT definition FROM flows WHERE flow_id = ?", (flow_id,)
            ).fetchone(),
            write=False,
        )
        return None if row is None else str(row[0])

    def release_resources(self) -> None:
        with self._lock:
            self._conn.close()
        if self._side is not None:
            self._side.close()

    def read_lease(self, job_id: str) -> Lease | None:
        row = self._transact(
            lambda conn: conn.execute(
                "SELECT job_id, lease_owner, lease_since, lease_heartbeat, lease_expires "
                "FROM jobs WHERE job_id = ? AND lease_owner IS NOT NULL",
                (job_id,),
            ).fetchone(),
            write=False,
        )
        return None if row is None else Lease(*row)

    def renew_leases(
        self, owner: str, job_ids: Collection[str], now: float, expires_at: float | None
    ) -> dict[str, Control]:
        ids = list(job_ids)
        marks = ", ".join(["?"] * len(ids))

        def work(conn: sqlite3.Connection) -> dict[str, Control]:
            if expires_at is not None:
                conn.execute(
                    "UPDATE jobs SET lease_heartbeat = ?, lease_expires = ? "
                    f"WHERE lease_owner = ? AND job_id IN ({marks})",
                    (now, expires_at, owner, *ids),
                )
            rows = conn.execute(
                "SELECT job_id, request, request_reason FROM jobs "
                f"WHERE lease_owner = ? AND job_id IN ({marks})",
                (owner, *ids),
            )
            return {job_id: _lease.control(action, reason) for job_id, action, reason in rows}

        return self._transact(work, write=expires_at is not None)

    def send_control(
        self, job_id: str, action: str, reason: str, now: float
    ) -> Literal["sent", "idle", "absent"]:
        def work(conn: sqlite3.Connection) -> Literal["sent", "idle", "absent"]:
            row = conn.execute(
                "SELECT lease_expires, request FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is None:
                return "absent"
            if row[0] is None or row[0] <= now:
                return "idle"
            if row[1] != "cancel":
                conn.execute(
                    "UPDATE jobs SET request = ?, request_reason = ? WHERE job_id = ?",
                    (action, reason, job_id),
                )
            return "sent"

        return self._transact(work, write=True)

    def claim_queued(self, owner: str, now: float, expires_at: float) -> str | None:
        def work(conn: sqlite3.Connection) -> str | None:
            # The write transaction (BEGIN IMMEDIATE) makes the pick and the lease one step.
            row = conn.execute(
                "SELECT jid, job_id FROM jobs WHERE queued_at IS NOT NULL "
                "AND status IN ('queued', 'running') "
                "AND (lease_expires IS NULL OR lease_expires <= ?) "
                "ORDER BY queued_at, jid LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET lease_owner = ?, lease_since = ?, lease_heartbeat = ?, "
                "lease_expires = ?, request = NULL, request_reason = NULL WHERE jid = ?",
                (owner, now, now, expires_at, row[0]),
            )
            return str(row[1])

        return self._transact(work, write=True)


# -- opening -------------------------------------------------------------------------


@attrs.frozen
class _Opening:
    """How to open the file (the constructor's options that matter there)."""

    timeout: float
    synchronous: str
    readonly: bool
    check: bool | None


@attrs.frozen
class _Result(Generic[T]):
    """What a transaction's work returned (``None`` included)."""

    value: T


class _SideReaders:
    """Up to :data:`SIDE_READERS` connections that only read, opened as needed.

    In WAL mode a read transaction on a connection of its own sees the last
    commit and never waits for another connection's write transaction. Its
    page cache goes stale whenever the file changes, which is why reads use
    these only while the shared connection is writing.
    """

    def __init__(self, file: str, how: _Opening) -> None:
        self._file = file  # absolute: the process may change directory meanwhile
        self._how = how
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0
        self._guard = threading.Lock()
        self._closed = False

    def read(self, work: Callable[[sqlite3.Connection], T]) -> _Result[T] | None:
        """Run ``work`` in a read transaction on a free reader; ``None`` if none is free."""
        conn = self._take()
        if conn is None:
            return None
        try:
            return _Result(_in_transaction(conn, work, False))
        finally:
            with self._guard:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def _take(self) -> sqlite3.Connection | None:
        with self._guard:
            if self._closed:
                return None
            if self._idle:
                return self._idle.pop()
            if self._opened == SIDE_READERS:
                return None
            self._opened += 1
        try:
            conn = _connect(self._file, self._how, False)
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            with self._guard:
                self._opened -= 1
            raise
        return conn

    def close(self) -> None:
        """Close the idle readers now, and the busy ones when their reads end."""
        with self._guard:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()


@attrs.frozen
class _Identity:
    """The opened file, to tell later whether ``path`` still names it."""

    path: str
    inode: tuple[int, int]


def _store_path(path: object, readonly: bool) -> str:
    if not isinstance(path, str | os.PathLike) or not isinstance(os.fspath(path), str):
        raise StoreTypeError(
            f"path must be a file name (a str or os.PathLike), got {path!r}. Pass a name such "
            "as 'jobs.db'.",
            argument="path",
            expected="a file name",
            got=path,
        )
    text = os.fspath(path)
    if not text or "\x00" in text or (readonly and text == ":memory:"):
        raise StoreUsageError(
            f"path must be a file name, got {text!r}. Pass a name such as 'jobs.db'"
            + (" (a read-only store must be an existing file)." if readonly else "."),
            argument="path",
            expected="a file name",
            got=path,
        )
    return text


def _open(path: str, how: _Opening) -> tuple[sqlite3.Connection, _Identity | None]:
    if path == ":memory:":
        return _connect(path, how, False), None
    size = _check_file(path, how.readonly)
    conn = _connect(path, how, False)
    try:
        if how.readonly:
            conn = _readable(conn, path, how)
        check = how.check if how.check is not None else 0 < size <= CHECK_LIMIT
        _prepare(conn, path, how.readonly, check)
        identity = _Identity(os.path.abspath(path), _inode(path))
        if not how.readonly:
            _run_pragma(conn, path, f"PRAGMA synchronous = {how.synchronous.upper()}")
    except BaseException:
        conn.close()
        raise
    return conn, identity


def _connect(path: str, how: _Opening, immutable: bool) -> sqlite3.Connection:
    target: str = path
    if how.readonly:
        # mode=ro opens the file read-only and never writes to it (SQLite may
        # still create the -wal/-shm files beside it, if it can).
        target = Path(path).absolute().as_uri() + ("?immutable=1" if immutable else "?mode=ro")
    try:
        return sqlite3.connect(
            target,
            timeout=min(how.timeout, _MAX_BUSY_TIMEOUT),
            isolation_level=None,
            check_same_thread=False,
            uri=how.readonly,
        )
    except sqlite3.Error as exc:
        raise StoreAccessError(
            f"Cannot open the store {path}: {exc}. Check that its directory exists"
            + (" and is writable." if not how.readonly else "."),
            path=path,
        ) from exc


def _readable(conn: sqlite3.Connection, path: str, how: _Opening) -> sqlite3.Connection:
    """``conn`` if it can read the file, else an ``immutable`` connection when that is safe.

    A WAL-mode file can only be read where SQLite can create the ``-shm``
    file beside it. Where it cannot (a read-only directory or filesystem) and
    there is no write-ahead log, the file alone holds every commit; it is
    read as immutable (without locks). That assumes nobody writes to it
    meanwhile; only a writer with more rights than this process could.
    """
    try:
        conn.execute("PRAGMA application_id").fetchall()
        return conn
    except sqlite3.Error as exc:
        conn.close()
        if _code(exc) != _CANTOPEN:
            raise _opening_error(path, exc, readonly=True) from exc
        if _has_wal(path):
            raise StoreAccessError(
                f"Cannot read the store {path}: its write-ahead log ({path}-wal) holds commits "
                f"not yet in the file, and SQLite cannot read it without creating {path}-shm "
                "there. Copy the store with its -wal file to a writable directory and open "
                "the copy, or open it writable once where it is.",
                path=path,
            ) from exc
    return _connect(path, how, True)


def _inode(path: str) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_dev, found.st_ino


def _check_file(path: str, readonly: bool) -> int:
    """Refuse, before SQLite touches it, a file that is no store or is truncated.

    Returns the file's size.
    """
    target = Path(path)
    if target.is_dir():
        raise StoreAccessError(
            f"{path} is a directory; a store is a file. Pass a file name such as "
            f"{target / 'jobs.db'}.",
            path=path,
        )
    try:
        size = target.stat().st_size if target.exists() else 0
        head = b""
        if size:
            with target.open("rb") as handle:
                head = handle.read(100)
    except OSError as exc:
        raise StoreAccessError(f"Cannot read the store {path}: {exc.strerror}.", path=path) from exc
    if size == 0:
        _check_readonly_exists(path, readonly, target.exists())
        return 0
    if not head.startswith(_MAGIC):
        raise NotAStoreError(
            f"{path} is not a FlowForge store: it is not an SQLite database at all. It was left "
            "untouched; give the store a new file name.",
            path=path,
        )
    expected = _expected_size(head)
    if expected > size and not _has_wal(path):
        raise CorruptStoreError(
            f"The store {path} is truncated: its header promises {expected} bytes, the file "
            f"has {size}. It was left as it is; restore it from a backup, or delete it (its "
            "jobs are lost) and start a new store.",
            path=path,
        )
    return size


def _check_readonly_exists(path: str, readonly: bool, exists: bool) -> None:
    if not readonly:
        return
    if not exists:
        raise StoreAccessError(
            f"There is no store at {path} to open read-only. Check the path; a store is made "
            "by opening it without readonly=True.",
            path=path,
        )
    raise NotAStoreError(
        f"{path} is empty: it is not a store yet, and a store opened read-only cannot be made "
        "one. Open it without readonly=True to make it a store.",
        path=path,
    )


def _expected_size(head: bytes) -> int:
    if len(head) < 100:
        return 100
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The page count is only valid when written by a version that kept it.
    valid = head[24:28] == head[92:96]
    return page_size * pages if valid else 0


def _has_wal(path: str) -> bool:
    # With a write-ahead log present, the log may still hold pages the main
    # file lacks (a crash mid-checkpoint); SQLite itself recovers those.
    wal = Path(path + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def _prepare(conn: sqlite3.Connection, path: str, readonly: bool, check: bool) -> None:
    app, version, tables = _identify(conn, path)
    if app == 0 and version == 0 and not tables:
        if readonly:
            _check_readonly_exists(path, True, True)
        if _create(conn, path):
            return
        app, version, tables = _identify(conn, path)
    if app != APPLICATION_ID:
        listed = ", ".join(tables) or "(none)"
        raise NotAStoreError(
            f"{path} is an SQLite database but not a FlowForge store (its tables: {listed}). "
            "It was left untouched; give the store a new file name.",
            path=path,
        )
    _check_version(path, version, readonly)
    if check:  # before anything is written to a file that may be damaged
        _quick_check(conn, path)
    if not readonly:
        _run_pragma(conn, path, "PRAGMA journal_mode = WAL")
        if version < SCHEMA_VERSION:
            _migrate(conn, path)
    _check_meta(conn, path)


def _check_version(path: str, version: int, readonly: bool) -> None:
    if version < 1:
        raise CorruptStoreError(
            f"The store {path} has no schema version; it was left as it is. Start a new "
            "store under another file name.",
            path=path,
        )
    if version > SCHEMA_VERSION or (readonly and version < SCHEMA_VERSION):
        newer = version > SCHEMA_VERSION
        raise StoreVersionError(
            f"The store {path} has schema version {version}, "
            + (
                f"newer than this FlowForge reads ({SCHEMA_VERSION}). Upgrade FlowForge to open it."
                if newer
                else f"older than this FlowForge reads ({SCHEMA_VERSION}), and a store opened "
                "read-only is not migrated. Open it once without readonly=True to migrate it."
            ),
            path=path,
            found=version,
            supported=SCHEMA_VERSION,
        )


def _identify(conn: sqlite3.Connection, path: str) -> tuple[int, int, list[str]]:
    try:
        app = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = [
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
    except sqlite3.Error as exc:
        raise _opening_error(path, exc) from exc
    return app, version, tables


def _create(conn: sqlite3.Connection, path: str) -> bool:
    """Make the empty file a store; False if another process just did."""
    _run_pragma(conn, path, "PRAGMA journal_mode = WAL")

    def work(conn: sqlite3.Connection) -> bool:
        app, _, tables = _identify(conn, path)
        if app or tables:
            return False
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("format", FORMAT),
                ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", str(time.time())),
            ],
        )
        return True

    return _opening_transaction(conn, path, work)


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    def work(conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            version += 1
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))

    _opening_transaction(conn, path, work)


def _check_meta(conn: sqlite3.Connection, path: str) -> None:
    row = None
    if "meta" in _identify(conn, path)[2]:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.Error as exc:
            raise _opening_error(path, exc) from exc
    if row is None or row[0] != FORMAT:
        raise CorruptStoreError(
            f"The store {path} is marked as a FlowForge store but its meta table is missing or "
            "wrong; it was left as it is.",
            path=path,
        )


def _opening_transaction(
    conn: sqlite3.Connection, path: str, work: Callable[[sqlite3.Connection], T]
) -> T:
    try:
        return _in_transaction(conn, work, True)
    except sqlite3.Error as exc:
        raise _opening_error(path, exc) from exc


def _run_pragma(conn: sqlite3.Connection, path: str, pragma: str) -> None:
    try:
        conn.execute(pragma).fetchall()
    except sqlite3.Error as exc:
        raise _opening_error(path, exc) from exc


def _quick_check(conn: sqlite3.Connection, path: str) -> None:
    try:
        found = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)").fetchall()]
    except sqlite3.Error as exc:
        raise _opening_error(path, exc) from exc
    if found != ["ok"]:
        raise _damaged(path, "; ".join(found))


def _opening_error(path: str, exc: sqlite3.Error, *, readonly: bool = False) -> StoreError:
    code = _code(exc)
    if code in _DAMAGED:
        return _damaged(path, exc)
    if code in _BUSY:
        return StoreBusyError(
            f"The store {path} stayed locked while opening it ({exc}).", path=path, timeout=0.0
        )
    hint = "" if readonly else _access_hint(path, code)
    return StoreAccessError(f"Cannot open the store {path}: {exc}.{hint}", path=path)


def _access_hint(path: str, code: int) -> str:
    """What to do when SQLite could not open or write the file, if it is read-only."""
    if code not in (_CANTOPEN, _READONLY) or _writable(path):
        return ""
    return (
        " The file or its directory is read-only (or on a read-only filesystem). To only read "
        "the jobs, open it with SQLiteStore(path, readonly=True); to run jobs, make it writable "
        "or use a store elsewhere."
    )


def _writable(path: str) -> bool:
    folder = os.path.dirname(os.path.abspath(path))
    return os.access(folder, os.W_OK) and (not os.path.exists(path) or os.access(path, os.W_OK))


def _damaged(path: str, exc: BaseException | str) -> CorruptStoreError:
    return CorruptStoreError(
        f"The store {path} is damaged ({exc}). It was left as it is; restore it from a "
        "backup, or delete it (its jobs are lost) and start a new store.",
        path=path,
    )


def _bad_text(exc: sqlite3.Error) -> bool:
    # sqlite3 raises this (with no SQLite error code) for text that is not
    # UTF-8, which FlowForge never writes.
    return "Could not decode to UTF-8" in str(exc)


def _vanished(path: str, *, replaced: bool) -> str:
    if replaced:
        return (
            f"The file {path} is no longer the store that was opened: it was replaced or moved "
            "while the store was open, so what is committed now would not be found there. Keep "
            "a store's file in place while it is open; open the store again to use the new file."
        )
    return (
        f"The store {path} was deleted (or its directory was) while it was open, so what was "
        "committed since is lost and nothing more can be stored. Keep a store's file in place "
        "while jobs run against it."
    )


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _in_transaction(
    conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], write: bool
) -> T:
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


# -- reading and writing -----------------------------------------------------------


def _write(conn: sqlite3.Connection, batch: Batch, path: str) -> None:
    if batch.owner is not None:
        found = conn.execute(
            "SELECT status, job_id, lease_owner, lease_since, lease_heartbeat, lease_expires "
            "FROM jobs WHERE job_id = ?",
            (batch.job_id,),
        ).fetchone()
        lease = None if found is None or found[2] is None else Lease(*found[1:])
        _lease.check(batch, lease, None if found is None else found[0], f"the store {path}", path)
    jid = _job_row(conn, batch, path)
    if batch.owner is not None:
        conn.execute(*_lease.update(batch, jid, "?"))
    if batch.replace:
        for table in _CHILD_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE jid = ?", (jid,))
    if batch.dropped:
        rows = [(jid, first) for first in batch.dropped]
        conn.executemany("DELETE FROM messages WHERE jid = ? AND first = ?", rows)
        conn.executemany("DELETE FROM consumed WHERE jid = ? AND first = ?", rows)
    if batch.consumed:
        conn.executemany(
            "INSERT OR REPLACE INTO consumed VALUES (?, ?, ?, ?)",
            [(jid, *row) for row in batch.consumed],
        )
    if batch.segments:
        conn.executemany(
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?)",
            [(jid, *row) for row in batch.segments],
        )
    if batch.routines:
        conn.executemany(
            "INSERT OR REPLACE INTO routine_states VALUES (?, ?, ?)",
            [(jid, rid, state) for rid, state in batch.routines],
        )
    if batch.slots:
        _write_slots(conn, jid, batch.slots)
    if batch.tasks:
        conn.executemany(
            "INSERT OR REPLACE INTO task_runs VALUES (?, ?, ?)",
            [(jid, name, run) for name, run in batch.tasks],
        )
    if batch.tails:
        conn.executemany(
            "INSERT OR REPLACE INTO tails VALUES (?, ?, ?, ?, ?, ?)",
            [(jid, *row) for row in batch.tails],
        )
    conn.executemany(
        "DELETE FROM tails WHERE jid = ? AND kind = ? AND first < ? AND first + count <= ?",
        [(jid, kind, keep, keep) for kind, keep in batch.keep_from.items()],
    )
    if batch.flow is not None:
        _put_flow(conn, *batch.flow, batch.updated_at)


def _job_row(conn: sqlite3.Connection, batch: Batch, path: str) -> int:
    values = (
        batch.flow_id,
        batch.status,
        batch.updated_at,
        batch.started_at,
        batch.finished_at,
        batch.reason,
        batch.header,
    )
    if batch.replace:
        row = conn.execute(
            "INSERT INTO jobs (flow_id, status, updated_at, started_at, finished_at, reason, "
            "header, job_id, created_at, entry, queued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id) DO UPDATE SET flow_id = excluded.flow_id, "
            "status = excluded.status, updated_at = excluded.updated_at, "
            "started_at = excluded.started_at, finished_at = excluded.finished_at, "
            "reason = excluded.reason, header = excluded.header, entry = excluded.entry, "
            "queued_at = COALESCE(jobs.queued_at, excluded.queued_at) "
            "RETURNING jid",
            (*values, batch.job_id, batch.created_at, batch.entry, _lease.queued_at(batch)),
        ).fetchone()
    else:
        row = conn.execute(
            "UPDATE jobs SET flow_id = ?, status = ?, updated_at = ?, started_at = ?, "
            "finished_at = ?, reason = ?, header = ? WHERE job_id = ? RETURNING jid",
            (*values, batch.job_id),
        ).fetchone()
    if row is None:
        raise JobNotFoundError(
            f"Job '{batch.job_id}' was deleted from the store {path} while it was running, so "
            "its progress cannot be recorded. Do not delete running jobs.",
            path=path,
            job_id=batch.job_id,
        )
    return int(row[0])


def _write_slots(
    conn: sqlite3.Connection, jid: int, slots: Sequence[tuple[str, str | None]]
) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO slot_states VALUES (?, ?, ?)",
        [(jid, key, state) for key, state in slots if state is not None],
    )
    conn.executemany(
        "DELETE FROM slot_states WHERE jid = ? AND slot_key = ?",
        [(jid, key) for key, state in slots if state is None],
    )


def _put_flow(conn: sqlite3.Connection, flow_id: str, definition: str, when: float) -> None:
    conn.execute(
        "INSERT INTO flows VALUES (?, ?, ?) ON CONFLICT (flow_id) DO UPDATE SET "
        "definition = excluded.definition, updated_at = excluded.updated_at",
        (flow_id, definition, when),
    )


def _read_job(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
    row = conn.execute("SELECT jid, header, entry FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    jid = (row[0],)
    return JobRecord(
        row[1],
        row[2],
        conn.execute(
            "SELECT m.entries, COALESCE(c.runs, '[]') FROM messages m LEFT JOIN consumed c "
            "ON c.jid = m.jid AND c.first = m.first WHERE m.jid = ? ORDER BY m.first",
            jid,
        ).fetchall(),
        conn.execute("SELECT routine_id, state FROM routine_states WHERE jid = ?", jid).fetchall(),
        conn.execute("SELECT slot_key, state FROM slot_states WHERE jid = ?", jid).fetchall(),
        conn.execute(
            "SELECT kind, first, count, entries, stamps FROM tails WHERE jid = ? "
            "ORDER BY kind, first",
            jid,
        ).fetchall(),
        conn.execute("SELECT name, run FROM task_runs WHERE jid = ?", jid).fetchall(),
    )


def _matching(flow_id: str | None, statuses: Collection[str] | None) -> tuple[str, list[object]]:
    """The condition (and its parameters) of the jobs of ``flow_id`` with ``statuses``."""
    where = "(?1 IS NULL OR flow_id = ?1)"
    if statuses is None:
        return where, [flow_id]
    return f"{where} AND status IN ({', '.join(['?'] * len(statuses))})", [flow_id, *statuses]


def _read_brief(conn: sqlite3.Connection, job_id: str) -> BriefRecord | None:
    row = conn.execute(
        f"SELECT jid, header, entry, {_PENDING} FROM jobs j WHERE job_id = ?", (job_id,)
    ).fetchone()
    if row is None:
        return None
    jid = (row[0],)
    return BriefRecord(
        row[1],
        row[2],
        row[3],
        conn.execute("SELECT routine_id, state FROM routine_states WHERE jid = ?", jid).fetchall(),
        conn.execute(
            "SELECT first, count, entries FROM tails WHERE jid = ? AND kind = 'errors' "
            "ORDER BY first",
            jid,
        ).fetchall(),
        conn.execute("SELECT name, run FROM task_runs WHERE jid = ?", jid).fetchall(),
    )


def _drop_jobs(conn: sqlite3.Connection, jids: list[int]) -> None:
    rows = [(jid,) for jid in jids]
    for table in (*_CHILD_TABLES, "jobs"):
        conn.executemany(f"DELETE FROM {table} WHERE jid = ?", rows)
