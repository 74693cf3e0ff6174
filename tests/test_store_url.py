"""Store URLs: ``open_store`` and ``parse_store_url`` (PostgreSQL servers: test_store_postgres)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowforge.store import (
    MemoryStore,
    PostgresStore,
    SQLiteStore,
    StoreDriverError,
    StoreURL,
    StoreURLError,
    open_store,
    parse_store_url,
)


def test_memory_url_opens_a_memory_store() -> None:
    """memory:// opens a MemoryStore, with the options given."""
    store = open_store("memory://", durability="activation")
    assert isinstance(store, MemoryStore) and store.durability == "activation"


def test_sqlite_urls_name_relative_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///name is relative to the working directory, sqlite:////path absolute."""
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///relative.db") as store:
        assert isinstance(store, SQLiteStore) and store.path == "relative.db"
    with open_store(f"sqlite:///{tmp_path}/absolute.db") as store:
        assert store.path == f"{tmp_path}/absolute.db"
    assert (tmp_path / "relative.db").exists() and (tmp_path / "absolute.db").exists()


def test_a_plain_path_or_path_object_opens_an_sqlite_store(tmp_path: Path) -> None:
    """A string without a scheme, or a Path, is an SQLite file."""
    with open_store(str(tmp_path / "a.db")) as first, open_store(tmp_path / "b.db") as second:
        assert isinstance(first, SQLiteStore) and isinstance(second, SQLiteStore)
    assert parse_store_url("jobs.db") == StoreURL("sqlite", "jobs.db", "jobs.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user:hidden@db/jobs", "Unknown store URL scheme 'mysql:'"),
        ("sqlite://host/jobs.db", "is not an SQLite URL"),
        ("sqlite:///", "is not an SQLite URL"),
        ("memory://somewhere", "a memory store has no path"),
        ("postgresql:jobs", "is not a PostgreSQL URL"),
        ("", "non-empty string"),
    ],
)
def test_a_bad_url_raises_store_url_error_listing_the_forms(url: str, message: str) -> None:
    """Unknown schemes and malformed URLs raise StoreURLError (a ValueError) with every form."""
    with pytest.raises(StoreURLError, match=message) as caught:
        open_store(url)
    assert isinstance(caught.value, ValueError)
    assert "sqlite:////absolute/path.db" in str(caught.value)
    assert "postgresql://user:password@host:port/database" in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_the_safe_form_of_a_postgres_url_hides_the_password() -> None:
    """parse_store_url() keeps the URL to connect with and a form without the password."""
    parsed = parse_store_url("postgres://app:pa:ss@db.internal:5433/jobs?schema=x")
    assert parsed.kind == "postgresql"
    assert parsed.target == "postgres://app:pa:ss@db.internal:5433/jobs?schema=x"
    assert parsed.safe == "postgres://app:***@db.internal:5433/jobs?schema=x"


def test_flowforge_store_does_not_import_the_postgres_driver() -> None:
    """Importing flowforge.store and opening an SQLite store leaves psycopg unimported."""
    code = (
        "import sys, flowforge.store as s; s.open_store('memory://'); "
        "print('psycopg' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_a_postgres_url_without_the_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without psycopg, a PostgreSQL URL raises StoreDriverError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "flowforge.store.postgres", raising=False)
    with pytest.raises(StoreDriverError, match=r"pip install 'flowforge\[postgres\]'") as caught:
        open_store("postgresql://u@127.0.0.1:1/db")
    assert isinstance(caught.value, ImportError)


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db password='top secret' broken",
        "postgresql://u:topsecret@db/jobs?bogus=1",
        "postgresql://u@db/jobs?password=topsecret&bogus=1",
    ],
)
def test_a_malformed_dsn_is_refused_without_showing_its_password(dsn: str) -> None:
    """A DSN libpq cannot parse raises StoreURLError; the message hides every password form."""
    with pytest.raises(StoreURLError, match="not a PostgreSQL URL") as caught:
        PostgresStore(dsn)
    assert "top" not in str(caught.value) and "secret" not in str(caught.value)
