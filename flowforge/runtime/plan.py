"""What a job needs to know about its flow, beyond the definition objects.

Most of what the hot path needs is precomputed on the definition objects
themselves when they are declared and connected: a slot knows how to call its
handler and merge deliveries, a connection knows its target routine and slot
(``target_id``, ``slot_name``), its parameter mapping and its source key. A
:class:`Plan` adds the few whole-flow facts: which routines sit on a loop
(they get the flow's activation cap), which slots are joins, each routine's
error handler, each routine's connections by event name (so routing a
call's emits is one lookup), each routine's middleware composed into one
:class:`~flowforge.runtime.chain.Chain` (the flow's outside the routine's),
and which slots have a capacity and which routines feed them. All of one
routine's facts are also gathered in its :class:`Site`, so the scheduler
looks a routine up once per message.
A flow keeps its plan until its wiring or policies change, so
starting a job costs nothing per routine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

from ..error_handler import ErrorHandler
from .chain import Chain
from .tasks import task_dependents, task_handlers

if TYPE_CHECKING:
    from .._middleware import Middleware
    from ..connection import Connection
    from ..routine import Routine
    from ..slot import Slot


_NONE: Mapping[str | None, Slot] = MappingProxyType({})


class Site:
    """One routine's facts for the hot path, gathered from its :class:`Plan`.

    ``plain`` is true for a routine with no activation cap and that is no
    task, so the scheduler skips both checks with one test. ``lanes`` holds
    the slots whose calls need nothing around them but the call itself (see
    :meth:`JobRunner._run_lane <flowforge.runtime.scheduler.JobRunner>`): a
    plain routine without middleware or timeout, a slot without merge state
    whose handler is a plain function.
    """

    __slots__ = (
        "cap",
        "chain",
        "handler",
        "keys",
        "lanes",
        "plain",
        "routes",
        "routine",
        "slots",
        "sources",
        "task",
    )

    def __init__(self, plan: Plan, rid: str) -> None:
        routine = plan.routines[rid]
        self.routine = routine
        self.slots = routine._slots
        self.cap = plan.caps.get(rid)
        self.handler = plan.handlers[rid]
        self.chain = plan.chains.get(rid)
        self.routes = plan.routes[rid]
        self.task = rid in plan.tasks
        self.plain = self.cap is None and not self.task
        simple = self.plain and self.chain is None and routine._policy.timeout is None
        lanes: dict[str | None, Slot] = (
            {name: s for name, s in self.slots.items() if s.plain} if simple else {}
        )
        # The routine's own dict when every slot qualifies (the usual case): no copy.
        every = lanes and len(lanes) == len(self.slots)
        self.lanes = cast("Mapping[str | None, Slot]", self.slots) if every else lanes or _NONE
        merging = [s for s in self.slots.values() if s.merge is not None]
        #: Each merging slot's key in ``JobState.slot_states`` ("rid.slot").
        self.keys = {s.name: f"{rid}.{s.name}" for s in merging}
        #: Each merging slot's source keys, in connection order, as a dict: the
        #: order a join combines by, and a membership test that costs the same
        #: however many sources it has.
        self.sources = {s.name: dict.fromkeys(s.source_keys()) for s in merging}


class Plan:
    """Whole-flow facts for running jobs; read-only once built."""

    __slots__ = (
        "capacities",
        "caps",
        "chains",
        "feeds",
        "handlers",
        "joins",
        "routes",
        "routines",
        "sites",
        "tasks",
    )

    def __init__(
        self,
        routines: Mapping[str, Routine],
        looping: set[str],
        joins: list[tuple[str, Slot]],
        error_handler: ErrorHandler,
        default_cap: int | None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.routines = routines
        self.joins = joins
        #: The most calls a routine may have in one job, for routines that have a cap.
        self.caps: dict[str, int] = {}
        #: Each routine's error handler: its own, else the flow's.
        self.handlers: dict[str, ErrorHandler] = {}
        #: Each task's id, with the tasks its results feed (see :mod:`flowforge.runtime.tasks`).
        self.tasks: dict[str, tuple[str, ...]] = {}
        #: Each routine's middleware chain, for routines that have middleware.
        self.chains: dict[str, Chain] = {}
        #: Each routine's connections by event name (the events' own lists, kept current).
        self.routes: dict[str, dict[str, Sequence[Connection]]] = {}
        #: Each routine's :class:`Site` (made by :meth:`gather`, once the rest is known).
        self.sites: dict[str, Site] = {}
        for rid, routine in routines.items():
            self.routes[rid] = {name: e._connections for name, e in routine._events.items()}
            policy = routine._policy
            cap = policy.max_activations
            if cap is None and rid in looping:
                cap = default_cap
            if cap is not None:
                self.caps[rid] = cap
            self.handlers[rid] = policy.error_handler or error_handler
            layers = (*middleware, *routine._middleware)
            if layers:
                self.chains[rid] = Chain(layers)
        #: Slot key ("rid.slot") -> capacity, for slots that have one.
        self.capacities: dict[str, int] = {
            f"{rid}.{slot.name}": slot.capacity
            for rid, routine in routines.items()
            for slot in routine._slots.values()
            if slot.capacity is not None
        }
        #: Routine id -> the slot keys with a capacity its events feed.
        self.feeds: dict[str, tuple[str, ...]] = {}

    def add_feeds(self, edges: Iterable[tuple[str, str]]) -> None:
        """Record which routines feed slots with a capacity (``(source, slot key)``)."""
        feeds: dict[str, set[str]] = {}
        for source, key in edges:
            if key in self.capacities:
                feeds.setdefault(source, set()).add(key)
        self.feeds = {rid: tuple(sorted(keys)) for rid, keys in feeds.items()}

    def gather(self) -> Plan:
        """Make every routine's :class:`Site` from the facts above; returns the plan."""
        self.sites = {rid: Site(self, rid) for rid in self.routines}
        return self


def compile_plan(
    routines: Mapping[str, Routine],
    connections: Iterable[Connection],
    default_handler: ErrorHandler,
    default_cap: int | None,
    middleware: Sequence[Middleware] = (),
) -> Plan:
    """Build the :class:`Plan` of a flow's routines and connections, with the
    flow's ``middleware`` (outermost first)."""
    ids = {id(r): rid for rid, r in routines.items()}
    connections = list(connections)
    edges = [(ids[id(c.event.routine)], ids[id(c.slot.routine)]) for c in connections]
    joins = [
        (rid, slot) for rid, r in routines.items() for slot in r._slots.values() if slot.is_join
    ]
    plan = Plan(
        dict(routines),
        routines_on_loops(routines, edges),
        joins,
        default_handler,
        default_cap,
        middleware,
    )
    plan.tasks = task_dependents(routines)
    plan.handlers.update(task_handlers(routines, default_handler))
    if plan.capacities:
        plan.add_feeds(
            (ids[id(c.event.routine)], f"{ids[id(c.slot.routine)]}.{c.slot.name}")
            for c in connections
        )
    return plan.gather()


def routines_on_loops(routines: Iterable[str], edges: list[tuple[str, str]]) -> set[str]:
    """The routines that can reach themselves.

    Kahn's algorithm strips every routine that is not on or downstream of a
    cycle; the same on the reversed graph strips those only downstream; what
    is left of both lies on a cycle (or between two, which is close enough for
    a safety cap).
    """
    forward = _strip_acyclic(routines, edges)
    if not forward:
        return forward
    backward = _strip_acyclic(routines, [(t, s) for s, t in edges])
    return forward & backward


def _strip_acyclic(nodes: Iterable[str], edges: list[tuple[str, str]]) -> set[str]:
    indegree = dict.fromkeys(nodes, 0)
    out: dict[str, list[str]] = {}
    for source, target in edges:
        indegree[target] += 1
        out.setdefault(source, []).append(target)
    ready = [n for n, d in indegree.items() if d == 0]
    while ready:
        node = ready.pop()
        del indegree[node]
        for target in out.get(node, ()):
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    return set(indegree)
