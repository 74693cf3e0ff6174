"""The job store as the commands use it: opening it, naming jobs, rebuilding their flows.

``--store`` (and ``FLOWFORGE_STORE``) takes any store URL
:func:`flowforge.store.open_store` does: a plain path or ``sqlite:///...``
(SQLite), ``postgresql://...``, ``memory://``. The store is always shown by
its safe form, without a password.

A job's flow is rebuilt from the definition the store kept when the job
started, with the origin recorded beside it (the directories its routine
classes were imported from, and their modules), so ``resume`` finds them
without ``--path``. Stores written before origins were kept still work,
given ``--path``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import SerializationError
from ..flow import Flow
from ..job_state import JobState
from ..store import Store, StoreError, parse_store_url
from ..store import open_store as open_url
from ._common import EXIT_FAILED, CommandError
from ._loading import LOAD_FAILURES, add_search_path, allowed_from, load_problems, problem_text

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def open_store(
    url: str, *, must_exist: bool = False, readonly: bool = False, **options: Any
) -> Iterator[Store]:
    """Open the job store ``url`` names; commands that only read open it read-only.

    A read-only open of an SQLite store that does not exist yet opens it
    writable, so that ``flowforge jobs`` on a new store lists nothing instead
    of failing. ``options`` go to the store's constructor (``lease_seconds=``).
    """
    try:
        parsed = parse_store_url(url)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    exists = parsed.kind != "sqlite" or Path(parsed.target).exists()
    if must_exist and not exists:
        raise CommandError(
            f"No job store at {parsed.safe}: run a flow first (flowforge run FLOW), or point "
            "--store (or FLOWFORGE_STORE) at the store you used."
        )
    if parsed.kind != "memory":
        options["readonly"] = readonly and exists
    if "lease_seconds" not in options and os.environ.get(LEASE_ENV):
        options["lease_seconds"] = lease_from_env()
    try:
        store = open_url(url, **options)
    except StoreError as exc:  # its message names the store already
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"Cannot open the job store {parsed.safe}: {exc}") from None
    with store:
        yield store


#: The environment variable that sets every command's lease expiry (seconds).
LEASE_ENV = "FLOWFORGE_LEASE_SECONDS"


def lease_from_env() -> float:
    """``FLOWFORGE_LEASE_SECONDS`` as seconds."""
    text = os.environ.get(LEASE_ENV, "")
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise CommandError(f"{LEASE_ENV} must be a number of seconds > 0, got {text!r}.")
    return seconds


def shown(url: str) -> str:
    """``url`` as the commands print it: without a password."""
    try:
        return parse_store_url(url).safe
    except StoreError as exc:
        return getattr(exc, "url", "") or "(a store URL)"


def has_password(url: str) -> bool:
    """Whether ``url`` holds a password (so it must not be printed as an option)."""
    return shown(url) != url


def no_store_yet(url: str) -> bool:
    """Whether ``url`` names an SQLite file that does not exist yet."""
    try:
        parsed = parse_store_url(url)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    return parsed.kind == "sqlite" and not Path(parsed.target).exists()


def find_job_id(store: Store, prefix: str) -> str:
    """The full id of the one job whose id starts with ``prefix``."""
    ids = [j.job_id for j in store.list_jobs()]
    if prefix in ids:
        return prefix
    matches = [i for i in ids if i.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"No job '{prefix}' in the store. List the jobs with: flowforge jobs")
    raise CommandError(
        f"'{prefix}' names {len(matches)} jobs ({', '.join(sorted(matches)[:5])}...); "
        "give more of the id."
    )


def load_job(store: Store, prefix: str) -> JobState:
    """The job named by ``prefix`` (see :func:`find_job_id`)."""
    job_id = find_job_id(store, prefix)
    try:
        return store.load(job_id)
    except (StoreError, SerializationError) as exc:
        raise CommandError(f"Cannot load job {job_id}: {exc}", EXIT_FAILED) from None


def origin_allowed(store: Store, flow_id: str) -> tuple[str, ...]:
    """Put the stored flow's origin directories on sys.path; the modules to allow."""
    try:
        origin = store.flow_origin(flow_id)
    except StoreError:
        return ()
    if origin is None:
        logger.info("The store has no origin for flow %r (an older store)", flow_id)
        return ()
    logger.debug("Flow %r: importing from %s", flow_id, ", ".join(origin.paths) or "sys.path")
    # Appended, not prepended: what this environment already imports wins, the
    # recorded directories only fill in what it cannot find.
    sys.path.extend(p for p in origin.paths if p not in sys.path and Path(p).is_dir())
    return origin.modules


def stored_flow(
    store: Store, job: JobState, allow: Sequence[str] = (), path: Sequence[str] = ()
) -> Flow:
    """Rebuild ``job``'s flow from the store, importing its routines where they came from."""
    flow_id = str(job.flow_id)
    allowed: list[str] = [*allowed_from(allow), *origin_allowed(store, flow_id)]
    for directory in path:
        allowed += add_search_path(Path(directory).resolve())
    try:
        return store.load_flow(flow_id, allowed_modules=tuple(allowed))
    except LOAD_FAILURES as exc:
        problems = "\n".join(f"  error: {problem_text(p)}" for p in load_problems(flow_id, exc))
        raise CommandError(
            f"Cannot rebuild flow '{job.flow_id}' of job {job.job_id}:\n{problems}\n"
            "  hint: if its routines live next to its flow file, pass that directory: "
            "--path DIR (or allow their modules with --allow MODULE)."
        ) from None
    except StoreError as exc:
        raise CommandError(
            f"Cannot load flow '{job.flow_id}' of job {job.job_id}: {exc}", EXIT_FAILED
        ) from None
