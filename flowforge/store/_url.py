"""Store URLs: :func:`open_store`, and the forms ``--store`` and ``FLOWFORGE_STORE`` take.

========================================  =========================================
URL                                       store
========================================  =========================================
``memory://``                             :class:`~flowforge.store.MemoryStore`
``sqlite:///relative/jobs.db``            :class:`~flowforge.store.SQLiteStore`
``sqlite:////absolute/jobs.db``           :class:`~flowforge.store.SQLiteStore`
``jobs.db``, ``/var/lib/jobs.db``         :class:`~flowforge.store.SQLiteStore` (a plain path)
``postgresql://user:pw@host:5432/db``     :class:`~flowforge.store.PostgresStore`
``postgres://...``, ``...?schema=NAME``   :class:`~flowforge.store.PostgresStore`
========================================  =========================================

Anything else raises :class:`~flowforge.store.StoreURLError` listing these
forms. The PostgreSQL backend is imported only for a PostgreSQL URL, so the
other stores work without its extra installed.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import StoreDriverError, StoreURLError
from .base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

#: The URL schemes :func:`open_store` knows, and the store kind each names.
SCHEMES = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}
FORMS = (
    "memory://, sqlite:///relative.db, sqlite:////absolute/path.db, a plain file path "
    "(SQLite), or postgresql://user:password@host:port/database"
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@attrs.frozen
class StoreURL:
    """A parsed store URL (what :func:`parse_store_url` returns).

    Attributes:
        kind: ``"memory"``, ``"sqlite"`` or ``"postgresql"``.
        target: What the store's constructor takes: the SQLite file's path,
            the PostgreSQL URL, or ``""`` for memory.
        safe: The URL for messages and logs: the password replaced by ``***``.
    """

    kind: str
    target: str
    safe: str


def parse_store_url(url: str | os.PathLike[str]) -> StoreURL:
    """Which store ``url`` names; see :mod:`flowforge.store` for the forms.

    Raises:
        StoreURLError: ``url`` is none of the accepted forms (also a ``ValueError``).
    """
    if isinstance(url, os.PathLike):
        path = os.fspath(url)
        return StoreURL("sqlite", path, path)
    if not isinstance(url, str) or not url.strip():
        raise StoreURLError(
            f"A store URL must be a non-empty string, got {url!r}. {_accepted()}", url=""
        )
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme not in SCHEMES:
        if "://" in url:
            shown = hide_password(url)
            raise StoreURLError(
                f"Unknown store URL scheme {scheme + ':' if scheme else ''!r} in {shown!r}. "
                f"{_accepted()}",
                url=shown,
            )
        return StoreURL("sqlite", url, url)
    return _parse_known(SCHEMES[scheme], url)


def _parse_known(kind: str, url: str) -> StoreURL:
    rest = url.split(":", 1)[1]
    if kind == "postgresql":
        shown = hide_password(url)
        if not rest.startswith("//"):
            raise StoreURLError(f"{shown!r} is not a PostgreSQL URL. {_accepted()}", url=shown)
        return StoreURL(kind, url, shown)
    if kind == "memory":
        if rest not in ("//", "///"):
            raise StoreURLError(
                f"{url!r}: a memory store has no path or host; write memory://. {_accepted()}",
                url=url,
            )
        return StoreURL(kind, "", "memory://")
    if not rest.startswith("///") or len(rest) == 3:
        raise StoreURLError(
            f"{url!r} is not an SQLite URL: write sqlite:///relative.db for a path relative to "
            f"the working directory, sqlite:////absolute/path.db for an absolute one. "
            f"{_accepted()}",
            url=url,
        )
    return StoreURL(kind, rest[3:], url)


def open_store(url: str | os.PathLike[str], **options: Any) -> Store:
    """Open the store ``url`` names, with ``options`` for its constructor.

    Args:
        url: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
            a plain file path (SQLite) or ``postgresql://user:pw@host:port/db``
            (``postgres://`` too; ``?schema=NAME`` picks the schema).
        options: Keyword arguments of the store's class (``durability=``,
            ``group_max=``, ``timeout=``, ...).

    Raises:
        StoreURLError: ``url`` is none of those forms.
        StoreDriverError: A PostgreSQL URL, without the ``postgres`` extra installed.

    Example:
        >>> from flowforge.store import open_store
        >>> with open_store("memory://") as store:
        ...     store.list_jobs()
        []
    """
    parsed = parse_store_url(url)
    if parsed.kind == "memory":
        return MemoryStore(**options)
    if parsed.kind == "sqlite":
        return SQLiteStore(parsed.target, **options)
    return postgres_store()(parsed.target, **options)


def postgres_store() -> type[PostgresStore]:
    """The :class:`~flowforge.store.PostgresStore` class, imported on first use.

    Raises:
        StoreDriverError: psycopg (the ``postgres`` extra) is not installed.
    """
    try:
        # Optional extra: imported only when a PostgreSQL store is asked for.
        from .postgres import PostgresStore
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreDriverError(
            f"PostgreSQL stores need psycopg ({exc}). Install the extra: "
            "pip install 'flowforge[postgres]'."
        ) from exc
    return PostgresStore


def _accepted() -> str:
    return f"A store URL is one of: {FORMS}."


def hide_password(url: str) -> str:
    """``url`` with its password (``user:password@``, or libpq's ``password=``) as ``***``."""
    url = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", r"\1***", url)
