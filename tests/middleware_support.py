"""Middleware and routines for the middleware tests.

They live in a module of their own so that saved flows can name them by
import path and worker processes (process and Dask executors) can import
them. Middleware that records does so into ``CALLS`` of the process it runs
in; :class:`WhoRan` emits what the middleware recorded in its worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from flowforge import ActivationInfo, Routine

#: What recording middleware saw, in this process: (name, routine_id, slot, attempt).
CALLS: list[tuple[str, str, str | None, int]] = []


def record(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Record the call, then proceed."""
    CALLS.append(("record", call.routine_id, call.slot, call.attempt))
    return proceed()


def skip(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Never run the handler."""
    return None


def fail(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Fail every call before the handler runs."""
    raise ConnectionError(f"middleware refused {call.routine_id}.{call.slot}")


def fail_first_attempt(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Fail attempt 0 of every call; later attempts proceed."""
    CALLS.append(("fail_first_attempt", call.routine_id, call.slot, call.attempt))
    if call.attempt == 0:
        raise ConnectionError(f"attempt {call.attempt} refused")
    return proceed()


def mark_process(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Note the process and attempt in ``os.environ`` for :class:`WhoRan` to emit."""
    os.environ["FLOWFORGE_TEST_MW"] = f"{os.getpid()}:{call.routine_id}:{call.attempt}"
    try:
        return proceed()
    finally:
        del os.environ["FLOWFORGE_TEST_MW"]


class Tag:
    """A parametrized middleware saved as class and config: records ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def config(self) -> Mapping[str, Any]:
        """The keyword arguments to make it again."""
        return {"name": self.name}

    def __call__(self, call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
        CALLS.append((self.name, call.routine_id, call.slot, call.attempt))
        return proceed()


class WhoRan(Routine):
    """Emits ``out(pid, mark)``: its own process and what ``mark_process`` noted."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.report)
        self.define_event("out", ["pid", "mark"])

    def report(self, value: Any = None) -> None:
        """Emit the process id and the middleware's mark (``None`` without one)."""
        self.emit("out", pid=os.getpid(), mark=os.environ.get("FLOWFORGE_TEST_MW"))


class Answer(Routine):
    """A handler that returns ``value * 10`` and emits ``out(value)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.answer)
        self.define_event("out", ["value"])

    def answer(self, value: Any) -> Any:
        """Emit, and return ten times the value."""
        self.emit("out", value=value)
        return value * 10


class EmitThenFail(Routine):
    """Emits ``out(value)``, then raises ``ValueError``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.run)
        self.define_event("out", ["value"])

    def run(self, value: Any) -> None:
        """Emit, then fail."""
        self.emit("out", value=value)
        raise ValueError("handler failed after emitting")


class Plain:
    """A class with no ``config``: not something a flow file may build as middleware."""

    def __call__(self, call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
        return proceed()
