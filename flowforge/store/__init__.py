"""Durable jobs: stores that checkpoint every job of a flow.

Give a flow a store (``Flow(..., store=SQLiteStore("jobs.db"))``, or
``flow.execute(..., store=...)`` for one job) and every job it runs is
checkpointed there as it runs. If the process dies, the job is found in the
store with status ``running``, and ``flow.resume(store.load(job_id))``
continues it in a new process.

The contract:

- One step of a job (a message consumed, its handler's emits routed, the
  routine's state and stats, the job's counters, history and tracker) is
  committed in one transaction, or together with neighbouring steps in one
  transaction (``durability="grouped"``). Never in part.
- So what a store holds is always the job as it was after some step, and
  resuming it yields exactly the messages, routine stats and results of an
  uninterrupted run: nothing is lost and nothing is delivered twice.
- What runs again after a crash: the handler calls that were in flight, and
  with ``"grouped"`` the steps of the group not yet committed. Side effects
  outside FlowForge can be made idempotent with the activation id
  (:func:`flowforge.current_activation`), which is the same when a call
  runs again.
- Pausing, cancelling, failing and finishing are recorded; a paused job
  resumes from the store after a restart.
- A runner holds a :class:`Lease` on each job it runs (owner, heartbeat,
  expiry): resuming or claiming a job whose lease is live raises
  :class:`LeaseHeldError` naming the owner; a dead runner's lease lapses
  after ``lease_seconds`` and the job can be resumed.
- ``store.request_pause(job_id)`` and ``store.request_cancel(job_id)`` stop
  a job running in any process sharing the store, within a second.
- ``store.submit`` (or :meth:`Flow.submit <flowforge.Flow.submit>`) queues
  a job; ``store.claim`` hands queued jobs to workers, one each
  (``flowforge worker``).
- Message data, slot state, stats and config are stored as JSON.

:class:`SQLiteStore` keeps jobs in one SQLite file, shared safely by threads
and processes; :class:`PostgresStore` in a PostgreSQL database that many
processes and machines share (the ``postgres`` extra); :class:`MemoryStore`
keeps them in memory, for tests. All implement :class:`Store`, the base
class of backends, and pass one conformance suite
(:class:`flowforge.testing.StoreConformance`). :func:`open_store` opens any
of them from a URL: ``memory://``, ``sqlite:///jobs.db``, a plain path, or
``postgresql://user:pw@host:port/db``.
"""

from typing import TYPE_CHECKING, Any

from ._errors import (
    CorruptStoreError,
    FlowNotFoundError,
    JobNotFoundError,
    LeaseHeldError,
    LeaseLostError,
    NotAStoreError,
    StoreAccessError,
    StoreAuthError,
    StoreBusyError,
    StoreClosedError,
    StoreConnectionError,
    StoreDriverError,
    StoreError,
    StoreReadOnlyError,
    StoreTypeError,
    StoreURLError,
    StoreUsageError,
    StoreVanishedError,
    StoreVersionError,
)
from ._lease import Lease
from ._records import Batch, BriefRecord, JobRecord
from ._url import StoreURL, open_store, parse_store_url, postgres_store
from .base import FINISHED, Durability, FlowOrigin, JobBrief, JobPage, JobSummary, Store
from .memory import MemoryStore
from .sqlite import SCHEMA_VERSION, SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = [
    "FINISHED",
    "SCHEMA_VERSION",
    "Batch",
    "BriefRecord",
    "CorruptStoreError",
    "Durability",
    "FlowNotFoundError",
    "FlowOrigin",
    "JobBrief",
    "JobNotFoundError",
    "JobPage",
    "JobRecord",
    "JobSummary",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "MemoryStore",
    "NotAStoreError",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "StoreAccessError",
    "StoreAuthError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreConnectionError",
    "StoreDriverError",
    "StoreError",
    "StoreReadOnlyError",
    "StoreTypeError",
    "StoreURL",
    "StoreURLError",
    "StoreUsageError",
    "StoreVanishedError",
    "StoreVersionError",
    "open_store",
    "parse_store_url",
]


def __getattr__(name: str) -> Any:
    # PostgresStore needs psycopg, which only the postgres extra installs.
    if name == "PostgresStore":
        return postgres_store()
    raise AttributeError(f"module 'flowforge.store' has no attribute {name!r}")
