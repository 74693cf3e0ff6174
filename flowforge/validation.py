"""Checking a whole flow at once: :meth:`Flow.validate <flowforge.Flow.validate>`.

Every problem is reported together, each with where it is and a hint:

- ``error``: a join slot with no sources (it would never fire), or an
  entry routine that is not in the flow;
- ``warning``: a slot nothing is connected to (it only ever receives the
  entry), an event nobody consumes (what it emits is recorded and dropped),
  a routine that cannot be reached from the entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import attrs

from .errors import quoted

if TYPE_CHECKING:
    from .connection import Connection
    from .routine import Routine


@attrs.frozen
class Problem:
    """One problem found by :meth:`Flow.validate <flowforge.Flow.validate>`.

    Attributes:
        severity: ``"error"`` (the flow will not work as meant) or ``"warning"``.
        where: What it is about: ``"parse"``, ``"parse.input"``, ``"fetch.data"``.
        message: What is wrong.
        hint: How to fix it.
    """

    severity: Literal["error", "warning"]
    where: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message} Hint: {self.hint}"


def find_problems(
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    entry: str | None,
) -> list[Problem]:
    """Every problem of a flow's routines and connections."""
    problems: list[Problem] = []
    ids = {id(r): rid for rid, r in routines.items()}
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
    graph: dict[str, set[str]] = {rid: set() for rid in routines}
    for c in connections:
        graph[ids[id(c.event.routine)]].add(ids[id(c.slot.routine)])
    problems += _joins_on_loops(routines, graph)
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
                    problems.append(
                        Problem(
                            "error",
                            f"{rid}.{name}",
                            f"this join waits for '{source}', which only runs after the join "
                            "itself, so the join can never complete.",
                            f"Feed the loop back into another slot of '{rid}' (an 'override' "
                            "slot), not into the join.",
                        )
                    )
    return problems


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
