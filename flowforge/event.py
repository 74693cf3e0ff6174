"""An output of a routine.

An :class:`Event` is declared with :meth:`Routine.define_event
<flowforge.Routine.define_event>`, naming the parameters it carries (or
``None`` for any). Emitting it sends the data to every connected slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .connection import Connection

if TYPE_CHECKING:
    from .routine import Routine
    from .slot import Slot


#: Many routines of one class declare the same parameters: they share one set.
_ALLOWED: dict[tuple[str, ...], frozenset[str]] = {}


def _allowed(params: tuple[str, ...]) -> frozenset[str]:
    allowed = _ALLOWED[params] = frozenset(params)
    if len(_ALLOWED) > 4096:
        _ALLOWED.clear()
    return allowed


class Event:
    """A named output of a routine, with the parameters it may carry.

    Attributes:
        name: The event's name within its routine.
        routine: The routine that owns it.
        params: The declared parameter names, or ``None`` for any.
    """

    __slots__ = ("_connections", "allowed", "name", "params", "routine")

    def __init__(self, name: str, routine: Routine, params: Iterable[str] | None = None) -> None:
        self.name = name
        self.routine = routine
        allowed = None
        if params is not None:
            params = tuple(params)
            allowed = _ALLOWED.get(params) or _allowed(params)
        self.params: tuple[str, ...] | None = params
        #: The declared names as a frozenset, checked on every emit.
        self.allowed: frozenset[str] | None = allowed
        self._connections: list[Connection] = []

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to another process with its routine: no wiring.
        return {"name": self.name, "routine": self.routine, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Event.__init__(self, state["name"], state["routine"], state["params"])

    @property
    def connections(self) -> list[Connection]:
        """The connections leaving this event, oldest first (a copy)."""
        return list(self._connections)

    def routine_label(self) -> str:
        """The owning routine's id in its flow, or its class name."""
        return self.routine.routine_label()

    def connect(self, slot: Slot, param_mapping: Mapping[str, str] | None = None) -> Connection:
        """Connect this event to ``slot``; returns the new :class:`Connection`."""
        return Connection(self, slot, param_mapping)

    def disconnect(self, slot: Slot) -> None:
        """Remove every connection from this event to ``slot``."""
        for connection in [c for c in self._connections if c.slot is slot]:
            connection.disconnect()

    def emit(self, **data: Any) -> None:
        """Emit this event from its routine (same as ``routine.emit(name, **data)``)."""
        self.routine.emit(self.name, **data)

    def deliver_now(self, data: Mapping[str, Any]) -> None:
        """Deliver to every connected slot immediately, outside any job."""
        for connection in list(self._connections):
            connection.activate(data)

    def _detach(self, connection: Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    def __repr__(self) -> str:
        return f"Event({self.routine_label()}.{self.name}, params={self.params!r})"
