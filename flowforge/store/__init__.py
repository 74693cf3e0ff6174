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
- Message data, slot state, stats and config are stored as JSON.

:class:`SQLiteStore` keeps jobs in one SQLite file, shared safely by threads
and processes; :class:`MemoryStore` keeps them in memory, for tests. Both
implement :class:`Store`.
"""

from ._errors import (
    CorruptStoreError,
    FlowNotFoundError,
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
from .base import FINISHED, Durability, JobSummary, Store
from .memory import MemoryStore
from .sqlite import SCHEMA_VERSION, SQLiteStore

__all__ = [
    "FINISHED",
    "SCHEMA_VERSION",
    "CorruptStoreError",
    "Durability",
    "FlowNotFoundError",
    "JobNotFoundError",
    "JobSummary",
    "MemoryStore",
    "NotAStoreError",
    "SQLiteStore",
    "Store",
    "StoreAccessError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreError",
    "StoreReadOnlyError",
    "StoreTypeError",
    "StoreUsageError",
    "StoreVanishedError",
    "StoreVersionError",
]
