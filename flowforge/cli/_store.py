"""The job store as the commands use it: opening it, naming jobs, rebuilding their flows.

A job's flow is rebuilt from the definition the store kept when the job
started, with the origin recorded beside it (the directories its routine
classes were imported from, and their modules), so ``resume`` finds them
without ``--path``. Stores written before origins were kept still work,
given ``--path``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import SerializationError
from ..flow import Flow
from ..job_state import JobState
from ..store import SQLiteStore, StoreError
from ._common import EXIT_FAILED, CommandError
from ._loading import LOAD_FAILURES, add_search_path, allowed_from, load_problems, problem_text

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def open_store(
    path: str, *, must_exist: bool = False, readonly: bool = False
) -> Iterator[SQLiteStore]:
    """Open the job store at ``path``; commands that only read open it read-only.

    A read-only open of a store that does not exist yet opens it writable, so
    that ``flowforge jobs`` on a new store lists nothing instead of failing.
    """
    exists = Path(path).exists()
    if must_exist and not exists:
        raise CommandError(
            f"No job store at {path}: run a flow first (flowforge run FLOW), or point "
            "--store (or FLOWFORGE_STORE) at the store you used."
        )
    try:
        store = SQLiteStore(path, readonly=readonly and exists)
    except StoreError as exc:  # its message names the store already
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"Cannot open the job store {path}: {exc}") from None
    with store:
        yield store


def find_job_id(store: SQLiteStore, prefix: str) -> str:
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


def load_job(store: SQLiteStore, prefix: str) -> JobState:
    """The job named by ``prefix`` (see :func:`find_job_id`)."""
    job_id = find_job_id(store, prefix)
    try:
        return store.load(job_id)
    except (StoreError, SerializationError) as exc:
        raise CommandError(f"Cannot load job {job_id}: {exc}", EXIT_FAILED) from None


def origin_allowed(store: SQLiteStore, flow_id: str) -> tuple[str, ...]:
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
    store: SQLiteStore, job: JobState, allow: Sequence[str] = (), path: Sequence[str] = ()
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
