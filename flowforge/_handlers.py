"""Work out once how to call a slot handler with a delivered dict.

The rules are those of the Routine contract (see :mod:`flowforge.routine`).
:func:`make_invoker` inspects the handler's signature when the slot is
defined and returns a small closure, so delivering a message never inspects
anything again.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .errors import HandlerParameterError, quoted

Invoker = Callable[[Mapping[str, Any]], Any]
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` returns a coroutine (``async def``)."""
    function = getattr(fn, "__func__", None)
    if function is not None and inspect.isfunction(function):
        found = _async.get(function)
        if found is None:
            found = _async[function] = inspect.iscoroutinefunction(function)
        return found
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def make_invoker(handler: Callable[..., Any], describe: Callable[[], tuple[str, str]]) -> Invoker:
    """Return ``invoke(data)`` that calls ``handler`` by the contract's rules.

    Args:
        handler: The slot's handler.
        describe: Returns ``(routine_id, slot_name)`` for error messages; it is
            called only when an error is raised.
    """
    params = _parameters(handler)
    if params is None:  # builtins without a signature take the dict
        return lambda data: handler(dict(data))
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return _kwargs_invoker(handler, params, describe)
    named = [p for p in params if p.kind in _NAMED or p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if not named:
        return lambda data: handler()
    if len(named) == 1:
        return _single_invoker(handler, named[0], describe)
    return _named_invoker(handler, named, describe)


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
_async: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _inspect(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _missing(
    describe: Callable[[], tuple[str, str]],
    handler: Callable[..., Any],
    name: str,
    data: Mapping[str, Any],
) -> HandlerParameterError:
    routine_id, slot = describe()
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


def _kwargs_invoker(
    handler: Callable[..., Any],
    params: list[inspect.Parameter],
    describe: Callable[[], tuple[str, str]],
) -> Invoker:
    required = [p.name for p in params if p.kind in _NAMED and p.default is p.empty]

    def invoke(data: Mapping[str, Any]) -> Any:
        for name in required:
            if name not in data:
                raise _missing(describe, handler, name, data)
        return handler(**data)

    return invoke


def _single_invoker(
    handler: Callable[..., Any],
    param: inspect.Parameter,
    describe: Callable[[], tuple[str, str]],
) -> Invoker:
    name, required = param.name, param.default is param.empty
    if param.kind is inspect.Parameter.KEYWORD_ONLY:

        def call(value: Any) -> Any:
            return handler(**{name: value})
    else:
        call = handler

    def invoke(data: Mapping[str, Any]) -> Any:
        if name in data:
            return call(data[name])
        if len(data) == 1:
            for value in data.values():
                return call(value)
        if data:
            return call(dict(data))
        if required:
            raise _missing(describe, handler, name, data)
        return handler()

    return invoke


def _named_invoker(
    handler: Callable[..., Any],
    named: list[inspect.Parameter],
    describe: Callable[[], tuple[str, str]],
) -> Invoker:
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in named):
        positional = [p.name for p in named]

        def invoke_positional(data: Mapping[str, Any]) -> Any:
            for name in positional:
                if name not in data:
                    raise _missing(describe, handler, name, data)
            return handler(*(data[name] for name in positional))

        return invoke_positional
    names = tuple(p.name for p in named)
    required = tuple(p.name for p in named if p.default is p.empty)

    def invoke(data: Mapping[str, Any]) -> Any:
        for name in required:
            if name not in data:
                raise _missing(describe, handler, name, data)
        return handler(**{name: data[name] for name in names if name in data})

    return invoke
