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
``hop.skeleton`` row reports it beside the engine's own ``hop.per-hop``: if
the skeleton itself sits above the target, the target cannot be met without
dropping one of the promises above.
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

    def __init__(self, routine: SkeletonStep, record: _Record) -> None:
        self.routine = routine
        self.record = record
        self.emits: list[tuple[str, dict[str, Any]]] = []


class SkeletonStep:
    """A routine of the skeleton: emits ``out(value=value + 1)``."""

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

    def step(self, value: int) -> None:
        """The handler."""
        self.emit("out", value=value + 1)


def skeleton_chain(length: int) -> tuple[dict[str, SkeletonStep], dict[str, list[str]]]:
    """``length`` routines ``s0 -> s1 -> ...``: the routines and each one's targets."""
    routines = {f"s{i}": SkeletonStep() for i in range(length)}
    routes = {f"s{i}": [f"s{i + 1}"] if i + 1 < length else [] for i in range(length)}
    return routines, routes


def run_skeleton(routines: dict[str, SkeletonStep], routes: dict[str, list[str]]) -> None:
    """One job through the chain, from ``s0`` with ``value=0``."""
    pending = deque([_Record(0, "s0", "in", {"value": 0}, None)])
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
            routine.step(**record.data)
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
