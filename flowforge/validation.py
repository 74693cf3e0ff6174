"""Checking a whole flow at once: :meth:`Flow.validate <flowforge.Flow.validate>`.

Every problem is reported together, each with where it is and a hint:

- ``error``: a join slot with no sources (it would never fire), a join
  slot on a loop (it waits for a routine that only runs after it; such a
  flow also refuses to start), an entry routine that is not in the flow, a
  handler with a required parameter that what its connected events declare
  cannot fill (by the rules of :mod:`flowforge.routine`: a ``**kwargs``
  handler or a handler with several named parameters needs each required
  one delivered; a handler with one parameter takes any non-empty delivery);
- ``warning``: a slot nothing is connected to (it only ever receives the
  entry), an event nobody consumes (what it emits is recorded and dropped),
  a routine that cannot be reached from the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._handlers import missing_parameters, parameter_names
from .errors import Problem, quoted

if TYPE_CHECKING:
    from .connection import Connection
    from .routine import Routine


def find_problems(
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    entry: str | None,
) -> list[Problem]:
    """Every problem of a flow's routines and connections."""
    problems: list[Problem] = []
    if entry is not None and entry not in routines:
        problems.append(
            Problem(
                "error",
                entry,
                f"the entry routine '{entry}' is not in the flow.",
                f"Use one of {quoted(routines)}.",
            )
        )
    for rid, routine in routines.items():
        problems += _slot_problems(rid, routine, entry)
        problems += _event_problems(rid, routine)
    graph = _graph(routines, connections)
    problems += _joins_on_loops(routines, graph)
    problems += handler_problems(routines)
    if entry is not None and entry in routines:
        problems += _unreachable(routines, graph, entry)
    return problems


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    if start == goal:
        return [start]
    came: dict[str, str] = {}
    todo = [start]
    while todo and goal not in came:
        node = todo.pop(0)
        for nxt in sorted(graph[node] - came.keys()):
            came[nxt] = node
            todo.append(nxt)
    path = [goal]
    while path[-1] != start:
        path.append(came[path[-1]])
    return path[::-1]


def join_cycles(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> list[Problem]:
    """The join slots that wait for a routine running only after them (they never fire)."""
    if not any(s.is_join for r in routines.values() for s in r._slots.values()):
        return []
    return _joins_on_loops(routines, _graph(routines, connections))


def _graph(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> dict[str, set[str]]:
    ids = {id(r): rid for rid, r in routines.items()}
    graph: dict[str, set[str]] = {rid: set() for rid in routines}
    for c in connections:
        graph[ids[id(c.event.routine)]].add(ids[id(c.slot.routine)])
    return graph


def _joins_on_loops(routines: Mapping[str, Routine], graph: dict[str, set[str]]) -> list[Problem]:
    problems = []
    for rid, routine in routines.items():
        for name, slot in routine.slots.items():
            if not slot.is_join:
                continue
            downstream = _reachable(graph, rid)
            for c in slot.connections:
                source = c.event.routine.routine_id
                if source is not None and source in downstream:
                    cycle = " -> ".join([*_path(graph, rid, source), rid])
                    problems.append(
                        Problem(
                            "error",
                            f"{rid}.{name}",
                            f"this join waits for '{source}', which only runs after the join "
                            f"itself (the loop {cycle}), so the join can never complete.",
                            f"Feed the loop back into another slot of '{rid}' (an 'override' "
                            "slot), not into the join.",
                        )
                    )
    return problems


def handler_problems(routines: Mapping[str, Routine]) -> list[Problem]:
    """Handlers with required parameters that their connected events cannot fill."""
    problems: list[Problem] = []
    for rid, routine in routines.items():
        for name, slot in routine.slots.items():
            if slot.handler is None or not slot.connections or callable(slot.merge_strategy):
                continue
            groups = [slot.connections] if slot.is_join else [[c] for c in slot.connections]
            for group in groups:
                problems += _unfilled(rid, name, slot.handler, group)
    return problems


def _unfilled(
    rid: str, slot: str, handler: Callable[..., Any], group: list[Connection]
) -> list[Problem]:
    if any(c.event.params is None for c in group):
        return []
    delivered = sorted({k for c in group for k in c.map(dict.fromkeys(c.event.params or ()))})
    missing = missing_parameters(handler, set(delivered))
    if not missing:
        return []
    sources = ", ".join(f"'{c.event.routine_label()}.{c.event.name}'" for c in group)
    unused = [d for d in delivered if d not in parameter_names(handler)]
    hint = (
        f"Map them when connecting: param_mapping={dict(zip(unused, missing, strict=True))!r}"
        if len(unused) == len(missing)
        else "Map the event's parameters onto them with param_mapping"
    ) + ", or give the handler's parameters defaults."
    return [
        Problem(
            "error",
            f"{rid}.{slot}",
            f"the handler needs {quoted(missing)}, which {sources} cannot deliver "
            f"(it delivers {quoted(delivered)}).",
            hint,
        )
    ]


def _slot_problems(rid: str, routine: Routine, entry: str | None) -> list[Problem]:
    problems = []
    for name, slot in routine.slots.items():
        if slot.is_join and not slot.connections:
            problems.append(
                Problem(
                    "error",
                    f"{rid}.{name}",
                    "this join slot has no sources, so it never fires.",
                    f"Connect the events it waits for: flow.connect(<source>, <event>, '{rid}', "
                    f"'{name}'), or make it an 'override' slot.",
                )
            )
        elif not slot.connections and rid != entry and len(routine.slots) > 1:
            problems.append(
                Problem(
                    "warning",
                    f"{rid}.{name}",
                    "nothing is connected to this slot.",
                    f"Connect an event to it, or remove it if '{rid}' does not need it.",
                )
            )
    return problems


def _event_problems(rid: str, routine: Routine) -> list[Problem]:
    return [
        Problem(
            "warning",
            f"{rid}.{name}",
            "no slot consumes this event; what it emits is "
            "recorded in the history and goes nowhere.",
            f"Connect it: flow.connect('{rid}', '{name}', <target>, <slot>).",
        )
        for name, event in routine.events.items()
        if not event.connections
    ]


def _unreachable(
    routines: Mapping[str, Routine], graph: dict[str, set[str]], entry: str
) -> list[Problem]:
    seen = _reachable(graph, entry)
    return [
        Problem(
            "warning",
            rid,
            f"no connection leads here from the entry '{entry}', so it "
            "never runs in a job started there.",
            f"Connect it downstream of '{entry}', or start jobs at it.",
        )
        for rid in routines
        if rid not in seen
    ]


__all__ = ["Problem", "find_problems", "handler_problems", "join_cycles"]
