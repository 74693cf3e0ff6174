"""A wire from one routine's event to another routine's slot.

A :class:`Connection` carries an optional ``param_mapping`` that renames the
event's parameters for the slot; unmapped parameters pass through unchanged.
Connections are made with :meth:`Flow.connect <flowforge.Flow.connect>`,
:meth:`Event.connect <flowforge.Event.connect>` or by constructing one, and
removed with :meth:`Connection.disconnect`.

A connection is refused when it is made (:class:`~flowforge.errors.DefinitionError`)
if its routines belong to two different flows, if the same event is already
wired to the same slot with the same mapping (every delivery would arrive
twice; one event wired twice with *different* mappings is allowed, and a
join counts each wire as a source), or if its mapping is unsound: two names
mapped to one, a mapped name colliding with a parameter that passes through,
or a name the event does not declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import DefinitionError, DefinitionTypeError, quoted

if TYPE_CHECKING:
    from .event import Event
    from .slot import Slot


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

    __slots__ = (
        "_listed",
        "_number",
        "event",
        "key",
        "param_mapping",
        "slot",
        "slot_name",
        "target_id",
    )

    def __init__(
        self, event: Event, slot: Slot, param_mapping: Mapping[str, str] | None = None
    ) -> None:
        mapping = check_mapping(event, slot, param_mapping) if param_mapping else None
        source, target = event.routine, slot.routine
        flow = source._flow
        if flow is not target._flow:
            flow = _common_flow(event, slot)
        arriving = slot._arriving
        if arriving is not None:
            _check_not_wired(event, slot, mapping)
        self.event = event
        self.slot = slot
        self.param_mapping: dict[str, str] | None = mapping
        self.slot_name = slot.name
        #: True while it is in its flow's list of connections.
        self._listed = False
        self._number = slot._wires_made = slot._wires_made + 1
        event._connections.append(self)
        source_id, target_id = source._routine_id, target._routine_id
        if arriving is None and source_id is not None and target_id is not None:
            # The usual wire: attach and refresh() without their rare cases.
            slot._arriving = self
            slot._source_keys = None
            self.target_id = target_id
            self.key = f"{source_id}.{event.name}->{target_id}.{slot.name}"
        else:
            slot._attach(self)
            self.refresh()
        if flow is not None:
            flow._wired(self)
        else:  # at most one end is in a flow: tell it
            source._wired_outside = target._wired_outside = True
            source._changed()
            target._changed()

    def refresh(self) -> None:
        """Recompute the names it routes by (after a routine got its id in a flow).

        ``key`` is ``"source.event->target.slot"`` and names the connection in
        a job's state; ``target_id`` is the target routine's id.
        """
        event, slot = self.event, self.slot
        slot._source_keys = None
        source_id, target_id = event.routine._routine_id, slot.routine._routine_id
        if source_id is None or target_id is None:
            # Outside a flow two routines of one class share a label.
            self.target_id = slot.routine.routine_label()
            self.key = (
                f"{event.routine.routine_label()}.{event.name}->{self.target_id}.{slot.name}"
                f"#{self._number}"
            )
            return
        self.target_id = target_id
        key = f"{source_id}.{event.name}->{target_id}.{slot.name}"
        arriving = slot._arriving
        if isinstance(arriving, list) and len(arriving) > 1:
            twins = [c for c in arriving if c.event is event]
            if len(twins) > 1 and twins[0] is not self:
                # A second wire from the same event (with another mapping) is its own source.
                key += f"#{twins.index(self) + 1}"
        self.key = key

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
        """Remove this connection from its event and slot (and its flow)."""
        flow = self.event.routine._flow
        if flow is not None and flow is self.slot.routine._flow:
            flow._unwired(self)
        self.event._detach(self)
        self.slot._detach(self)
        self.event.routine._changed()
        self.slot.routine._changed()

    def __repr__(self) -> str:
        mapping = f", param_mapping={self.param_mapping!r}" if self.param_mapping else ""
        return f"Connection({self.key!r}{mapping})"


def check_mapping(
    event: Event, slot: Slot, param_mapping: Mapping[str, str] | None
) -> dict[str, str] | None:
    """``param_mapping`` as a dict, if it is sound for ``event`` -> ``slot``.

    Raises:
        DefinitionTypeError: it is not a mapping of names to names.
        DefinitionError: it names a parameter the event does not declare, or
            two parameters would arrive under one name (one value lost).
    """
    if not param_mapping:
        return None
    label = f"Connection {event.routine_label()}.{event.name} -> {slot.routine_label()}.{slot.name}"
    if not isinstance(param_mapping, Mapping):
        raise DefinitionTypeError(
            f"{label}: param_mapping must be a mapping of names to names (str -> str), got "
            f"{type(param_mapping).__name__}. Write {{'source_name': 'slot_name'}}."
        )
    mapping = dict(param_mapping)
    for source, target in mapping.items():
        if not (isinstance(source, str) and isinstance(target, str) and source and target):
            raise DefinitionTypeError(
                f"{label}: param_mapping must map parameter names to names (str -> str), "
                f"got {source!r} -> {target!r}."
            )
    declared = event.params
    if declared is not None:
        unknown = sorted(set(mapping) - set(declared))
        if unknown:
            raise DefinitionError(
                f"{label}: param_mapping renames {quoted(unknown)}, which event "
                f"'{event.name}' does not carry. It carries: {quoted(declared)}."
            )
    _check_collisions(label, mapping, declared)
    return mapping


def _check_collisions(
    label: str, mapping: dict[str, str], declared: tuple[str, ...] | None
) -> None:
    arriving: dict[str, list[str]] = {}
    for source in [*mapping, *(p for p in declared or () if p not in mapping)]:
        arriving.setdefault(mapping.get(source, source), []).append(source)
    clashes = {name: sources for name, sources in arriving.items() if len(sources) > 1}
    if clashes:
        name, sources = next(iter(clashes.items()))
        raise DefinitionError(
            f"{label}: param_mapping delivers {quoted(sources)} all as '{name}', so only one "
            "value would arrive. Map each to its own name."
        )


def _common_flow(event: Event, slot: Slot) -> Any:
    source, target = event.routine, slot.routine
    if source._flow is not None and target._flow is not None and source._flow is not target._flow:
        raise DefinitionError(
            f"Cannot connect '{source.routine_label()}' (flow '{source._flow.flow_id}') to "
            f"'{target.routine_label()}' (flow '{target._flow.flow_id}'): a connection joins "
            "routines of one flow. Add both routines to the same flow."
        )
    return source._flow if source._flow is target._flow else None


def _check_not_wired(event: Event, slot: Slot, mapping: dict[str, str] | None) -> None:
    for existing in slot._arrivals():
        if existing.event is event and existing.param_mapping == mapping:
            raise DefinitionError(
                f"{event.routine_label()}.{event.name} is already connected to "
                f"{slot.routine_label()}.{slot.name}"
                + (f" with param_mapping={mapping!r}" if mapping else "")
                + "; a second identical wire would deliver everything twice. Connect it once "
                "(to send the same event twice, use different param_mappings)."
            )
