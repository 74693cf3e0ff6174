"""The store conformance suite (:class:`flowforge.testing.StoreConformance`) on every backend.

Memory, SQLite and PostgreSQL run the same tests; the PostgreSQL ones use
the session's throwaway server, each test in a schema of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pg_server
import psycopg
import pytest
from psycopg import sql

from flowforge.store import MemoryStore, PostgresStore, SQLiteStore, Store
from flowforge.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    """The conformance suite on MemoryStore."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """An empty memory store."""
        with MemoryStore() as store:
            yield store


class TestSQLiteStore(StoreConformance):
    """The conformance suite on SQLiteStore."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        """A store in a new file."""
        with SQLiteStore(tmp_path / "jobs.db") as store:
            yield store

    def reopen(self, store: Store) -> Store:
        """The same file, opened again."""
        assert isinstance(store, SQLiteStore)
        return SQLiteStore(store.path)


@pytest.mark.postgres
class TestPostgresStore(StoreConformance):
    """The conformance suite on PostgresStore."""

    @pytest.fixture
    def store(self, postgres_server: pg_server.PgServer) -> Iterator[Store]:
        """A store in a new schema of the session's server, dropped afterwards."""
        schema = f"conformance_{uuid.uuid4().hex[:12]}"
        with PostgresStore(postgres_server.dsn, schema=schema) as store:
            yield store
        drop_schema(postgres_server.dsn, schema)

    def reopen(self, store: Store) -> Store:
        """The same schema, through a second pool."""
        assert isinstance(store, PostgresStore)
        return PostgresStore(store_dsn(store), schema=store.schema)


def store_dsn(store: PostgresStore) -> str:
    """The DSN of a test store (the session's server has no passwords for its superuser)."""
    return store.url


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a test schema and everything in it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
