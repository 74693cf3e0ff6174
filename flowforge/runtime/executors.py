"""Where handler calls run.

``"sequential"`` (the default) runs every call on the job's own thread, one
after another, in a deterministic order: messages are processed first in,
first out, and the messages one call emits are queued in emit order, each
event's connections in the order they were made (breadth-first).

``"thread"`` runs calls on a thread pool of ``max_workers`` threads, at most
``max_concurrency`` calls of one routine at once. The job's own thread stays
the only one that touches its state; it hands calls to the pool and applies
their results as they come back.

Neither can interrupt a running Python function: a call past its timeout is
failed and abandoned (it keeps running in the background; whatever it emits
later is discarded). ``async def`` handlers are cancelled at their next
``await``.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, ClassVar

from ..errors import DefinitionError, quoted


class Executor:
    """Base of the executors; ``inline`` ones run calls on the job's thread."""

    inline: ClassVar[bool] = True
    name: ClassVar[str] = "sequential"

    def start(self) -> concurrent.futures.Executor | None:
        """Start what one job needs (a pool), or ``None`` for inline executors."""
        return None

    def settings(self) -> dict[str, Any]:
        """The executor as saved in a flow file."""
        return {"kind": self.name}


class SequentialExecutor(Executor):
    """Run calls one at a time on the job's thread (the default; deterministic)."""


class ThreadExecutor(Executor):
    """Run calls on a pool of ``max_workers`` threads.

    Args:
        max_workers: Threads in the pool (default 8).
    """

    inline = False
    name = "thread"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise DefinitionError(f"max_workers must be an int >= 1, got {max_workers!r}.")
        self.max_workers = max_workers or 8

    def start(self) -> concurrent.futures.Executor:
        return concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="flowforge-worker"
        )

    def settings(self) -> dict[str, Any]:
        return {"kind": self.name, "max_workers": self.max_workers}


EXECUTORS: dict[str, type[Executor]] = {"sequential": SequentialExecutor, "thread": ThreadExecutor}


def make_executor(kind: str | Executor | None, max_workers: int | None = None) -> Executor:
    """An :class:`Executor` from a name (``"sequential"``, ``"thread"``) or instance."""
    if isinstance(kind, Executor):
        return kind
    if kind is None or kind == "sequential":
        return SequentialExecutor()
    if kind == "thread":
        return ThreadExecutor(max_workers)
    raise DefinitionError(
        f"Unknown executor {kind!r}. Use one of {quoted(EXECUTORS)} or an Executor instance."
    )
