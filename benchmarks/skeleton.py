"""The least a hop can cost in this interpreter: a skeleton engine.

Issue 9 set the hop target at 30 times a plain method call. This module
measures what that asks for. :func:`run_skeleton` is the smallest loop that
still does what FlowForge promises for every hop, and nothing else:

- the delivery is a record in a queue (so a job can stop and resume at it);
- the handler runs with a context set (so its emits are held back until it
  returns, which makes a call all-or-nothing), and is timed;
- ``emit`` checks the event and its parameters, and buffers;
- after the call, the routine's counters and timing are updated, the emit is
  recorded in the history and the event flow, and routed into new records;
- a join keeps what each source sent in a queue of its own (job state, not
  routine state) and calls its handler once every source has sent, with the
  heads of the queues in the sources' order.

It has no job object, no plan, no error handling, no retries, no stores, no
signals and no per-job setup; it is not an engine, only a floor. The
``hop.skeleton``, ``stream.skeleton`` and ``fanout.skeleton`` rows report it
beside the engine's own ``hop.per-hop``, ``stream.throughput`` and
``fanout.job``: if the skeleton itself sits above a target, the target
cannot be met without dropping one of the promises above.
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
    """A routine of the skeleton, with one event ``out(value)``.

    ``sources`` is ``None``, or for a join the routines it waits for.
    """

    sources: tuple[str, ...] | None = None

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


class SkeletonGather(SkeletonRoutine):
    """A join: called with the list of one value from each source."""

    def __init__(self, sources: tuple[str, ...]) -> None:
        super().__init__()
        self.sources = sources
        self.last: Any = None

    def handle(self, value: Any) -> None:
        """The handler: keep the combined values."""
        self.last = value


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


def skeleton_fan_out(width: int) -> tuple[Routines, dict[str, list[str]]]:
    """``s0`` (passes its value on) to ``width`` routines (add one), joined by ``join``."""
    workers = [f"w{i}" for i in range(width)]
    routines: Routines = {"s0": SkeletonRelay()}
    routines.update({rid: SkeletonRoutine() for rid in workers})
    routines["join"] = SkeletonGather(tuple(workers))
    routes = {"s0": workers, "join": []}
    routes.update({rid: ["join"] for rid in workers})
    return routines, routes


def _line(ids: list[str]) -> dict[str, list[str]]:
    return {rid: ids[i + 1 : i + 2] for i, rid in enumerate(ids)}


def joins_of(routines: Routines) -> frozenset[str]:
    """The ids of the joins among ``routines`` (for :func:`run_skeleton`)."""
    return frozenset(rid for rid, routine in routines.items() if routine.sources is not None)


def run_skeleton(
    routines: Routines,
    routes: dict[str, list[str]],
    value: Any = 0,
    joined: frozenset[str] = frozenset(),
) -> None:
    """One job through the routines, from ``s0`` with ``value``; ``joined``
    names the joins among them (:func:`joins_of`, made once per flow)."""
    pending = deque([_Record(0, "s0", "in", {"value": value}, None)])
    counters: dict[str, list[float]] = {}
    history: deque[tuple[str, str, dict[str, Any], float]] = deque(maxlen=1000)
    event_flow: deque[tuple[float, str, str, str, str]] = deque(maxlen=1000)
    joins: dict[str, dict[str, list[dict[str, Any]]]] = {}
    seq = 1
    clock = time.perf_counter
    while pending:
        record = pending.popleft()
        rid = record.routine_id
        routine = routines[rid]
        data = record.data
        if joined and rid in joined:  # empty for chains: one test per record
            data = _join(routine.sources or (), joins.setdefault(rid, {}), record)
            if data is None:
                continue
        call = _Call(routine, record)
        token = _CURRENT.set(call)
        start = clock()
        try:
            routine.handle(**data)
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


def _join(
    sources: tuple[str, ...], waiting: dict[str, list[dict[str, Any]]], record: _Record
) -> dict[str, Any] | None:
    """Queue ``record`` under its source; the combined data once every source has sent."""
    queue = waiting.get(record.source)
    if queue is None:
        waiting[record.source] = [record.data]
    else:
        queue.append(record.data)
    if len(waiting) < len(sources):
        return None
    heads = [waiting[source].pop(0) for source in sources]
    for source in sources:
        if not waiting[source]:
            del waiting[source]
    return {name: [head[name] for head in heads] for name in heads[0]}
