""":class:`PostgresStore`: jobs kept in a PostgreSQL database, shared by many processes.

It needs the ``postgres`` extra (``pip install 'flowforge[postgres]'``:
psycopg 3 and its connection pool). It keeps every guarantee of
:class:`~flowforge.store.SQLiteStore`: each commit of a job's steps is one
transaction, so what the database holds is always the job after some step,
and a process killed at any instruction resumes exactly.

Its tables live in a schema of their own (``flowforge`` by default; the
``schema=`` argument or ``?schema=`` in the URL name another), so it never
reads or writes anyone else's tables. Opening checks that schema before
touching it, under an advisory lock so that processes opening it together
agree:

- a missing or empty schema is made a store (schema, tables and a ``meta``
  table naming the format and schema version, in one transaction);
- a store of an older schema version is migrated forward, in one transaction;
- a store of a newer version raises :class:`StoreVersionError`; a schema
  holding other tables, or a ``meta`` table that is not FlowForge's, raises
  :class:`NotAStoreError`, and nothing is changed.

Connections come from a pool (``pool_size`` at most); each checks out one
connection per transaction, so threads and jobs share the store freely. A
server that cannot be reached raises :class:`StoreConnectionError`, refused
credentials :class:`StoreAuthError`, a malformed URL :class:`StoreURLError`;
no message, log line or ``repr`` shows the password.
"""

from __future__ import annotations

import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from . import _lease
from ._errors import (
    CorruptStoreError,
    JobNotFoundError,
    NotAStoreError,
    StoreAccessError,
    StoreAuthError,
    StoreBusyError,
    StoreClosedError,
    StoreConnectionError,
    StoreError,
    StoreReadOnlyError,
    StoreURLError,
    StoreUsageError,
    StoreVersionError,
)
from ._lease import Control, Lease
from ._records import Batch, BriefRecord, JobRecord
from ._url import hide_password
from .base import Durability, JobSummary, Store

T = TypeVar("T")
Connection = psycopg.Connection[Any]

#: The schema version this FlowForge writes (the ``schema_version`` row of ``meta``).
SCHEMA_VERSION = 3
FORMAT = "flowforge/store"
DEFAULT_SCHEMA = "flowforge"
_TABLES = (
    "consumed",
    "flows",
    "jobs",
    "messages",
    "meta",
    "routine_states",
    "slot_states",
    "tails",
    "task_runs",
)
#: The columns of a :class:`JobSummary` but its pending count.
_SUMMARY = "job_id, flow_id, status, created_at, updated_at, started_at, finished_at, reason"
#: The number of pending messages of the job ``j``, as an SQL expression.
_PENDING = (
    "(SELECT COALESCE(SUM(COALESCE(c.alive, m.count)), 0)::bigint FROM messages m "
    "LEFT JOIN consumed c ON c.jid = m.jid AND c.first = m.first WHERE m.jid = j.jid)"
)
_CHILD_TABLES = ("messages", "consumed", "routine_states", "slot_states", "tails", "task_runs")
_JOB = "jid bigint NOT NULL REFERENCES jobs ON DELETE CASCADE"
_TIME = "double precision"

_TASK_RUNS = (
    f"CREATE TABLE task_runs ({_JOB}, name text NOT NULL, run text NOT NULL, "
    "PRIMARY KEY (jid, name))"
)

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
    f"CREATE TABLE flows (flow_id text PRIMARY KEY, definition text NOT NULL, "
    f"updated_at {_TIME} NOT NULL)",
    f"CREATE TABLE jobs (jid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    f"job_id text NOT NULL UNIQUE, flow_id text, status text NOT NULL, "
    f"created_at {_TIME} NOT NULL, updated_at {_TIME} NOT NULL, started_at {_TIME}, "
    f"finished_at {_TIME}, reason text, header text NOT NULL, entry text)",
    "CREATE INDEX jobs_by_flow ON jobs (flow_id, created_at)",
    "CREATE INDEX jobs_by_status ON jobs (status, updated_at)",
    f"CREATE TABLE messages ({_JOB}, first bigint NOT NULL, count integer NOT NULL, "
    "entries text NOT NULL, PRIMARY KEY (jid, first))",
    # Kept apart from the (large, never changed) entries so that recording a
    # consumed message rewrites a small row only.
    f"CREATE TABLE consumed ({_JOB}, first bigint NOT NULL, alive integer NOT NULL, "
    "runs text NOT NULL, PRIMARY KEY (jid, first))",
    f"CREATE TABLE routine_states ({_JOB}, routine_id text NOT NULL, state text NOT NULL, "
    "PRIMARY KEY (jid, routine_id))",
    f"CREATE TABLE slot_states ({_JOB}, slot_key text NOT NULL, state text NOT NULL, "
    "PRIMARY KEY (jid, slot_key))",
    f"CREATE TABLE tails ({_JOB}, kind text NOT NULL, first bigint NOT NULL, "
    "count integer NOT NULL, entries text NOT NULL, stamps bytea, "
    "PRIMARY KEY (jid, kind, first))",
    _TASK_RUNS,
)
# Version 3: leases, control requests and the queue, on the job's row.
_LEASES = (
    f"ALTER TABLE jobs ADD COLUMN lease_owner text, ADD COLUMN lease_since {_TIME}, "
    f"ADD COLUMN lease_heartbeat {_TIME}, ADD COLUMN lease_expires {_TIME}, "
    f"ADD COLUMN request text, ADD COLUMN request_reason text, ADD COLUMN queued_at {_TIME}",
    "CREATE INDEX jobs_queue ON jobs (queued_at, jid) "
    "WHERE queued_at IS NOT NULL AND status IN ('queued', 'running')",
)
_SCHEMA += _LEASES


def _add_leases(conn: Connection) -> None:
    for statement in _LEASES:
        conn.execute(statement.encode())


#: Upgrades: ``MIGRATIONS[n]`` brings a version ``n`` schema to ``n + 1`` (within its transaction).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _add_leases}


def _add_task_runs(conn: Connection) -> None:
    """Version 2 keeps each task's run (status and result) of a job."""
    conn.execute(_TASK_RUNS.encode())


MIGRATIONS[1] = _add_task_runs
#: The schema version that brought each table added by a migration.
_SINCE = {"task_runs": 2}

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: Transactions that lost a race with another one; they are simply run again.
_RETRY = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_ATTEMPTS = 8
_AUTH_FAILED = ("password authentication failed", "no password supplied", "authentication failed")


class PostgresStore(Store):
    """Jobs checkpointed in a PostgreSQL database; see :mod:`flowforge.store.postgres`.

    Args:
        dsn: The database, as a URL (``postgresql://user:password@host:5432/db``,
            ``postgres://`` too) or a libpq ``key=value`` string. A URL may
            name the schema with ``?schema=NAME``.
        schema: The schema that holds the store's tables (default
            ``flowforge``); it is created if missing.
        durability: ``"grouped"`` (default) or ``"activation"``; see
            :class:`~flowforge.store.Store`.
        group_max: With ``"grouped"``, the most steps in one commit.
        group_seconds: With ``"grouped"``, a group is committed at the first
            step after it has been open this long.
        timeout: Seconds to wait for the server (connecting) and for a free
            connection of the pool before giving up.
        pool_size: The most connections the store holds open.
        readonly: Open an existing store to read it only: nothing is
            created, migrated or written, and every write raises
            :class:`StoreReadOnlyError`.
        lease_seconds, heartbeat_seconds, poll_seconds: The leases of running
            jobs; see :class:`~flowforge.store.Store`. Lease times are the
            clocks of the machines running jobs, so keep them in sync (NTP).

    Raises:
        StoreURLError: ``dsn`` is malformed.
        StoreConnectionError: The server cannot be reached.
        StoreAuthError: The server refused the user or password.
        StoreAccessError: The database does not exist, or the user may not
            create the schema.
        NotAStoreError: The schema holds tables that are not a FlowForge store.
        StoreVersionError: The store was written by a newer FlowForge.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        durability: Durability = "grouped",
        group_max: int = 10_000,
        group_seconds: float = 0.05,
        timeout: float = 30.0,
        pool_size: int = 4,
        readonly: bool = False,
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
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise StoreUsageError(f"timeout must be a number of seconds > 0, got {timeout!r}.")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise StoreUsageError(f"pool_size must be an int >= 1, got {pool_size!r}.")
        conninfo, from_url, params = _parse(dsn)
        self.url = safe_url(params)
        self.schema = _check_schema(schema or from_url or DEFAULT_SCHEMA)
        self.timeout = float(timeout)
        if not isinstance(readonly, bool):
            raise StoreUsageError(f"readonly must be True or False, got {readonly!r}.")
        #: Whether the store was opened with ``readonly=True``.
        self.readonly = readonly
        self._secret = params.get("password") or ""
        self._pid = os.getpid()
        options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            options["connect_timeout"] = max(2, round(min(self.timeout, 30)))
        self._prepare(conninfo, options)
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            conninfo,
            kwargs=options,
            min_size=1,
            max_size=pool_size,
            open=False,
            configure=self._configure,
            name=f"flowforge {self.url}",
            timeout=self.timeout,
        )
        try:
            self._pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreConnectionError(
                f"Cannot open {self.describe()}: no connection within {self.timeout} s.",
                path=self.url,
            ) from exc

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return (
            f"PostgresStore({self.url!r}, schema={self.schema!r}, "
            f"durability={self.durability!r}{mode})"
        )

    def describe(self) -> str:
        return f"the PostgreSQL store {self.url} (schema {self.schema})"

    def location(self) -> str:
        return self.url

    # -- connections and transactions ---------------------------------------------

    def _configure(self, conn: Connection) -> None:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    def _prepare(self, conninfo: str, options: dict[str, Any]) -> None:
        try:
            conn = psycopg.connect(conninfo, **options)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from None
        try:
            with conn:
                self._configure(conn)
                with conn.transaction():
                    _open_schema(conn, self.schema, self.describe(), self.url, self.readonly)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def _transact(self, work: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``work`` in one transaction, again if it lost a race with another one."""
        if write and self.readonly:
            raise StoreReadOnlyError(
                f"Cannot write to {self.describe()}: it was opened read-only (readonly=True). "
                "Open it without readonly=True to run, save or delete jobs.",
                path=self.url,
            )
        pause, attempts = 0.002, 0
        while True:
            try:
                with self._connection() as conn, conn.transaction():
                    if not write:
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    return work(conn)
            except _RETRY as exc:
                attempts += 1
                if attempts == _ATTEMPTS:
                    raise self._translate(exc) from exc
            except PoolTimeout as exc:
                raise StoreBusyError(
                    f"No connection of {self.describe()} became free within {self.timeout} s. "
                    "Give PostgresStore a larger pool_size= or a longer timeout=.",
                    path=self.url,
                    timeout=self.timeout,
                ) from exc
            except psycopg.Error as exc:
                raise self._translate(exc) from exc
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.1)

    def _connection(self) -> Any:
        if self._closed:
            raise StoreClosedError(
                f"{self.describe()} is closed; open it again to use it.", path=self.url
            )
        if os.getpid() != self._pid:
            raise StoreError(
                f"{self.describe()} was opened in another process (this one was forked from it); "
                "database connections cannot cross a fork. Open the store in this process.",
                path=self.url,
            )
        return self._pool.connection(timeout=self.timeout)

    def _connect_error(self, exc: psycopg.Error) -> StoreError:
        text = self._scrub(str(exc))
        if isinstance(exc, psycopg.ProgrammingError):
            return StoreURLError(
                f"Cannot use the PostgreSQL URL {self.url}: {text} {_FORMS}", url=self.url
            )
        if any(phrase in text for phrase in _AUTH_FAILED):
            return StoreAuthError(
                f"PostgreSQL refused the credentials for {self.url}: {text} Check the user "
                "name and password in the URL (or in PGPASSWORD or ~/.pgpass).",
                path=self.url,
            )
        if "does not exist" in text:
            return StoreAccessError(
                f"Cannot open {self.describe()}: {text} Create the database (createdb NAME) or "
                "name an existing one in the URL.",
                path=self.url,
            )
        return StoreConnectionError(
            f"Cannot connect to PostgreSQL at {self.url}: {text} Check that the server runs "
            "and accepts connections there, and the host and port in the URL.",
            path=self.url,
        )

    def _translate(self, exc: psycopg.Error) -> StoreError:
        text = self._scrub(str(exc))
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreAccessError(
                f"Cannot use {self.describe()}: {text} Grant the user the rights on schema "
                f"{self.schema}, or name a schema it owns (schema=).",
                path=self.url,
            )
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
            return CorruptStoreError(
                f"The tables of {self.describe()} are gone: {text} Was the schema dropped? "
                "Open the store again to create it anew.",
                path=self.url,
            )
        if isinstance(exc, psycopg.OperationalError) and not exc.sqlstate:
            return StoreConnectionError(
                f"Lost the connection to {self.describe()}: {text}", path=self.url
            )
        return StoreError(f"{self.describe()} failed: {text}", path=self.url)

    def _scrub(self, text: str) -> str:
        """``text`` on one line, ending a sentence, with no password in it."""
        text = " ".join(text.split())
        text = text if text.endswith((".", "?", "!")) else f"{text}."
        return text.replace(self._secret, "***") if self._secret else text

    # -- storage ----------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        self._transact(lambda conn: _write(conn, batch, self.describe(), self.url), write=True)

    def read_job(self, job_id: str) -> JobRecord | None:
        return self._transact(lambda conn: _read_job(conn, job_id), write=False)

    def read_brief(self, job_id: str) -> BriefRecord | None:
        return self._transact(lambda conn: _read_brief(conn, job_id), write=False)

    def read_summaries(
        self, flow_id: str | None, statuses: Collection[str] | None
    ) -> list[JobSummary]:
        where, params = _matching(flow_id, statuses)
        query = (
            f"SELECT {_SUMMARY}, {_PENDING} FROM jobs j WHERE {where} "
            'ORDER BY created_at, job_id COLLATE "C"'
        )
        rows = self._transact(lambda conn: conn.execute(query, params).fetchall(), write=False)
        return [JobSummary(*row) for row in rows]

    def read_summary_page(
        self, flow_id: str | None, statuses: Collection[str] | None, limit: int, offset: int
    ) -> tuple[list[JobSummary], int]:
        where, params = _matching(flow_id, statuses)
        newest = 'ORDER BY created_at DESC, job_id COLLATE "C" DESC'
        # The page is cut before the pending counts are summed, so a page costs its own jobs.
        page = (
            f"SELECT {_SUMMARY}, {_PENDING} FROM (SELECT jid, {_SUMMARY} FROM jobs "
            f"WHERE {where} {newest} LIMIT %(limit)s OFFSET %(offset)s) j {newest}"
        )

        def work(conn: Connection) -> tuple[list[tuple[Any, ...]], int]:
            rows = conn.execute(page, {**params, "limit": limit, "offset": offset}).fetchall()
            total = conn.execute(f"SELECT count(*) FROM jobs WHERE {where}", params).fetchone()
            return rows, 0 if total is None else int(total[0])

        rows, total = self._transact(work, write=False)
        return [JobSummary(*row) for row in rows], total

    def remove_job(self, job_id: str) -> bool:
        def work(conn: Connection) -> bool:
            return conn.execute("DELETE FROM jobs WHERE job_id = %s", (job_id,)).rowcount > 0

        return self._transact(work, write=True)

    def remove_jobs(self, cutoff: float, statuses: Collection[str], keep: Collection[str]) -> int:
        def work(conn: Connection) -> int:
            return conn.execute(
                "DELETE FROM jobs WHERE updated_at <= %s AND status = ANY(%s) "
                "AND NOT job_id = ANY(%s)",
                (cutoff, list(statuses), list(keep)),
            ).rowcount

        return self._transact(work, write=True)

    def write_flow(self, flow_id: str, definition: str, when: float) -> None:
        self._transact(lambda conn: _put_flow(conn, flow_id, definition, when), write=True)

    def read_flow(self, flow_id: str) -> str | None:
        row = self._transact(
            lambda conn: conn.execute(
                "SELECT definition FROM flows WHERE flow_id = %s", (flow_id,)
            ).fetchone(),
            write=False,
        )
        return None if row is None else str(row[0])

    def release_resources(self) -> None:
        self._pool.close()

    def read_lease(self, job_id: str) -> Lease | None:
        row = self._transact(
            lambda conn: conn.execute(
                "SELECT job_id, lease_owner, lease_since, lease_heartbeat, lease_expires "
                "FROM jobs WHERE job_id = %s AND lease_owner IS NOT NULL",
                (job_id,),
            ).fetchone(),
            write=False,
        )
        return None if row is None else Lease(*row)

    def renew_leases(
        self, owner: str, job_ids: Collection[str], now: float, expires_at: float | None
    ) -> dict[str, Control]:
        ids = list(job_ids)

        def work(conn: Connection) -> dict[str, Control]:
            if expires_at is not None:
                conn.execute(
                    "UPDATE jobs SET lease_heartbeat = %s, lease_expires = %s "
                    "WHERE lease_owner = %s AND job_id = ANY(%s)",
                    (now, expires_at, owner, ids),
                )
            rows = conn.execute(
                "SELECT job_id, request, request_reason FROM jobs "
                "WHERE lease_owner = %s AND job_id = ANY(%s)",
                (owner, ids),
            ).fetchall()
            return {job_id: _lease.control(action, reason) for job_id, action, reason in rows}

        return self._transact(work, write=expires_at is not None)

    def send_control(
        self, job_id: str, action: str, reason: str, now: float
    ) -> Literal["sent", "idle", "absent"]:
        def work(conn: Connection) -> Literal["sent", "idle", "absent"]:
            row = conn.execute(
                "SELECT lease_expires, request FROM jobs WHERE job_id = %s FOR UPDATE", (job_id,)
            ).fetchone()
            if row is None:
                return "absent"
            if row[0] is None or row[0] <= now:
                return "idle"
            if row[1] != "cancel":
                conn.execute(
                    "UPDATE jobs SET request = %s, request_reason = %s WHERE job_id = %s",
                    (action, reason, job_id),
                )
            return "sent"

        return self._transact(work, write=True)

    def claim_queued(self, owner: str, now: float, expires_at: float) -> str | None:
        def work(conn: Connection) -> str | None:
            # SKIP LOCKED: workers claiming together each take a different job, never waiting.
            row = conn.execute(
                "UPDATE jobs SET lease_owner = %(owner)s, lease_since = %(now)s, "
                "lease_heartbeat = %(now)s, lease_expires = %(expires)s, request = NULL, "
                "request_reason = NULL WHERE jid = (SELECT jid FROM jobs "
                "WHERE queued_at IS NOT NULL AND status IN ('queued', 'running') "
                "AND (lease_expires IS NULL OR lease_expires <= %(now)s) "
                "ORDER BY queued_at, jid LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING job_id",
                {"owner": owner, "now": now, "expires": expires_at},
            ).fetchone()
            return None if row is None else str(row[0])

        return self._transact(work, write=True)


_FORMS = (
    "A PostgreSQL store URL looks like postgresql://user:password@host:5432/database "
    "(postgres:// too), optionally with ?schema=NAME."
)


# -- the URL -----------------------------------------------------------------------------


def _parse(dsn: str) -> tuple[str, str | None, dict[str, str]]:
    """The libpq conninfo, the schema named in the URL, and the connection parameters."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise StoreURLError(f"The PostgreSQL store needs a URL, got {dsn!r}. {_FORMS}", url="")
    schema = None
    conninfo = dsn
    if "://" in dsn:
        parts = urllib.parse.urlsplit(dsn)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        schema = next((value for key, value in query if key == "schema"), None)
        rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
        conninfo = urllib.parse.urlunsplit(parts._replace(query=rest))
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    except (psycopg.Error, ValueError) as exc:
        shown = hide_password(dsn)
        raise StoreURLError(
            f"{shown!r} is not a PostgreSQL URL libpq understands ({_redacted(exc, dsn)}). "
            f"{_FORMS}",
            url=shown,
        ) from None
    ports = params.get("port", "5432").split(",")
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports):
        shown = hide_password(dsn)
        raise StoreURLError(
            f"{shown!r} has the port {params['port']!r}; a port is a number from 1 to 65535. "
            f"{_FORMS}",
            url=shown,
        )
    return conninfo, schema, params


def safe_url(params: dict[str, str]) -> str:
    """The connection parameters as a URL without the password, for messages."""
    user = params.get("user", "")
    host = params.get("host", "")
    port = params.get("port", "")
    where = f"{host}:{port}" if port else host
    auth = f"{urllib.parse.quote(user)}@" if user else ""
    return f"postgresql://{auth}{where}/{params.get('dbname', '')}"


def _redacted(exc: BaseException, dsn: str) -> str:
    """The error's message, without any password ``dsn`` holds (URL or ``password=``)."""
    text = " ".join(str(exc).split())
    secrets = re.findall(r"://[^:/@?#]*:([^@/?#]+)@", dsn)
    secrets += re.findall(r"password\s*=\s*'?([^'\s]+)", dsn)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _check_schema(name: str) -> str:
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise StoreUsageError(
            f"The schema name must be letters, digits and underscores (up to 63, not starting "
            f"with a digit), got {name!r}."
        )
    return name


# -- opening ----------------------------------------------------------------------------


def _open_schema(conn: Connection, schema: str, name: str, url: str, readonly: bool) -> None:
    """Create, check or migrate the store's schema (in the caller's transaction)."""
    # Openers of one schema take turns, so only one of them creates or migrates it.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"flowforge:{schema}",))
    tables = [
        str(row[0])
        for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1",
            (schema,),
        )
    ]
    if not tables and readonly:
        raise StoreAccessError(
            f"There is no store in {name} to open read-only. Check the URL and schema; a "
            "store is made by opening it without readonly=True.",
            path=url,
        )
    if not tables:
        _create(conn, schema)
        return
    version = _identify(conn, tables, name, url)
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{name} has schema version {version}, newer than this FlowForge reads "
            f"({SCHEMA_VERSION}). Upgrade FlowForge to open it.",
            path=url,
            found=version,
            supported=SCHEMA_VERSION,
        )
    if version < SCHEMA_VERSION and readonly:
        raise StoreVersionError(
            f"{name} has schema version {version}, older than this FlowForge's "
            f"({SCHEMA_VERSION}), and a store opened read-only cannot be migrated. Open it once "
            "without readonly=True.",
            path=url,
            found=version,
            supported=SCHEMA_VERSION,
        )
    found = version
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version),))
    missing = sorted(t for t in set(_TABLES) - set(tables) if _SINCE.get(t, 1) <= found)
    if missing:
        raise CorruptStoreError(
            f"{name} lacks the tables {', '.join(missing)}; it was left as it is. Restore it "
            "from a backup, or give the store another schema (schema=).",
            path=url,
        )


def _create(conn: Connection, schema: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if exists is None:  # IF NOT EXISTS would still need the right to create schemas
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for statement in _SCHEMA:
        conn.execute(statement.encode())
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO meta (key, value) VALUES (%s, %s)",
            [
                ("format", FORMAT),
                ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", str(time.time())),
            ],
        )


def _identify(conn: Connection, tables: list[str], name: str, url: str) -> int:
    """The schema version of the store; :class:`NotAStoreError` if it is none."""
    listed = ", ".join(tables)
    not_ours = (
        f"{name} holds tables that are not a FlowForge store ({listed}). They were left "
        "untouched; give the store a schema of its own (schema= or ?schema=NAME in the URL)."
    )
    if "meta" not in tables:
        raise NotAStoreError(not_ours, path=url)
    try:
        with conn.transaction():  # a savepoint: a foreign meta table must not spoil the rest
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except psycopg.Error:
        raise NotAStoreError(not_ours, path=url) from None
    if meta.get("format") != FORMAT:
        raise NotAStoreError(not_ours, path=url)
    try:
        return int(meta["schema_version"])
    except (KeyError, ValueError):
        raise CorruptStoreError(
            f"{name} has no valid schema version in its meta table; it was left as it is.",
            path=url,
        ) from None


# -- reading and writing --------------------------------------------------------------------


def _write(conn: Connection, batch: Batch, name: str, url: str) -> None:
    if batch.owner is not None:
        found = conn.execute(
            "SELECT status, job_id, lease_owner, lease_since, lease_heartbeat, lease_expires "
            "FROM jobs WHERE job_id = %s FOR UPDATE",
            (batch.job_id,),
        ).fetchone()
        lease = None if found is None or found[2] is None else Lease(*found[1:])
        _lease.check(batch, lease, None if found is None else found[0], name, url)
    jid = _job_row(conn, batch, name, url)
    if batch.owner is not None:
        conn.execute(*_lease.update(batch, jid, "%s"))
    with conn.pipeline(), conn.cursor() as cur:
        if batch.replace:
            for table in _CHILD_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE jid = %s".encode(), (jid,))
        if batch.dropped:
            for table in ("messages", "consumed"):
                cur.execute(
                    f"DELETE FROM {table} WHERE jid = %s AND first = ANY(%s)".encode(),
                    (jid, batch.dropped),
                )
        _upsert(cur, "consumed", ("first",), ("alive", "runs"), jid, batch.consumed)
        _upsert(cur, "messages", ("first",), ("count", "entries"), jid, batch.segments)
        _upsert(cur, "routine_states", ("routine_id",), ("state",), jid, batch.routines)
        _write_slots(cur, jid, batch.slots)
        _upsert(cur, "task_runs", ("name",), ("run",), jid, batch.tasks)
        _upsert(cur, "tails", ("kind", "first"), ("count", "entries", "stamps"), jid, batch.tails)
        if batch.keep_from:
            cur.executemany(
                "DELETE FROM tails WHERE jid = %s AND kind = %s AND first < %s "
                "AND first + count <= %s",
                [(jid, kind, keep, keep) for kind, keep in batch.keep_from.items()],
            )
        if batch.flow is not None:
            _put_flow(conn, *batch.flow, batch.updated_at)


def _upsert(
    cur: psycopg.Cursor[Any],
    table: str,
    key: Sequence[str],
    values: Sequence[str],
    jid: int,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    if not rows:
        return
    marks = ", ".join(["%s"] * (1 + len(key) + len(values)))
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in values)
    statement = (
        f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT (jid, {', '.join(key)}) "
        f"DO UPDATE SET {updates}"
    )
    cur.executemany(statement.encode(), [(jid, *row) for row in rows])


def _job_row(conn: Connection, batch: Batch, name: str, url: str) -> int:
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
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (job_id) DO UPDATE SET flow_id = EXCLUDED.flow_id, "
            "status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, "
            "started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "
            "reason = EXCLUDED.reason, header = EXCLUDED.header, entry = EXCLUDED.entry, "
            "queued_at = COALESCE(jobs.queued_at, EXCLUDED.queued_at) "
            "RETURNING jid",
            (*values, batch.job_id, batch.created_at, batch.entry, _lease.queued_at(batch)),
        ).fetchone()
    else:
        row = conn.execute(
            "UPDATE jobs SET flow_id = %s, status = %s, updated_at = %s, started_at = %s, "
            "finished_at = %s, reason = %s, header = %s WHERE job_id = %s RETURNING jid",
            (*values, batch.job_id),
        ).fetchone()
    if row is None:
        raise JobNotFoundError(
            f"Job '{batch.job_id}' was deleted from {name} while it was running, so its "
            "progress cannot be recorded. Do not delete running jobs.",
            path=url,
            job_id=batch.job_id,
        )
    return int(row[0])


def _write_slots(
    cur: psycopg.Cursor[Any], jid: int, slots: Sequence[tuple[str, str | None]]
) -> None:
    kept = [(key, state) for key, state in slots if state is not None]
    _upsert(cur, "slot_states", ("slot_key",), ("state",), jid, kept)
    gone = [key for key, state in slots if state is None]
    if gone:
        cur.execute("DELETE FROM slot_states WHERE jid = %s AND slot_key = ANY(%s)", (jid, gone))


def _put_flow(conn: Connection, flow_id: str, definition: str, when: float) -> None:
    conn.execute(
        "INSERT INTO flows VALUES (%s, %s, %s) ON CONFLICT (flow_id) DO UPDATE SET "
        "definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at",
        (flow_id, definition, when),
    )


def _matching(flow_id: str | None, statuses: Collection[str] | None) -> tuple[str, dict[str, Any]]:
    """The condition (and its parameters) of the jobs of ``flow_id`` with ``statuses``."""
    where = "(%(flow)s::text IS NULL OR flow_id = %(flow)s)"
    if statuses is not None:
        where += " AND status = ANY(%(statuses)s)"
    return where, {"flow": flow_id, "statuses": list(statuses or ())}


def _read_brief(conn: Connection, job_id: str) -> BriefRecord | None:
    row = conn.execute(
        f"SELECT jid, header, entry, {_PENDING} FROM jobs j WHERE job_id = %s", (job_id,)
    ).fetchone()
    if row is None:
        return None
    jid = (row[0],)
    return BriefRecord(
        row[1],
        row[2],
        row[3],
        conn.execute("SELECT routine_id, state FROM routine_states WHERE jid = %s", jid).fetchall(),
        conn.execute(
            "SELECT first, count, entries FROM tails WHERE jid = %s AND kind = 'errors' "
            "ORDER BY first",
            jid,
        ).fetchall(),
        conn.execute("SELECT name, run FROM task_runs WHERE jid = %s", jid).fetchall(),
    )


def _read_job(conn: Connection, job_id: str) -> JobRecord | None:
    row = conn.execute(
        "SELECT jid, header, entry FROM jobs WHERE job_id = %s", (job_id,)
    ).fetchone()
    if row is None:
        return None
    jid = (row[0],)
    return JobRecord(
        row[1],
        row[2],
        conn.execute(
            "SELECT m.entries, COALESCE(c.runs, '[]') FROM messages m LEFT JOIN consumed c "
            "ON c.jid = m.jid AND c.first = m.first WHERE m.jid = %s ORDER BY m.first",
            jid,
        ).fetchall(),
        conn.execute("SELECT routine_id, state FROM routine_states WHERE jid = %s", jid).fetchall(),
        conn.execute("SELECT slot_key, state FROM slot_states WHERE jid = %s", jid).fetchall(),
        [
            (kind, first, count, entries, None if stamps is None else bytes(stamps))
            for kind, first, count, entries, stamps in conn.execute(
                "SELECT kind, first, count, entries, stamps FROM tails WHERE jid = %s "
                'ORDER BY kind COLLATE "C", first',
                jid,
            )
        ],
        conn.execute("SELECT name, run FROM task_runs WHERE jid = %s", jid).fetchall(),
    )
