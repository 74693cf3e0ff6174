"""Building a linear pipeline of stages (:meth:`Flow.pipeline <flowforge.Flow.pipeline>`).

Each stage is a routine with exactly one slot and one event (the first
stage may have no slot only if it overrides ``__call__``; the last stage's
events, if any, go nowhere). Stage ``i``'s one event is connected to stage
``i + 1``'s one slot, and the first stage becomes the flow's entry. Every
running policy (``max_concurrency``, ``timeout``, retries, slot
``capacity``) stays on the routines themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from .errors import DefinitionError, quoted
from .routine import Routine

if TYPE_CHECKING:
    from .flow import Flow


def build_pipeline(flow: Flow, stages: Sequence[Routine | tuple[str, Routine]]) -> Flow:
    """Add ``stages`` to the empty ``flow`` and wire them in a line; returns ``flow``."""
    named = [_stage(i, stage) for i, stage in enumerate(_check_stages(stages))]
    ids = [flow.add_routine(routine, name) for name, routine in named]
    placed = [(rid, routine) for rid, (_, routine) in zip(ids, named, strict=True)]
    for (source_id, source), (target_id, target) in pairwise(placed):
        flow.connect(source_id, _only(source, "event"), target_id, _only(target, "slot"))
    first = named[0][1]
    slot = next(iter(first.slots)) if len(first.slots) == 1 else None
    flow.entry = {"routine_id": ids[0], "slot": slot, "params": {}}
    return flow


def _check_stages(stages: Any) -> list[Any]:
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise DefinitionError(
            f"Flow.pipeline() takes a non-empty list of stages (routines or (name, routine) "
            f"pairs), got {stages!r}."
        )
    return list(stages)


def _stage(index: int, stage: Any) -> tuple[str | None, Routine]:
    if isinstance(stage, Routine):
        return None, stage
    if (
        isinstance(stage, tuple)
        and len(stage) == 2
        and isinstance(stage[0], str)
        and isinstance(stage[1], Routine)
    ):
        return stage[0], stage[1]
    raise DefinitionError(
        f"Pipeline stage {index} must be a Routine or a (name, routine) pair, got "
        f"{type(stage).__name__} {stage!r}."
    )


def _only(routine: Routine, kind: str) -> str:
    names = list(routine.events if kind == "event" else routine.slots)
    if len(names) != 1:
        raise DefinitionError(
            f"Pipeline stage '{routine.routine_label()}' has {len(names)} {kind}s "
            f"({quoted(names) or 'none'}); a stage between two others needs exactly one "
            f"{kind} to wire it in line. Build the flow by hand with connect() instead."
        )
    return names[0]
