"""Work out once how to call a slot handler with a delivered dict.

The rules are those of the Routine contract (see :mod:`flowforge.routine`).
A slot's ``invoke(data)`` is made when the slot is defined, from its
handler's signature, so delivering a message never inspects anything again.

A flow may have thousands of routines, so a slot's invoker is kept small.
A handler that is a method of the slot's own routine (the usual case) is
called through a function shared by every handler of the same signature,
bound to the slot (:func:`bind_method`): the slot then holds the method's
function, not a bound method, and one bound-method object as ``invoke``.
Other handlers get a function of their own (:func:`prepare`). Either way
what the function needs is bound as parameter defaults rather than closed
over, so no closure cells are made per routine.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Mapping
from types import FunctionType, MethodType
from typing import Any, Protocol

from .errors import HandlerParameterError, quoted

Invoker = Callable[[Mapping[str, Any]], Any]


class Owner(Protocol):
    """The slot an invoker belongs to, named in its errors."""

    name: str

    def routine_label(self) -> str:
        """The owning routine's id in its flow, or its class name."""


class Host(Owner, Protocol):
    """A slot whose handler is a method of its routine: ``_handler`` is the
    method's function, called with ``routine`` first."""

    routine: Any
    _handler: Any

    @property
    def handler(self) -> Callable[..., Any] | None:
        """The handler as a bound method (for messages)."""


#: A shared invoker of method handlers: ``(slot, data)``, bound to the slot.
Shared = Callable[..., Any]
#: Makes an invoker for one handler from what its signature says: ``(handler, owner)``.
Shape = Callable[[Callable[..., Any], Owner], Invoker]
#: ``(is_async, shape, shared)`` of a plain function.
_Kind = tuple[bool, Shape, Shared]

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` returns a coroutine (``async def``)."""
    function = getattr(fn, "__func__", None)
    if function is not None and isinstance(function, FunctionType):
        return _kind(function)[0]
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def bind_method(function: FunctionType, slot: Host) -> tuple[bool, Invoker]:
    """``(is_async, invoke)`` for a slot whose handler is ``function`` bound to
    the slot's routine; ``slot._handler`` must be ``function``."""
    last = _last  # one read: another thread may replace it
    kind = last[1] if last[0]() is function else _kind(function)
    return kind[0], MethodType(kind[2], slot)


def prepare(handler: Callable[..., Any], owner: Owner) -> tuple[bool, Invoker]:
    """``(is_async_callable(handler), make_invoker(handler, owner))``, in one look-up
    for a bound method."""
    function = getattr(handler, "__func__", None)
    if function.__class__ is FunctionType:
        last = _last
        kind = last[1] if last[0]() is function else _kind(function)
        return kind[0], kind[1](handler, owner)
    return is_async_callable(handler), _shape(_parameters(handler))[0](handler, owner)


def make_invoker(handler: Callable[..., Any], owner: Owner) -> Invoker:
    """Return ``invoke(data)`` that calls ``handler`` by the contract's rules.

    Args:
        handler: The slot's handler.
        owner: The slot, named in error messages (read only when one is raised).
    """
    return prepare(handler, owner)[1]


# Every instance of a routine class binds the same methods: what calling each
# one takes is worked out once per function. Keyed by weak reference (as a
# WeakKeyDictionary is, without its per-lookup Python overhead) so functions
# of classes that go away are not kept.
_kinds: dict[weakref.ref[FunctionType], _Kind] = {}


def _nothing() -> None:
    return None


# The last function looked up (weakly) and its kind: building many routines of
# one class asks for the same handler method again and again.
_last: tuple[Callable[[], object], Any] = (_nothing, None)


def _kind(function: FunctionType) -> _Kind:
    """``(is_async, shape, shared)`` of a plain function, worked out once per function."""
    global _last
    kind = _kinds.get(weakref.ref(function))
    if kind is None:
        params = _inspect(function)
        shape, shared = _shape(None if params is None else params[1:])
        kind = (inspect.iscoroutinefunction(function), shape, shared)
        _kinds[weakref.ref(function, _forget)] = kind
    _last = (weakref.ref(function), kind)
    return kind


def _forget(ref: weakref.ref[FunctionType]) -> None:
    _kinds.pop(ref, None)


def _shape(params: list[inspect.Parameter] | None) -> tuple[Shape, Shared]:
    """How to call a handler with these parameters (``self`` left out): a maker of
    its own invoker, and the invoker shared by methods of that signature."""
    if params is None:  # builtins without a signature take the dict
        return _dict_invoker, _shared_dict
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        required = tuple(p.name for p in params if p.kind in _NAMED and p.default is p.empty)
        return functools.partial(_kwargs_invoker, required), _shared_kwargs(required)
    named = [p for p in params if p.kind in _NAMED or p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if not named:
        return _bare_invoker, _shared_bare
    if len(named) == 1:
        param = named[0]
        keyword = param.kind is inspect.Parameter.KEYWORD_ONLY
        required_one = param.default is param.empty
        return (
            functools.partial(_single_invoker, param.name, required_one, keyword),
            _shared_single(param.name, required_one, keyword),
        )
    names = tuple(p.name for p in named)
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in named):
        return functools.partial(_positional_invoker, names), _shared_positional(names)
    required = tuple(p.name for p in named if p.default is p.empty)
    return functools.partial(_named_invoker, names, required), _shared_named(names, required)


def _dict_invoker(handler: Callable[..., Any], owner: Owner) -> Invoker:
    return functools.partial(_call_with_dict, handler)


def _bare_invoker(handler: Callable[..., Any], owner: Owner) -> Invoker:
    return functools.partial(_call_bare, handler)


def _call_with_dict(handler: Callable[..., Any], data: Mapping[str, Any]) -> Any:
    return handler(dict(data))


def _call_bare(handler: Callable[..., Any], data: Mapping[str, Any]) -> Any:
    return handler()


def parameter_names(handler: Callable[..., Any]) -> list[str]:
    """The names of ``handler``'s parameters (``[]`` when it has no signature)."""
    return [p.name for p in _parameters(handler) or ()]


def missing_parameters(handler: Callable[..., Any], delivered: set[str]) -> list[str]:
    """The required parameters of ``handler`` that a delivery of the names in
    ``delivered`` leaves unfilled, by the rules :func:`make_invoker` follows."""
    params = _parameters(handler)
    if params is None:
        return []
    named = [p for p in params if p.kind in _NAMED or p.kind is inspect.Parameter.POSITIONAL_ONLY]
    required = [p.name for p in named if p.default is p.empty]
    is_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    if len(named) == 1 and not is_kwargs:
        return required if not delivered else []
    return [name for name in required if name not in delivered]


# Signatures by function: every instance of a routine class shares its
# methods' signatures, so building many routines inspects each method once.
_signatures: weakref.WeakKeyDictionary[Any, list[inspect.Parameter] | None] = (
    weakref.WeakKeyDictionary()
)


def _parameters(handler: Callable[..., Any]) -> list[inspect.Parameter] | None:
    function = getattr(handler, "__func__", None)
    if function is None or not inspect.isfunction(function):
        return _inspect(handler)
    params = _signatures.get(function, _UNSEEN)
    if params is _UNSEEN:
        params = _signatures[function] = _inspect(function)
    return None if params is None else params[1:]


_UNSEEN: Any = object()


def _inspect(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _missing(
    owner: Owner,
    handler: Any,
    name: str,
    data: Mapping[str, Any],
) -> HandlerParameterError:
    routine_id, slot = owner.routine_label(), owner.name
    label = getattr(handler, "__qualname__", repr(handler))
    return HandlerParameterError(
        f"Routine '{routine_id}' slot '{slot}': handler {label}{inspect.signature(handler)} "
        f"needs parameter '{name}', but the delivered data has {quoted(data)}. "
        f"Map a source parameter onto it with param_mapping={{'<source name>': '{name}'}} "
        f"when connecting, or give '{name}' a default value.",
        routine_id=routine_id,
        slot=slot,
        parameter=name,
        delivered=sorted(data),
    )


#: What :func:`_unnamed` returns for an empty delivery to an optional parameter.
_NOTHING: Any = object()


def _unnamed(owner: Owner, handler: Any, name: str, required: bool, data: Mapping[str, Any]) -> Any:
    """The value for a one-parameter handler when ``data`` does not name it."""
    if len(data) == 1:
        for value in data.values():
            return value
    if data:
        return dict(data)
    if required:
        raise _missing(owner, handler, name, data)
    return _NOTHING


# -- invokers of their own, for any callable -----------------------------------


def _kwargs_invoker(
    required: tuple[str, ...], handler: Callable[..., Any], owner: Owner
) -> Invoker:
    def invoke(
        data: Mapping[str, Any],
        required: tuple[str, ...] = required,
        handler: Callable[..., Any] = handler,
        owner: Owner = owner,
    ) -> Any:
        for name in required:
            if name not in data:
                raise _missing(owner, handler, name, data)
        return handler(**data)

    return invoke


def _single_invoker(
    name: str, required: bool, keyword: bool, handler: Callable[..., Any], owner: Owner
) -> Invoker:
    call = functools.partial(_call_by_name, handler, name) if keyword else handler

    def invoke(
        data: Mapping[str, Any],
        name: str = name,
        call: Callable[[Any], Any] = call,
        required: bool = required,
        handler: Callable[..., Any] = handler,
        owner: Owner = owner,
    ) -> Any:
        if name in data:
            return call(data[name])
        value = _unnamed(owner, handler, name, required, data)
        return handler() if value is _NOTHING else call(value)

    return invoke


def _call_by_name(handler: Callable[..., Any], name: str, value: Any) -> Any:
    return handler(**{name: value})


def _positional_invoker(
    positional: tuple[str, ...], handler: Callable[..., Any], owner: Owner
) -> Invoker:
    def invoke_positional(
        data: Mapping[str, Any],
        positional: tuple[str, ...] = positional,
        handler: Callable[..., Any] = handler,
        owner: Owner = owner,
    ) -> Any:
        for name in positional:
            if name not in data:
                raise _missing(owner, handler, name, data)
        return handler(*(data[name] for name in positional))

    return invoke_positional


def _named_invoker(
    names: tuple[str, ...], required: tuple[str, ...], handler: Callable[..., Any], owner: Owner
) -> Invoker:
    def invoke(
        data: Mapping[str, Any],
        names: tuple[str, ...] = names,
        required: tuple[str, ...] = required,
        handler: Callable[..., Any] = handler,
        owner: Owner = owner,
    ) -> Any:
        for name in required:
            if name not in data:
                raise _missing(owner, handler, name, data)
        return handler(**{name: data[name] for name in names if name in data})

    return invoke


# -- invokers shared by method handlers, bound to the slot ---------------------
# Cached by signature: the methods of every class that take ``(self, value)``
# share one function. Each reads ``slot._handler`` into a local before calling
# it: called in place it would be an attribute load the interpreter does not
# specialise, a few dozen instructions more on every delivery.


def _shared_dict(slot: Host, data: Mapping[str, Any]) -> Any:
    function = slot._handler
    return function(slot.routine, dict(data))


def _shared_bare(slot: Host, data: Mapping[str, Any]) -> Any:
    function = slot._handler
    return function(slot.routine)


@functools.lru_cache(maxsize=1024)
def _shared_kwargs(required: tuple[str, ...]) -> Shared:
    def invoke(slot: Host, data: Mapping[str, Any], required: tuple[str, ...] = required) -> Any:
        for name in required:
            if name not in data:
                raise _missing(slot, slot.handler, name, data)
        function = slot._handler
        return function(slot.routine, **data)

    return invoke


@functools.lru_cache(maxsize=1024)
def _shared_single(name: str, required: bool, keyword: bool) -> Shared:
    if keyword:
        return _shared_keyword(name, required)

    def invoke(
        slot: Host, data: Mapping[str, Any], name: str = name, required: bool = required
    ) -> Any:
        function = slot._handler
        if name in data:
            return function(slot.routine, data[name])
        value = _unnamed(slot, slot.handler, name, required, data)
        if value is _NOTHING:
            return function(slot.routine)
        return function(slot.routine, value)

    return invoke


def _shared_keyword(name: str, required: bool) -> Shared:
    def invoke(
        slot: Host, data: Mapping[str, Any], name: str = name, required: bool = required
    ) -> Any:
        function = slot._handler
        value = data[name] if name in data else _unnamed(slot, slot.handler, name, required, data)
        if value is _NOTHING:
            return function(slot.routine)
        return function(slot.routine, **{name: value})

    return invoke


@functools.lru_cache(maxsize=1024)
def _shared_positional(positional: tuple[str, ...]) -> Shared:
    def invoke(
        slot: Host, data: Mapping[str, Any], positional: tuple[str, ...] = positional
    ) -> Any:
        for name in positional:
            if name not in data:
                raise _missing(slot, slot.handler, name, data)
        function = slot._handler
        return function(slot.routine, *(data[name] for name in positional))

    return invoke


@functools.lru_cache(maxsize=1024)
def _shared_named(names: tuple[str, ...], required: tuple[str, ...]) -> Shared:
    def invoke(
        slot: Host,
        data: Mapping[str, Any],
        names: tuple[str, ...] = names,
        required: tuple[str, ...] = required,
    ) -> Any:
        for name in required:
            if name not in data:
                raise _missing(slot, slot.handler, name, data)
        function = slot._handler
        return function(slot.routine, **{name: data[name] for name in names if name in data})

    return invoke
