"""A flow compiled for running: everything the hot path needs, precomputed.

:func:`compile_plan` walks the flow once per job: it resolves each routine's
policy against the flow's defaults, works out which routines sit on a loop
(they get the flow's activation cap), and turns every connection into a
:class:`Route` grouped by source routine and event name. Delivering a message
is then a few dict look-ups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..error_handler import ErrorHandler

if TYPE_CHECKING:
    from ..connection import Connection
    from ..routine import Routine
    from ..slot import Merger


class RoutinePlan:
    """A routine with its resolved policy and outgoing routes."""

    __slots__ = ("cap", "error_handler", "limit", "routes", "routine", "routine_id", "timeout")

    def __init__(self, routine_id: str, routine: Routine, error_handler: ErrorHandler,
                 cap: int | None) -> None:
        policy = routine.policy
        self.routine_id = routine_id
        self.routine = routine
        self.limit = policy.max_concurrency
        self.timeout = policy.timeout
        self.cap = cap
        self.error_handler = error_handler
        self.routes: dict[str, tuple[Route, ...]] = {}


class SlotPlan:
    """A slot (or a routine's entry ``__call__``, ``name=None``) ready to deliver to."""

    __slots__ = ("invoke", "is_async", "key", "merge", "name", "routine_plan", "sources")

    def __init__(self, routine_plan: RoutinePlan, name: str | None,
                 invoke: Callable[[Mapping[str, Any]], Any] | None, is_async: bool,
                 merge: Merger | None, sources: tuple[str, ...]) -> None:
        self.routine_plan = routine_plan
        self.name = name
        self.invoke = invoke
        self.is_async = is_async
        self.merge = merge
        self.sources = sources
        self.key = f"{routine_plan.routine_id}.{name}"

    @property
    def stateful(self) -> bool:
        """True when deliveries update merge state (append, fold, join)."""
        return self.merge is not None


class Route:
    """Where one emitted event goes: a target slot, through a mapping."""

    __slots__ = ("key", "mapping", "slot_name", "source_id", "target_id")

    def __init__(self, connection: Connection, source_id: str, target_id: str) -> None:
        self.source_id = source_id
        self.target_id = target_id
        self.slot_name = connection.slot.name
        self.mapping = connection.param_mapping
        self.key = connection.key


class Plan:
    """Routines, slots and routes of one flow, for one job."""

    __slots__ = ("joins", "routines", "slots")

    def __init__(self) -> None:
        self.routines: dict[str, RoutinePlan] = {}
        self.slots: dict[tuple[str, str | None], SlotPlan] = {}
        self.joins: list[SlotPlan] = []


def compile_plan(
    routines: Mapping[str, Routine], connections: Iterable[Connection],
    default_handler: ErrorHandler, default_cap: int | None,
) -> Plan:
    """Build the :class:`Plan` of a flow's routines and connections."""
    connections = list(connections)
    ids = {id(r): rid for rid, r in routines.items()}
    edges = [(ids[id(c.event.routine)], ids[id(c.slot.routine)]) for c in connections]
    looping = routines_on_loops(routines, edges)
    plan = Plan()
    for rid, routine in routines.items():
        explicit = routine.policy.max_activations
        cap = explicit if explicit is not None else (default_cap if rid in looping else None)
        rp = RoutinePlan(rid, routine, routine.error_handler or default_handler, cap)
        plan.routines[rid] = rp
        _add_slots(plan, rp)
    routes: dict[tuple[str, str], list[Route]] = {}
    for connection, (source_id, target_id) in zip(connections, edges, strict=True):
        route = Route(connection, source_id, target_id)
        routes.setdefault((source_id, connection.event.name), []).append(route)
    for (source_id, event_name), items in routes.items():
        plan.routines[source_id].routes[event_name] = tuple(items)
    return plan


def _add_slots(plan: Plan, rp: RoutinePlan) -> None:
    routine = rp.routine
    for name, slot in routine.slots.items():
        sources = tuple(c.key for c in slot.connections)
        sp = SlotPlan(rp, name, slot.invoke, slot.is_async, slot.merge, sources)
        plan.slots[(rp.routine_id, name)] = sp
        if slot.is_join:
            plan.joins.append(sp)
    plan.slots[(rp.routine_id, None)] = SlotPlan(
        rp, None, lambda data: routine(**data), False, None, ()
    )


def routines_on_loops(routines: Iterable[str], edges: list[tuple[str, str]]) -> set[str]:
    """The routines that can reach themselves (iterative Tarjan, no recursion)."""
    graph: dict[str, list[str]] = {rid: [] for rid in routines}
    for source, target in edges:
        graph[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    looping: set[str] = {s for s, t in edges if s == t}
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if child < len(targets):
                work.append((node, child + 1))
                nxt = targets[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    looping.update(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return looping
