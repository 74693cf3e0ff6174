"""The Routine contract: what application code subclasses.

Declaring
    Subclass :class:`Routine`, call ``super().__init__()`` and declare inputs
    with :meth:`~Routine.define_slot` and outputs with
    :meth:`~Routine.define_event` in ``__init__``. A routine must be
    constructible with no arguments so a saved flow can rebuild it;
    parameters belong in its configuration (:meth:`~Routine.set_config`).
    Slot and event names are letters, digits, ``_`` and ``-`` starting with
    a letter or ``_`` (flow files write ``routine.name``), unique per kind;
    an event's ``params`` are distinct Python identifiers. Anything else is
    refused when declared.

How a handler is called
    The delivered data is a dict of parameters (after the connection's
    ``param_mapping``). A handler that accepts ``**kwargs`` gets every
    parameter. A handler with named parameters gets those it names; a missing
    required one is an error naming the routine, slot and parameter. A handler
    with exactly one parameter that the data does not name gets the single
    delivered value if there is exactly one, else the whole dict. Handlers may
    be plain functions, bound methods or ``async def``. How to call each
    handler is worked out once, when its slot is defined. Middleware added
    with :meth:`~Routine.use` (inside the flow's, :meth:`Flow.use
    <flowforge.Flow.use>`) wraps every call, in the handler's process.

What emit guarantees
    :meth:`~Routine.emit` checks the event and its parameters at once. Inside
    a job, what a handler emits takes effect only when the call returns
    without error: a failed call (and each failed retry) emits nothing, and
    its changes to ``self._stats`` are discarded. Emitted data is passed by
    reference, never copied: do not mutate what you emitted or received.

State
    ``self._stats`` is the user's own counter dict. Inside a job each call
    works on a copy of that job's own counters (``job.runs[rid].stats`` in
    its :class:`~flowforge.JobState`, empty when the job starts). Outside a
    job, :meth:`~Routine.stats` is the running total over every job run
    through this routine: when a run of a job stops, what it changed is
    added to it. Numeric counters are merged as deltas, so calls and jobs
    running at the same time all count. Configuration, stats and policies
    are saved with the flow and must be JSON/YAML-serializable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from ._activation import CURRENT, JobControl
from ._checks import check_int, check_name, check_number, check_param_name, plain_name
from ._middleware import Middleware, checked
from .error_handler import ErrorHandler
from .errors import (
    DefinitionError,
    DefinitionTypeError,
    EmitError,
    JobStateError,
    UnknownNameError,
    quoted,
)
from .event import Event
from .slot import MergeStrategy, Slot

if TYPE_CHECKING:
    from .connection import Connection
    from .flow import Flow


def _positive_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        check_number(value, attribute.name, positive=True)


def _positive_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_int(value, attribute.name, minimum=1)


def _positive_int_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_int(value, attribute.name, minimum=1, optional=True)


def _handler_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, ErrorHandler):
        raise DefinitionTypeError(
            f"error_handler must be an ErrorHandler or None, got {type(value).__name__} "
            f"{value!r}. Write ErrorHandler(ErrorStrategy.RETRY, max_retries=3), for example."
        )


@attrs.frozen
class Policy:
    """How the engine runs one routine's handlers.

    Attributes:
        max_concurrency: How many calls of this routine may run at once
            within one job (with a parallel executor). 1, the default, means
            the routine's handlers never overlap in a job, so ``self._stats``
            (which is per job) needs no lock. Jobs running at the same time
            each have their own limit.
        timeout: Seconds a call may run before it fails with
            :class:`~flowforge.errors.HandlerTimeoutError`, or ``None``.
        max_activations: Cap on this routine's calls per job, or ``None``
            for the flow's default (which applies to routines on a loop).
        error_handler: The routine's own :class:`~flowforge.ErrorHandler`,
            or ``None`` to use the flow's.
    """

    max_concurrency: int = attrs.field(default=1, validator=_positive_int)
    timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    max_activations: int | None = attrs.field(default=None, validator=_positive_int_or_none)
    error_handler: ErrorHandler | None = attrs.field(default=None, validator=_handler_or_none)


_DEFAULT_POLICY = Policy()


#: Parameter lists found plain, each its own canonical copy: the routines of
#: one class declare the same ones, and then share one tuple.
_PLAIN_PARAMS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _plain_params(params: tuple[str, ...]) -> tuple[str, ...] | None:
    """``params`` (a shared copy) if they are distinct identifiers: the usual case,
    checked without building messages; else ``None``."""
    try:
        known = _PLAIN_PARAMS.get(params)
    except TypeError:  # an unhashable entry: the full check says what is wrong
        return None
    if known is not None:
        return known
    if not all(p.__class__ is str and p.isidentifier() for p in params):
        return None
    if len(set(params)) != len(params):
        return None
    if len(_PLAIN_PARAMS) >= 4096:
        _PLAIN_PARAMS.clear()
    _PLAIN_PARAMS[params] = params
    return params


class Routine:
    """Base class of every unit of work in a flow.

    Example:
        >>> from flowforge import Routine
        >>> class Upper(Routine):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.define_slot("text", handler=self.upper)
        ...         self.define_event("done", ["text"])
        ...     def upper(self, text):
        ...         self.emit("done", text=text.upper())
        >>> Upper().get_event("done").params
        ('text',)
    """

    #: Set once it is wired while in no flow: only then has add_routine wires to adopt.
    _wired_outside = False
    # The configuration and the counters kept outside jobs, made when first
    # used: most routines of a large flow never have either.
    _config: dict[str, Any] | None = None
    _stats_kept: dict[str, Any] | None = None

    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}
        self._events: dict[str, Event] = {}
        self._policy = _DEFAULT_POLICY
        self._routine_id: str | None = None
        #: The flow this routine belongs to (told when its wiring or policy changes).
        self._flow: Flow | None = None
        self._middleware: tuple[Middleware, ...] = ()
        # Also set here: add_routine reads it, and a class attribute read
        # through an instance is a slower, unspecialised load.
        self._wired_outside = False

    # -- declaring -------------------------------------------------------

    def define_slot(
        self,
        name: str,
        handler: Callable[..., Any] | None = None,
        merge_strategy: MergeStrategy = "override",
        capacity: int | None = None,
    ) -> Slot:
        """Declare an input slot.

        Args:
            name: Unique among this routine's slots.
            handler: Called for each activation (see the module docs).
            merge_strategy: ``"override"``, ``"append"``, ``"join"`` or a
                callable ``(accumulated, new) -> dict``.
            capacity: At most this many undelivered messages wait for the
                slot within one job; while it is full, ``submit`` blocks and
                no new call of a routine feeding it starts (``None``: no bound).
        """
        # The checks a new name passes are spelt out here (and in define_event),
        # not called: a large flow declares tens of thousands of names.
        slots = self._slots
        plain = name.__class__ is str and name.isidentifier() and name.isascii()
        if not plain or name in slots:
            self._check_new_name(name, slots, "slot")
        slot = slots[name] = Slot(name, self, handler, merge_strategy, capacity)
        if self._flow is not None:
            self._flow._invalidate()
        return slot

    def define_event(self, name: str, params: Iterable[str] | None = None) -> Event:
        """Declare an output event carrying ``params`` (``None``: any parameters)."""
        events = self._events
        plain = name.__class__ is str and name.isidentifier() and name.isascii()
        if not plain or name in events:
            self._check_new_name(name, events, "event")
        declared = None
        if params.__class__ is list or params.__class__ is tuple:
            try:
                declared = _PLAIN_PARAMS.get(tuple(params))
            except TypeError:  # an unhashable entry: the full check says what is wrong
                declared = None
        if declared is None and params is not None:
            declared = self._check_params(name, params)
        event = events[name] = Event(name, self, declared)
        if self._flow is not None:
            self._flow._invalidate()
        return event

    def _check_params(self, name: str, params: Iterable[str]) -> tuple[str, ...]:
        if params.__class__ is list or params.__class__ is tuple:
            plain = _plain_params(tuple(params))
            if plain is not None:
                return plain
        where = f"Event '{name}' of '{self.routine_label()}'"
        if isinstance(params, str) or not isinstance(params, Iterable):
            raise DefinitionTypeError(
                f"{where}: params must be a list of names or None, got "
                f"{type(params).__name__} {params!r}. Write [{params!r}]."
            )
        checked = [check_param_name(p, where) for p in params]
        twice = sorted({p for p in checked if checked.count(p) > 1})
        if twice:
            raise DefinitionError(
                f"{where}: params lists {quoted(twice)} more than once; name each once."
            )
        return tuple(checked)

    def _check_new_name(self, name: str, existing: Mapping[str, Any], kind: str) -> None:
        article = "an" if kind == "event" else "a"
        if not plain_name(name):  # the full check, whose message is made only on error
            check_name(name, f"'{self.routine_label()}': {article} {kind} name")
        if name in existing:
            raise DefinitionError(
                f"Routine '{self.routine_label()}' already has {article} {kind} named '{name}'; "
                "choose another name."
            )

    # -- looking up ------------------------------------------------------

    @property
    def slots(self) -> Mapping[str, Slot]:
        """The routine's slots by name (read-only)."""
        return MappingProxyType(self._slots)

    @property
    def events(self) -> Mapping[str, Event]:
        """The routine's events by name (read-only)."""
        return MappingProxyType(self._events)

    def get_slot(self, name: str) -> Slot | None:
        """The slot called ``name``, or ``None``."""
        return self._slots.get(name)

    def get_event(self, name: str) -> Event | None:
        """The event called ``name``, or ``None``."""
        return self._events.get(name)

    @property
    def routine_id(self) -> str | None:
        """The id this routine has in its flow, or ``None`` before it is added."""
        return self._routine_id

    def routine_label(self) -> str:
        """The routine's id in its flow, else its class name (for messages)."""
        return self._routine_id or type(self).__name__

    # -- emitting --------------------------------------------------------

    def emit(self, event_name: str, **data: Any) -> None:
        """Send ``data`` to every slot connected to ``event_name``.

        Inside a job the emit takes effect when the handler call returns
        without error. Outside a job (unit tests) it is delivered at once.

        Raises:
            EmitError: the event is unknown or a parameter is not declared.
        """
        event = self._events.get(event_name)
        if event is None:
            raise self._unknown_event(event_name, data)
        allowed = event.allowed
        if allowed is not None and not allowed.issuperset(data):
            raise self._undeclared_params(event, data)
        ctx = CURRENT.get()
        if ctx is not None and ctx.routine is self:
            ctx.emits.append((event_name, data))
        else:
            event.deliver_now(data)

    def _unknown_event(self, name: str, data: Mapping[str, Any]) -> EmitError:
        return EmitError(
            f"Routine '{self.routine_label()}' emitted event '{name}', which it does not "
            f"declare. Its events are: {quoted(self._events)}. Declare it in __init__ with "
            f"self.define_event({name!r}, {sorted(data)!r}).",
            routine_id=self.routine_label(),
            event=name,
            expected=sorted(self._events),
            got=name,
        )

    def _undeclared_params(self, event: Event, data: Mapping[str, Any]) -> EmitError:
        extra = sorted(set(data) - (event.allowed or set()))
        return EmitError(
            f"Routine '{self.routine_label()}' emitted event '{event.name}' with "
            f"parameter(s) {quoted(extra)} it does not declare. The event declares: "
            f"{quoted(event.params or ())}. Add them to define_event({event.name!r}, [...]) "
            "or pass params=None to allow any.",
            routine_id=self.routine_label(),
            event=event.name,
            expected=list(event.params or ()),
            got=sorted(data),
        )

    # -- calling ---------------------------------------------------------

    def __call__(self, **params: Any) -> None:
        """Start work at this routine: deliver ``params`` to its only slot.

        Override to start work another way (for example, emit several events).
        """
        self._only_slot().receive(params)

    def _only_slot(self) -> Slot:
        if len(self._slots) != 1:
            raise DefinitionError(
                f"Routine '{self.routine_label()}' has {len(self._slots)} slots "
                f"({quoted(self._slots)}), so calling it does not say which one to deliver to. "
                "Name the slot (Flow.execute(..., entry_slot='name')) or override __call__."
            )
        return next(iter(self._slots.values()))

    # -- steering the job from a handler -----------------------------------

    def pause_job(self, reason: str | None = None) -> None:
        """From this routine's handler: pause the job once running calls finish.

        The call itself completes normally (its emits count). Not available in
        calls running on another process or machine.
        """
        self._job_control("pause_job").request_pause(reason)

    def cancel_job(self, reason: str | None = None) -> None:
        """From this routine's handler: cancel the job (it ends ``cancelled``)."""
        self._job_control("cancel_job").request_cancel(reason)

    def _job_control(self, action: str) -> JobControl:
        ctx = CURRENT.get()
        if ctx is None or ctx.routine is not self:
            raise JobStateError(
                f"{type(self).__name__}.{action}() works only inside this routine's handler "
                "while a job runs. From elsewhere use flow.pause(job_state) or "
                "flow.cancel(job_state).",
                job_id="",
                status="",
            )
        if ctx.control is None:
            raise JobStateError(
                f"Routine '{self.routine_label()}': {action}() is not available in a call "
                "running on another process or machine. Emit an event to a local routine "
                "that pauses, or call flow.pause(job_state) from the coordinator.",
                job_id=ctx.job_id,
                status="running",
            )
        return ctx.control

    # -- stats -----------------------------------------------------------

    @property
    def _own_stats(self) -> dict[str, Any]:
        # The counters outside jobs (the running total over jobs run through it).
        stats = self._stats_kept
        if stats is None:
            stats = self._stats_kept = {}
        return stats

    @_own_stats.setter
    def _own_stats(self, value: dict[str, Any]) -> None:
        self._stats_kept = value

    @property
    def _stats(self) -> dict[str, Any]:
        ctx = CURRENT.get()
        if ctx is not None and ctx.routine is self:
            return ctx.stats_view()
        return self._own_stats

    @_stats.setter
    def _stats(self, value: dict[str, Any]) -> None:
        ctx = CURRENT.get()
        if ctx is not None and ctx.routine is self:
            ctx.stats = dict(value)
        else:
            self._own_stats = dict(value)

    def stats(self) -> dict[str, Any]:
        """A copy of the user's counters, ``self._stats``."""
        return dict(self._stats)

    # -- configuration and policies -----------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The routine's configuration dict."""
        config = self._config
        if config is None:
            config = self._config = {}
        return config

    def set_config(self, **values: Any) -> None:
        """Set configuration values."""
        self.config.update(values)

    def get_config(self, key: str, default: Any = None) -> Any:
        """A configuration value, or ``default``."""
        config = self._config
        return default if config is None else config.get(key, default)

    @property
    def policy(self) -> Policy:
        """The routine's :class:`Policy` (immutable; change with :meth:`set_policy`)."""
        return self._policy

    def set_policy(self, **changes: Any) -> None:
        """Change :class:`Policy` fields: ``max_concurrency``, ``timeout``,
        ``max_activations``, ``error_handler``."""
        unknown = set(changes) - {f.name for f in attrs.fields(Policy)}
        if unknown:
            raise TypeError(
                f"set_policy() got unknown field(s) {quoted(unknown)}; the fields are "
                f"{quoted(f.name for f in attrs.fields(Policy))}."
            )
        self._policy = attrs.evolve(self._policy, **changes)
        self._changed()

    def _connections(self) -> list[Connection]:
        """Every connection touching this routine, in or out."""
        found: list[Connection] = []
        for event in self._events.values():
            found += event._connections
        for slot in self._slots.values():
            for connection in slot._arrivals():
                if connection.event.routine is not self:
                    found.append(connection)
        return found

    def _changed(self) -> None:
        if self._flow is not None:
            self._flow._invalidate()

    @property
    def max_concurrency(self) -> int:
        """How many calls of this routine may run at once (default 1)."""
        return self._policy.max_concurrency

    @max_concurrency.setter
    def max_concurrency(self, value: int) -> None:
        self.set_policy(max_concurrency=value)

    @property
    def timeout(self) -> float | None:
        """Seconds one call may take, or ``None``."""
        return self._policy.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.set_policy(timeout=value)

    @property
    def max_activations(self) -> int | None:
        """Cap on this routine's calls per job, or ``None`` for the flow's default."""
        return self._policy.max_activations

    @max_activations.setter
    def max_activations(self, value: int | None) -> None:
        self.set_policy(max_activations=value)

    @property
    def error_handler(self) -> ErrorHandler | None:
        """The routine's own error handler, or ``None`` to use the flow's."""
        return self._policy.error_handler

    def set_error_handler(self, error_handler: ErrorHandler | None) -> None:
        """Give this routine its own error handler (it wins over the flow's)."""
        self.set_policy(error_handler=error_handler)

    def use(self, mw: Middleware) -> Middleware:
        """Wrap every handler call of this routine in ``mw(call, proceed)``.

        The routine's middleware runs inside the flow's (see
        :meth:`Flow.use <flowforge.Flow.use>`), the first added outermost.
        Returns ``mw``, so it also works as a decorator. See
        :doc:`/guide/middleware`.

        Raises:
            DefinitionTypeError: ``mw`` is not callable.
        """
        self._middleware = (*self._middleware, checked(mw, "Routine"))
        self._changed()
        return mw

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """This routine's own middleware, outermost first."""
        return self._middleware

    def __getstate__(self) -> dict[str, Any]:
        # A routine is shipped to worker processes on its own, without its flow;
        # its middleware travels in its flow's composed chain.
        state = self.__dict__.copy()
        state["_flow"] = None
        state["_middleware"] = ()
        return state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._routine_id!r}>"


def lookup(kind: str, owner: str, name: str, table: Mapping[str, Any]) -> Any:
    """``table[name]``, or an :class:`UnknownNameError` listing what exists."""
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(
            f"{owner} has no {kind} '{name}'. Its {kind}s are: {quoted(table)}.",
            kind=kind,
            name=name,
            known=table,
        ) from None
