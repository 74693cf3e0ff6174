"""A wire from one routine's event to another routine's slot.

A :class:`Connection` carries an optional ``param_mapping`` that renames the
event's parameters for the slot; unmapped parameters pass through unchanged.
Connections are made with :meth:`Flow.connect <flowforge.Flow.connect>`,
:meth:`Event.connect <flowforge.Event.connect>` or by constructing one, and
removed with :meth:`Connection.disconnect`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .event import Event
    from .slot import Slot

# Connection order decides how a join combines its sources; a process-wide
# counter keeps that order across flows rebuilt from saved files.
_serials = itertools.count()


class Connection:
    """Deliver what ``event`` emits to ``slot``, renaming by ``param_mapping``.

    Args:
        event: The source event.
        slot: The target slot.
        param_mapping: ``{source_name: slot_name}``; parameters not named pass
            through unchanged.

    Example:
        >>> from flowforge import Connection, Routine
        >>> class Source(Routine):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.define_event("out", ["value"])
        >>> class Sink(Routine):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.seen = []
        ...         self.define_slot("in", handler=lambda number: self.seen.append(number))
        >>> source, sink = Source(), Sink()
        >>> wire = Connection(source.get_event("out"), sink.get_slot("in"), {"value": "number"})
        >>> source.emit("out", value=42)
        >>> sink.seen
        [42]
    """

    __slots__ = ("_serial", "event", "key", "param_mapping", "slot", "slot_name", "target_id")

    def __init__(
        self, event: Event, slot: Slot, param_mapping: Mapping[str, str] | None = None
    ) -> None:
        mapping = dict(param_mapping) if param_mapping else None
        if mapping is not None:
            for source, target in mapping.items():
                if not isinstance(source, str) or not isinstance(target, str):
                    raise TypeError(
                        f"param_mapping must map parameter names to names (str -> str), "
                        f"got {source!r} -> {target!r}."
                    )
        self.event = event
        self.slot = slot
        self.param_mapping: dict[str, str] | None = mapping
        self._serial = next(_serials)
        self.slot_name = slot.name
        event._attach(self)
        slot._attach(self)
        self.refresh()
        event.routine._changed()
        slot.routine._changed()

    def refresh(self) -> None:
        """Recompute the names it routes by (after a routine got its id in a flow).

        ``key`` is ``"source.event->target.slot"`` and names the connection in
        a job's state; ``target_id`` is the target routine's id.
        """
        event, slot = self.event, self.slot
        slot.sources_changed()
        self.target_id: str = slot.routine_label()
        self.key: str = f"{event.routine_label()}.{event.name}->{self.target_id}.{slot.name}"
        if event.routine.routine_id is None or slot.routine.routine_id is None:
            # Outside a flow two routines of one class share a label.
            self.key += f"#{self._serial}"
            return
        twins = [c for c in slot._connections if c.event is event]
        if len(twins) > 1 and twins[0] is not self:
            # A second wire from the same event (with another mapping) is its own source.
            self.key += f"#{twins.index(self) + 1}"

    @property
    def connected(self) -> bool:
        """True until :meth:`disconnect` is called."""
        return self in self.event.connections

    def map(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Rename ``data`` by the mapping (a new dict)."""
        mapping = self.param_mapping
        if mapping is None:
            return dict(data)
        return {mapping.get(name, name): value for name, value in data.items()}

    def activate(self, data: Mapping[str, Any]) -> None:
        """Deliver ``data`` to the slot by hand, through the mapping."""
        self.slot.receive(self.map(data), source=self.key)

    def disconnect(self) -> None:
        """Remove this connection from its event and slot."""
        self.event._detach(self)
        self.slot._detach(self)
        self.event.routine._changed()
        self.slot.routine._changed()

    def __repr__(self) -> str:
        mapping = f", param_mapping={self.param_mapping!r}" if self.param_mapping else ""
        return f"Connection({self.key!r}{mapping})"
