"""The least a hop can cost in this interpreter: a skeleton engine.

Issue 9 set the hop target at 30 times a plain method call. This module
measures what that asks for. :func:`run_skeleton` is the smallest loop that
still does what FlowForge promises for every hop, and nothing else:

- the delivery is a record in a queue (so a job can stop and resume at it);
- the handler runs with a context set (so its emits are held back until it
  returns, which makes a call all-or-nothing), and is timed;
- ``emit`` checks the event and its parameters, and buffers;
- after the call, the routine's counters and timing are updated, the emit is
  recorded in the history and the event flow, and routed into new records.

It has no job object, no plan, no error handling, no retries, no stores, no
signals and no per-job setup; it is not an engine, only a floor. The
``hop.skeleton`` and ``stream.skeleton`` rows report it beside the engine's
own ``hop.per-hop`` and ``stream.throughput``: if the skeleton itself sits
above a target, the target cannot be met without dropping one of the
promises above.
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from typing import Any

_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("skeleton", default=None)


class _Record:
    """A delivery waiting in the queue."""

    __slots__ = ("data", "routine_id", "seq", "slot", "source")

    def __init__(self, seq: int, routine_id: str, slot: str, data: Any, source: Any) -> None:
        self.seq = seq
        self.routine_id = routine_id
        self.slot = slot
        self.data = data
        self.source = source


class _Call:
    """The context of one running handler call: its buffered emits."""

    __slots__ = ("emits", "record", "routine")

    def __init__(self, routine: SkeletonRoutine, record: _Record) -> None:
        self.routine = routine
        self.record = record
        self.emits: list[tuple[str, dict[str, Any]]] = []


class SkeletonRoutine:
    """A routine of the skeleton, with one event ``out(value)``."""

    def __init__(self) -> None:
        self.events = {"out": frozenset(["value"])}

    def emit(self, name: str, **data: Any) -> None:
        """Check the event and its parameters; buffer it in the running call."""
        allowed = self.events.get(name)
        if allowed is None or not allowed.issuperset(data):
            raise ValueError(f"undeclared event or parameter: {name} {sorted(data)}")
        call = _CURRENT.get()
        if call is not None and call.routine is self:
            call.emits.append((name, data))

    def handle(self, value: Any) -> None:
        """The handler: ``out(value=value + 1)``."""
        self.emit("out", value=value + 1)


class SkeletonRelay(SkeletonRoutine):
    """Passes the value on."""

    def handle(self, value: Any) -> None:
        """The handler: ``out(value=value)``."""
        self.emit("out", value=value)


class SkeletonSource(SkeletonRoutine):
    """Emits ``out(value=i)`` for each ``i`` in ``range(value)``."""

    def handle(self, value: Any) -> None:
        """The handler: ``value`` items."""
        for i in range(value):
            self.emit("out", value=i)


Routines = dict[str, SkeletonRoutine]


def skeleton_chain(length: int) -> tuple[Routines, dict[str, list[str]]]:
    """``length`` routines ``s0 -> s1 -> ...``: the routines and each one's targets."""
    routines = {f"s{i}": SkeletonRoutine() for i in range(length)}
    return routines, _line(list(routines))


def skeleton_stream(relays: int) -> tuple[Routines, dict[str, list[str]]]:
    """A source (``s0``) followed by ``relays`` relays."""
    routines: Routines = {"s0": SkeletonSource()}
    routines.update({f"s{i + 1}": SkeletonRelay() for i in range(relays)})
    return routines, _line(list(routines))


def _line(ids: list[str]) -> dict[str, list[str]]:
    return {rid: ids[i + 1 : i + 2] for i, rid in enumerate(ids)}


def run_skeleton(routines: Routines, routes: dict[str, list[str]], value: Any = 0) -> None:
    """One job through the routines, from ``s0`` with ``value``."""
    pending = deque([_Record(0, "s0", "in", {"value": value}, None)])
    counters: dict[str, list[float]] = {}
    history: deque[tuple[str, str, dict[str, Any], float]] = deque(maxlen=1000)
    event_flow: deque[tuple[float, str, str, str, str]] = deque(maxlen=1000)
    seq = 1
    clock = time.perf_counter
    while pending:
        record = pending.popleft()
        rid = record.routine_id
        routine = routines[rid]
        call = _Call(routine, record)
        token = _CURRENT.set(call)
        start = clock()
        try:
            routine.handle(**record.data)
        finally:
            _CURRENT.reset(token)
        seconds = clock() - start
        row = counters.get(rid)
        if row is None:
            row = counters[rid] = [0, 0.0]
        row[0] += 1
        row[1] += seconds
        now = time.time()
        for name, data in call.emits:
            history.append((rid, name, data, now))
            for target in routes[rid]:
                pending.append(_Record(seq, target, "in", data, rid))
                event_flow.append((now, rid, name, target, "in"))
                seq += 1
