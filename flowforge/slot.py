"""An input of a routine: a handler and a merge strategy.

A :class:`Slot` is declared with :meth:`Routine.define_slot
<flowforge.Routine.define_slot>`. Each delivery is merged by the slot's
strategy, and the handler is called with the result:

``"override"`` (default)
    Every delivery is handled on its own.
``"append"``
    Each parameter becomes the list of every value received so far in the
    job, and the handler gets those lists.
``"join"``
    Fan-in: the slot waits until every connected source has delivered, then
    the handler runs once with the combined data. A parameter sent by one
    source arrives as its value; a parameter sent by several arrives as the
    list of their values, in the order the connections were made (rename
    with ``param_mapping`` to keep them apart). Each source's deliveries are
    queued, so two streams joined pair up item by item.
a callable ``(accumulated, new) -> dict``
    The handler gets what it returns, which is also the accumulated value
    for the next delivery.

Merge state (lists, accumulators, join queues) belongs to the job and lives
in its :class:`~flowforge.JobState`; a slot used outside any flow keeps its
own, for unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ._handlers import Invoker, bind_method, prepare
from .connection import Connection
from .errors import DefinitionError, DefinitionTypeError

if TYPE_CHECKING:
    from .event import Event
    from .routine import Routine

MergeFunction: TypeAlias = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
MergeStrategy: TypeAlias = Literal["override", "append", "join"] | MergeFunction
#: Merge a delivery into a slot's state: ``(state, data, source, sources) -> (fire, state)``.
Merger: TypeAlias = Callable[
    [Any, dict[str, Any], "str | None", Collection[str]], "tuple[dict[str, Any] | None, Any]"
]
STRATEGY_NAMES = ("override", "append", "join")


class Slot:
    """A named input of a routine.

    Attributes:
        name: The slot's name within its routine.
        routine: The routine that owns it.
        merge_strategy: ``"override"``, ``"append"``, ``"join"`` or a callable.
        is_async: True when the handler is ``async def``.
    """

    __slots__ = (
        "_arriving",
        "_bound",
        "_capacity",
        "_handler",
        "_source_keys",
        "_standalone_state",
        "_wires_made",
        "invoke",
        "is_async",
        "merge",
        "merge_strategy",
        "name",
        "plain",
        "routine",
    )
    #: The handler, or for a method of the routine (``_bound``) its function.
    _handler: Callable[..., Any] | None

    def __init__(
        self,
        name: str,
        routine: Routine,
        handler: Callable[..., Any] | None = None,
        merge_strategy: MergeStrategy = "override",
        capacity: int | None = None,
    ) -> None:
        # A method of the routine itself (most handlers) is kept as its function
        # and called through an invoker shared by its class: see _handlers.
        bound = (
            type(handler) is MethodType
            and handler.__self__ is routine
            and type(handler.__func__) is FunctionType
        )
        if not bound and handler is not None and not callable(handler):
            raise DefinitionError(
                f"Slot '{name}' of routine '{routine.routine_label()}': handler must be callable, "
                f"got {handler!r}."
            )
        self.name = name
        self.routine = routine
        self.merge_strategy = merge_strategy
        merge = None if merge_strategy == "override" else _merger(merge_strategy, routine, name)
        self.merge: Merger | None = merge
        self._bound = bound
        invoke: Invoker | None
        if bound:
            function = self._handler = handler.__func__  # type: ignore[union-attr]
            is_async, invoke = bind_method(function, self)
        else:
            self._handler = handler
            is_async, invoke = (False, None) if handler is None else prepare(handler, self)
        self.is_async = is_async
        self.invoke = invoke
        #: A sync handler and no merge state: the scheduler's fast path.
        self.plain = merge is None and not is_async and invoke is not None
        #: The connections arriving: none, the only one, or a list of several.
        self._arriving: Connection | list[Connection] | None = None
        self._source_keys: tuple[str, ...] | None = None
        self._wires_made = 0
        self._standalone_state: Any = None
        self._capacity = None if capacity is None else _capacity(capacity, routine, name)

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to another process with its routine: no wiring, no closures.
        return {
            "name": self.name,
            "routine": self.routine,
            "handler": self.handler,
            "merge_strategy": self.merge_strategy,
            "capacity": self._capacity,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Slot.__init__(
            self,
            state["name"],
            state["routine"],
            state["handler"],
            state["merge_strategy"],
            state.get("capacity"),
        )

    @property
    def handler(self) -> Callable[..., Any] | None:
        """The callable run for each activation, or ``None``.

        A method of the slot's own routine is kept as its function, so this
        is a new bound method each time: equal to ``routine.method``, not
        the same object.
        """
        handler = self._handler
        if self._bound and handler is not None:
            return MethodType(handler, self.routine)
        return handler

    @property
    def capacity(self) -> int | None:
        """At most this many undelivered messages wait for the slot within one job
        (``None``: no bound). See :doc:`/guide/live`."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int | None) -> None:
        self._capacity = _capacity(value, self.routine, self.name)
        self.routine._changed()

    @property
    def connections(self) -> list[Connection]:
        """The connections arriving at this slot, oldest first (a copy)."""
        return list(self._arrivals())

    @property
    def is_join(self) -> bool:
        """True for a fan-in join slot."""
        return self.merge_strategy == "join"

    def routine_label(self) -> str:
        """The owning routine's id in its flow, or its class name."""
        return self.routine.routine_label()

    def source_keys(self) -> tuple[str, ...]:
        """The keys of the connections arriving here, oldest first (a join's sources)."""
        keys = self._source_keys
        if keys is None:
            keys = self._source_keys = tuple(c.key for c in self._arrivals())
        return keys

    def sources_changed(self) -> None:
        """Forget the cached source keys (a connection came, went or was renamed)."""
        self._source_keys = None

    def connect(self, event: Event, param_mapping: Mapping[str, str] | None = None) -> Connection:
        """Connect ``event`` to this slot; returns the new :class:`Connection`."""
        return Connection(event, self, param_mapping)

    def disconnect(self, event: Event) -> None:
        """Remove every connection from ``event`` to this slot."""
        for connection in [c for c in self._arrivals() if c.event is event]:
            connection.disconnect()

    def receive(self, data: Mapping[str, Any], source: str | None = None) -> None:
        """Deliver ``data`` now and run the handler, outside any job.

        This is how slots behave when a routine is unit-tested without a flow;
        inside a job the scheduler delivers instead.
        """
        fire: dict[str, Any] | None = dict(data)
        if self.merge is not None:
            fire, self._standalone_state = self.merge(
                self._standalone_state, dict(data), source, self.source_keys()
            )
        if fire is None or self.invoke is None:
            return
        result = self.invoke(fire)
        if self.is_async:
            asyncio.run(result)

    def _arrivals(self) -> Sequence[Connection]:
        arriving = self._arriving
        if arriving is None:
            return ()
        return arriving if isinstance(arriving, list) else (arriving,)

    def _attach(self, connection: Connection) -> None:
        arriving = self._arriving
        if arriving is None:
            self._arriving = connection
        elif isinstance(arriving, list):
            arriving.append(connection)
        else:
            self._arriving = [arriving, connection]
        self._source_keys = None

    def _detach(self, connection: Connection) -> None:
        arriving = self._arriving
        if arriving is connection:
            self._arriving = None
        elif isinstance(arriving, list) and connection in arriving:
            arriving.remove(connection)
        self._source_keys = None

    def __repr__(self) -> str:
        return f"Slot({self.routine_label()}.{self.name}, merge_strategy={self.merge_strategy!r})"


def _merger(strategy: MergeStrategy, routine: Routine, name: str) -> Merger | None:
    if strategy == "override":
        return None
    if strategy == "append":
        return merge_append
    if strategy == "join":
        return merge_join
    if callable(strategy):
        return _fold(strategy, routine, name)
    raise DefinitionError(
        f"Slot '{name}' of routine '{routine.routine_label()}': merge_strategy must be one of "
        f"'override', 'append', 'join' or a callable (accumulated, new) -> dict, "
        f"got {strategy!r}."
    )


def merge_append(
    state: Any, data: dict[str, Any], source: str | None, sources: Collection[str]
) -> tuple[dict[str, Any], Any]:
    """Append each delivered value to its parameter's list."""
    lists: dict[str, list[Any]] = dict(state) if state else {}
    for key, value in data.items():
        lists[key] = [*lists.get(key, ()), value]
    return dict(lists), lists


def _fold(function: MergeFunction, routine: Routine, name: str) -> Merger:
    def merge(
        state: Any, data: dict[str, Any], source: str | None, sources: Collection[str]
    ) -> tuple[dict[str, Any], Any]:
        merged = function(dict(state) if state else {}, data)
        if not isinstance(merged, dict):
            raise TypeError(
                f"Slot '{name}' of routine '{routine.routine_label()}': merge function "
                f"{getattr(function, '__qualname__', function)!r} must return a dict, "
                f"got {type(merged).__name__}."
            )
        return merged, merged

    return merge


#: In a join's state, how many items at the head of each source's list earlier
#: rounds took. A round shares the lists with the state before it instead of
#: copying them, so one source far ahead of the others costs nothing per round.
TAKEN = "#taken"
#: A list is cut down to what is left once more than this many of its items are
#: taken and they are over half of it: memory stays bounded, and the copying
#: costs O(1) per item on average.
COMPACT_AFTER = 32


def merge_join(
    state: Any, data: dict[str, Any], source: str | None, sources: Collection[str]
) -> tuple[dict[str, Any] | None, Any]:
    """Queue ``data`` under its source; fire once every source has an item.

    A delivery that cannot complete the round adds to ``state`` in place (the
    scheduler commits it at once), so each costs the same however many
    sources the join has. The delivery that may complete it leaves ``state``
    as it was and returns a new one, so a call that fails can keep the old;
    the new state shares the lists (see :data:`TAKEN`), so it costs the same
    however long the other sources' queues are.
    """
    if source is None or source not in sources:
        return data, state
    queues: dict[str, Any] = {} if state is None else state
    queue = queues.get(source)
    if len(queues) - (TAKEN in queues) + (queue is None) < len(sources):
        if queue is None:
            queues[source] = [data]
        else:
            queue.append(data)
        return None, queues
    return _round(queues, data, source, sources)


def _round(
    state: dict[str, Any], data: dict[str, Any], source: str, sources: Collection[str]
) -> tuple[dict[str, Any] | None, Any]:
    """Add ``data`` and, if every source then has an item, take one from each;
    ``state`` and its lists stay as they were."""
    taken: dict[str, int] = dict(state.get(TAKEN, ()))
    queues = dict(state)
    queues[source] = [*queues.get(source, ())[taken.pop(source, 0) :], data]
    if not all(s in queues for s in sources):  # a state left by other wiring
        return None, _with_taken(queues, taken)
    heads = []
    for s in sources:
        items = queues[s]
        first = taken.get(s, 0)
        heads.append(items[first])
        first += 1
        if first == len(items):
            del queues[s]
            taken.pop(s, None)
        elif first > COMPACT_AFTER and 2 * first > len(items):
            queues[s] = items[first:]
            taken.pop(s, None)
        else:
            taken[s] = first
    return combine_round(heads), _with_taken(queues, taken)


def _with_taken(queues: dict[str, Any], taken: dict[str, int]) -> dict[str, Any]:
    if taken:
        queues[TAKEN] = taken
    else:
        queues.pop(TAKEN, None)
    return queues


def join_queues(state: Any) -> dict[str, list[dict[str, Any]]]:
    """What waits in a join's state: each source's items not yet taken, oldest first."""
    if not state:
        return {}
    taken = state.get(TAKEN) or {}
    return {k: v[taken.get(k, 0) :] for k, v in state.items() if k != TAKEN}


def join_partial(state: Any, sources: Collection[str]) -> tuple[dict[str, Any], Any, list[str]]:
    """Take the items that did arrive: ``(combined, new_state, missing_sources)``."""
    queues = join_queues(state)
    missing = [s for s in sources if not queues.get(s)]
    present = [queues[s].pop(0) for s in sources if queues.get(s)]
    return combine_round(present), _drop_empty(queues), missing


def combine_round(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine one item per source: shared names become lists in source order."""
    combined: dict[str, Any] = {}
    shared: set[str] = set()
    for item in items:
        for key, value in item.items():
            if key in combined:
                if key not in shared:
                    combined[key] = [combined[key]]
                    shared.add(key)
                combined[key].append(value)
            else:
                combined[key] = value
    return combined


def _drop_empty(queues: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {k: v for k, v in queues.items() if v}


def _capacity(value: Any, routine: Routine, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionTypeError(
            f"Slot '{name}' of routine '{routine.routine_label()}': capacity must be an int "
            f">= 1 or None, got {type(value).__name__} {value!r}. Write capacity=100."
        )
    if value < 1:
        raise DefinitionError(
            f"Slot '{name}' of routine '{routine.routine_label()}': capacity must be >= 1, got "
            f"{value}. Use None for no bound."
        )
    return value
