"""PostgresStore beyond the conformance suite: opening, its schema, versions, and its errors.

Everything runs against the session's throwaway PostgreSQL server.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pg_server
import psycopg
import pytest
from psycopg import sql

from flowforge import Flow, JobStatus
from flowforge._store_conformance import stream_flow
from flowforge.store import (
    NotAStoreError,
    PostgresStore,
    StoreAccessError,
    StoreAuthError,
    StoreConnectionError,
    StoreError,
    StoreReadOnlyError,
    StoreURLError,
    StoreUsageError,
    StoreVersionError,
    open_store,
    postgres,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema(postgres_server: pg_server.PgServer) -> Iterator[str]:
    """A fresh schema name, dropped at the end."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    execute(
        postgres_server, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
    )


def execute(server: pg_server.PgServer, *statements: sql.Composable | str) -> None:
    """Run ``statements`` as the superuser, outside any store."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement if not isinstance(statement, str) else statement.encode())


def tables(server: pg_server.PgServer, schema: str) -> list[str]:
    """The tables in ``schema``."""
    with psycopg.connect(server.dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (schema,),
        ).fetchall()
    return [row[0] for row in rows]


def test_a_new_store_keeps_its_tables_in_a_schema_of_its_own(
    postgres_server: pg_server.PgServer,
) -> None:
    """By default the store makes and uses the schema 'flowforge', and nothing in 'public'."""
    before = tables(postgres_server, "public")
    with PostgresStore(postgres_server.dsn) as store:
        assert store.schema == "flowforge"
        store.list_jobs()
    try:
        assert "meta" in tables(postgres_server, "flowforge")
        assert tables(postgres_server, "public") == before
    finally:
        execute(postgres_server, "DROP SCHEMA flowforge CASCADE")


def test_open_store_takes_postgres_urls_and_their_schema(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """postgresql:// and postgres:// URLs open a PostgresStore; ?schema= picks its schema."""
    url = f"{postgres_server.dsn}?schema={schema}"
    with open_store(url, durability="activation") as store:
        assert isinstance(store, PostgresStore)
        assert (store.schema, store.durability) == (schema, "activation")
    with open_store(url.replace("postgresql://", "postgres://")) as store:
        assert isinstance(store, PostgresStore) and store.schema == schema
    assert "jobs" in tables(postgres_server, schema)


def test_a_schema_holding_other_tables_is_refused_untouched(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """A schema with tables of someone else raises NotAStoreError and stays as it was."""
    execute(
        postgres_server,
        sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)),
        sql.SQL("CREATE TABLE {}.customers (id int)").format(sql.Identifier(schema)),
    )
    with pytest.raises(NotAStoreError, match=r"not a FlowForge store \(customers\).*schema=") as e:
        PostgresStore(postgres_server.dsn, schema=schema)
    assert isinstance(e.value, ValueError)
    assert tables(postgres_server, schema) == ["customers"]


def test_a_foreign_meta_table_is_refused_untouched(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """A 'meta' table that is not FlowForge's raises NotAStoreError, whatever its columns."""
    execute(
        postgres_server,
        sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)),
        sql.SQL("CREATE TABLE {}.meta (name text, size int)").format(sql.Identifier(schema)),
    )
    with pytest.raises(NotAStoreError, match="not a FlowForge store"):
        PostgresStore(postgres_server.dsn, schema=schema)
    execute(
        postgres_server,
        sql.SQL("DROP TABLE {}.meta").format(sql.Identifier(schema)),
        sql.SQL("CREATE TABLE {}.meta (key text, value text)").format(sql.Identifier(schema)),
        sql.SQL("INSERT INTO {}.meta VALUES ('format', 'somebody/else')").format(
            sql.Identifier(schema)
        ),
    )
    with pytest.raises(NotAStoreError, match="not a FlowForge store"):
        PostgresStore(postgres_server.dsn, schema=schema)
    assert tables(postgres_server, schema) == ["meta"]


def test_a_store_from_a_newer_flowforge_is_refused(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """A schema version above this FlowForge's raises StoreVersionError with both versions."""
    PostgresStore(postgres_server.dsn, schema=schema).close()
    set_version(postgres_server, schema, postgres.SCHEMA_VERSION + 1)
    with pytest.raises(StoreVersionError, match="Upgrade FlowForge") as caught:
        PostgresStore(postgres_server.dsn, schema=schema)
    assert (caught.value.found, caught.value.supported) == (
        postgres.SCHEMA_VERSION + 1,
        postgres.SCHEMA_VERSION,
    )


def test_a_version_1_store_gains_leases_and_the_queue_when_opened(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """A store made before leases (schema 1) is migrated; its jobs keep and leases work."""
    with PostgresStore(postgres_server.dsn, schema=schema) as store:
        done = stream_flow(store).execute("src", {"values": [1]})
    drop_leases(postgres_server, schema)
    set_version(postgres_server, schema, 2)
    with PostgresStore(postgres_server.dsn, schema=schema) as store:
        assert store.load(done.job_id).status == JobStatus.COMPLETED
        queued = stream_flow().submit({"values": [2]}, entry_routine_id="src", store=store)
        claimed = store.claim()
        assert claimed is not None and claimed.job_id == queued.job_id
        assert store.lease(queued.job_id).owner == store.owner  # type: ignore[union-attr]


def test_an_older_schema_is_migrated_forward_on_open(
    postgres_server: pg_server.PgServer, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a store of an older version runs each migration once and records the new version."""
    PostgresStore(postgres_server.dsn, schema=schema).close()
    older = postgres.SCHEMA_VERSION
    set_version(postgres_server, schema, older - 1)
    ran: list[int] = []

    def migrate(conn: psycopg.Connection[object]) -> None:
        ran.append(older - 1)
        conn.execute("ALTER TABLE jobs ADD COLUMN note text")

    monkeypatch.setitem(postgres.MIGRATIONS, older - 1, migrate)
    with PostgresStore(postgres_server.dsn, schema=schema) as store:
        assert store.list_jobs() == []
    with PostgresStore(postgres_server.dsn, schema=schema):
        pass
    assert ran == [older - 1]
    with psycopg.connect(postgres_server.dsn) as conn:
        version = conn.execute(
            sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(
                sql.Identifier(schema)
            )
        ).fetchone()
    assert version == (str(older),)


def test_a_version_1_schema_gains_task_runs_when_opened(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """A schema of version 1 (no task runs) is migrated on open and then keeps task results."""
    PostgresStore(postgres_server.dsn, schema=schema).close()
    execute(postgres_server, sql.SQL("DROP TABLE {}.task_runs").format(sql.Identifier(schema)))
    drop_leases(postgres_server, schema)
    set_version(postgres_server, schema, 1)
    flow = Flow(flow_id="tasks")
    flow.task(lambda n: n * 2, name="double")
    with PostgresStore(postgres_server.dsn, schema=schema) as store:
        job = flow.execute(entry_params={"n": 21}, store=store)
        assert store.load(job.job_id).output("double") == 42
    assert "task_runs" in tables(postgres_server, schema)


def drop_leases(server: pg_server.PgServer, schema: str) -> None:
    """Take schema 3's lease columns off the jobs table (to make an older store)."""
    execute(
        server,
        sql.SQL(
            "ALTER TABLE {}.jobs DROP COLUMN lease_owner, DROP COLUMN lease_since, "
            "DROP COLUMN lease_heartbeat, DROP COLUMN lease_expires, DROP COLUMN request, "
            "DROP COLUMN request_reason, DROP COLUMN queued_at"
        ).format(sql.Identifier(schema)),
    )


def set_version(server: pg_server.PgServer, schema: str, version: int) -> None:
    """Write ``version`` as the stored schema version."""
    execute(
        server,
        sql.SQL("UPDATE {}.meta SET value = {} WHERE key = 'schema_version'").format(
            sql.Identifier(schema), sql.Literal(str(version))
        ),
    )


def test_wrong_credentials_raise_store_auth_error_without_the_password(
    postgres_server: pg_server.PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password raises StoreAuthError; neither it nor any log line shows the password."""
    wrong = "Wr0ng-pa55word"
    url = postgres_server.url(pg_server.PASSWORD_USER, wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreAuthError, match=r"refused the credentials.*Check the user") as caught:
        open_store(url)
    assert isinstance(caught.value, PermissionError)
    shown = f"{caught.value} {caught.value.path} {caplog.text}"
    assert wrong not in shown and pg_server.PASSWORD_USER in shown


def test_the_right_password_opens_and_repr_hides_it(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """With the right password the store opens; its repr and messages never show the password."""
    execute(
        postgres_server,
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(pg_server.PASSWORD_USER)
        ),
    )
    url = postgres_server.url(pg_server.PASSWORD_USER, pg_server.PASSWORD)
    with open_store(f"{url}?schema={schema}") as store:
        with pytest.raises(KeyError) as caught:
            store.load("nope")
        shown = f"{store!r} {caught.value} {store.url}"
    assert pg_server.PASSWORD not in shown and pg_server.PASSWORD_USER in shown


def test_a_refused_connection_raises_store_connection_error() -> None:
    """No server on the port raises StoreConnectionError (a ConnectionError) saying what to do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreConnectionError, match=r"Cannot connect.*server runs") as caught:
        open_store(f"postgresql://someone:hunter22@127.0.0.1:{port}/db", timeout=3)
    assert isinstance(caught.value, ConnectionError)
    assert "hunter22" not in str(caught.value)


def test_a_missing_database_raises_store_access_error(
    postgres_server: pg_server.PgServer,
) -> None:
    """A database that does not exist raises StoreAccessError saying to create it."""
    with pytest.raises(StoreAccessError, match=r"does not exist.*createdb"):
        open_store(postgres_server.url(pg_server.SUPERUSER, database="no_such_db"))


def test_a_user_without_rights_on_the_database_gets_store_access_error(
    postgres_server: pg_server.PgServer,
) -> None:
    """A user who may not create the store's schema gets StoreAccessError naming the schema."""
    url = postgres_server.url(pg_server.PASSWORD_USER, pg_server.PASSWORD)
    with pytest.raises(StoreAccessError, match="rights on schema nowhere"):
        open_store(f"{url}?schema=nowhere")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:topsecret@127.0.0.1:5432/db?nonsense=1",
        "postgresql://u:topsecret@127.0.0.1:99999/db",
    ],
)
def test_a_malformed_postgres_url_raises_store_url_error(url: str) -> None:
    """A URL libpq cannot use raises StoreURLError showing the forms, never the password."""
    with pytest.raises(StoreURLError, match=r"postgresql://user:password@host") as caught:
        open_store(url, timeout=3)
    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schema": "bad-name"}, "schema name"),
        ({"pool_size": 0}, "pool_size"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_options_are_refused_before_connecting(
    options: dict[str, object], message: str
) -> None:
    """A bad schema name, pool size or timeout raises StoreUsageError without connecting."""
    with pytest.raises(StoreUsageError, match=message):
        PostgresStore("postgresql://u@127.0.0.1:1/db", **options)  # type: ignore[arg-type]


def test_two_stores_in_two_schemas_of_one_database_are_apart(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """Jobs of a store in one schema are not seen by a store in another."""
    other = f"{schema}_b"
    try:
        with (
            PostgresStore(postgres_server.dsn, schema=schema) as one,
            PostgresStore(postgres_server.dsn, schema=other) as two,
        ):
            job = stream_flow(one).execute("src", {"values": [1]})
            assert [s.job_id for s in one.list_jobs()] == [job.job_id]
            assert two.list_jobs() == []
    finally:
        execute(
            postgres_server,
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other)),
        )


def test_store_errors_of_postgres_share_the_root() -> None:
    """The new errors are StoreErrors and match their builtins."""
    assert issubclass(StoreAuthError, StoreError) and issubclass(StoreAuthError, PermissionError)
    assert issubclass(StoreConnectionError, ConnectionError)
    assert issubclass(StoreURLError, ValueError)


_WORKER = """
import sys
from flowforge._store_conformance import stream_flow
from flowforge.store import open_store

url, name = sys.argv[1], sys.argv[2]
with open_store(url, durability="grouped", group_max=3) as store:
    for _ in range(4):
        stream_flow(store, name).execute("src", {"values": list(range(25))})
"""


def test_two_processes_sharing_one_store_lose_nothing(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """Two processes opening a new store and running jobs on it at once keep every job."""
    url = f"{postgres_server.dsn}?schema={schema}"
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url, name], stderr=subprocess.PIPE)
        for name in ("left", "right")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=50)
        assert worker.returncode == 0, err.decode()
    with open_store(url) as store:
        for name in ("left", "right"):
            summaries = store.list_jobs(flow_id=name)
            assert [s.status for s in summaries] == [JobStatus.COMPLETED] * 4
            for summary in summaries:
                job = store.load(summary.job_id)
                assert job.routine_states["sink"]["stats"] == {"calls": 25}


def test_threads_opening_a_new_store_at_once_all_succeed(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """Several openers of a schema that does not exist yet agree: one creates it, all use it."""
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(postgres_server.dsn, schema=schema, pool_size=1).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert "jobs" in tables(postgres_server, schema)


def test_a_readonly_store_reads_and_refuses_writes(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """readonly=True lists and loads jobs, and every write raises StoreReadOnlyError."""
    with PostgresStore(postgres_server.dsn, schema=schema) as store:
        job = stream_flow(store).execute("src", {"values": [1]})
    with PostgresStore(postgres_server.dsn, schema=schema, readonly=True) as reader:
        assert [s.job_id for s in reader.list_jobs()] == [job.job_id]
        assert reader.load(job.job_id).status == JobStatus.COMPLETED
        with pytest.raises(StoreReadOnlyError, match="opened read-only"):
            reader.delete(job.job_id)
        with pytest.raises(StoreReadOnlyError):
            stream_flow(reader).execute("src", {"values": [1]})
    assert "readonly=True" in repr(reader)


def test_a_readonly_open_of_a_missing_store_creates_nothing(
    postgres_server: pg_server.PgServer, schema: str
) -> None:
    """readonly=True on a schema without a store raises StoreAccessError and makes no schema."""
    with pytest.raises(StoreAccessError, match=r"no store .* to open read-only"):
        PostgresStore(postgres_server.dsn, schema=schema, readonly=True)
    assert tables(postgres_server, schema) == []
