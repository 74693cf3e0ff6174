"""Middleware as a definition: what ``Flow.use`` and ``Routine.use`` accept and
how a flow file names it.

A middleware is a callable ``mw(call, proceed)``: ``call`` is the
:class:`~flowforge.ActivationInfo` of the handler call (with its read-only
``data``), ``proceed()`` runs the rest of the chain and the handler once and
returns what the handler returned. How it runs lives in
:mod:`flowforge.runtime.chain`; this module only checks it and names it.

A flow file names middleware by import path, so a saved flow can be rebuilt:

* ``"module:function"`` -- a module-level function (or any object that
  importing the path gives back);
* ``{class: "module:Class", config: {...}}`` -- an instance of a module-level
  class that has a ``config`` mapping of its constructor's keyword
  arguments; loading calls ``Class(**config)``. The shipped
  :mod:`flowforge.middleware` are saved this way.

Loading imports modules as for routine classes, and refuses what was not
written as middleware: paths into the standard library (unless allowed
explicitly), classes and built-in functions named as functions, classes
without ``config``. A lambda or closure has no import path: saving a flow
that uses one raises :class:`~flowforge.SerializationError` naming it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from ._activation import ActivationInfo
from .errors import DefinitionTypeError, Problem, SerializationError
from .serialization import allowed_modules, failure, import_path, resolve_object

#: ``mw(call, proceed) -> result``: what ``Flow.use`` and ``Routine.use`` take.
Middleware: TypeAlias = Callable[[ActivationInfo, Callable[[], Any]], Any]


def checked(mw: Any, owner: str) -> Middleware:
    """``mw`` if it is callable, else a :class:`DefinitionTypeError`."""
    if not callable(mw):
        raise DefinitionTypeError(
            f"{owner}.use() takes a middleware: a callable mw(call, proceed), got "
            f"{type(mw).__name__} {mw!r:.60}. Write def mw(call, proceed): return proceed()."
        )
    return mw  # type: ignore[no-any-return]


def describe(mw: Any) -> str:
    """A short name for ``mw`` in messages: its qualified name, or its class's."""
    name = getattr(mw, "__qualname__", None)
    if isinstance(name, str):
        return f"{getattr(mw, '__module__', '?')}.{name}"
    return f"{type(mw).__module__}.{type(mw).__qualname__} instance"


# -- saving ------------------------------------------------------------------------


def dump(mw: Any, where: str) -> str | dict[str, Any]:
    """``mw`` as a flow file names it.

    Raises:
        SerializationError: ``mw`` has no import path (a lambda, a closure, an
            instance without ``config``); the message says where it is used.
    """
    own = getattr(mw, "__qualname__", None)
    if isinstance(own, str) and _imports_back(mw):
        return import_path(mw)
    config = getattr(mw, "config", None)
    if own is None and isinstance(config, Mapping) and _imports_back(type(mw)):
        return {"class": import_path(type(mw)), "config": dict(config)}
    raise failure(
        where,
        f"middleware {describe(mw)} has no import path, so a saved flow could not rebuild it.",
        "Use a function defined at module level, or an instance of a module-level class "
        "with a 'config' mapping of its keyword arguments -- not a lambda or a closure.",
    )


def _imports_back(obj: Any) -> bool:
    try:
        return resolve_object(import_path(obj), "", ()) is obj
    except (SerializationError, AttributeError):
        return False


# -- loading -----------------------------------------------------------------------


def load_all(
    raw: Any, where: str, allowed: tuple[str, ...], problems: list[Problem]
) -> tuple[Middleware, ...]:
    """Rebuild a flow file's ``middleware`` list; problems are listed, not raised."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(
            Problem(
                "error",
                where,
                f"expected a list of middleware, got {type(raw).__name__}.",
                "Write middleware: ['myapp.middleware:timed'].",
            )
        )
        return ()
    found = [_load(entry, f"{where}[{i}]", allowed, problems) for i, entry in enumerate(raw)]
    return tuple(mw for mw in found if mw is not None)


def _load(entry: Any, where: str, allowed: tuple[str, ...], problems: list[Problem]) -> Any:
    try:
        if isinstance(entry, str):
            _not_stdlib(entry, where, allowed)
            return _function(resolve_object(entry, where, allowed), where)
        if isinstance(entry, Mapping) and set(entry) <= {"class", "config"} and "class" in entry:
            _not_stdlib(entry["class"], f"{where}.class", allowed)
            return _instance(entry, where, allowed)
    except SerializationError as exc:
        problems += exc.problems
        return None
    problems.append(
        Problem(
            "error",
            where,
            f"expected 'module:function' or {{class: 'module:Class', config: {{...}}}}, "
            f"got {entry!r:.80}.",
            "",
        )
    )
    return None


def _not_stdlib(path: Any, where: str, allowed: tuple[str, ...]) -> None:
    # The standard library is always imported enough to be named, and none of
    # it is middleware: a file must not get to call its functions.
    module = path.partition(":")[0] if isinstance(path, str) else ""
    top = module.split(".")[0]
    if top not in sys.stdlib_module_names:
        return
    if any(module == p or module.startswith(p + ".") for p in (*allowed, *allowed_modules())):
        return
    raise failure(
        where,
        f"{path!r} is in the standard library ('{top}'), which holds no middleware.",
        "Name a middleware function or class of your own module.",
    )


def _instance(entry: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> Any:
    cls = resolve_object(entry["class"], f"{where}.class", allowed)
    # Only classes made to be saved this way: a config-less class (say
    # subprocess.Popen) must not be instantiable from a file.
    if not (isinstance(cls, type) and hasattr(cls, "config") and callable(cls)):
        raise failure(
            f"{where}.class",
            f"{entry['class']!r} is not a middleware class (a class with a 'config' attribute).",
            "Name a module-level class whose instances are middleware and have 'config'.",
        )
    config = entry.get("config") or {}
    if not isinstance(config, Mapping):
        raise failure(f"{where}.config", f"expected a mapping, got {type(config).__name__}.")
    try:
        mw = cls(**config)
    except Exception as exc:
        raise failure(
            where,
            f"{entry['class']}(**config) raised {type(exc).__name__}: {exc}.",
            "Its config must be the keyword arguments of the class.",
        ) from exc
    return _callable(mw, where)


def _function(obj: Any, where: str) -> Any:
    # Classes and C functions are refused: calling one with (call, proceed)
    # would construct or run something that was never meant as middleware.
    if not callable(obj) or isinstance(obj, type) or inspect.isbuiltin(obj):
        raise failure(
            where,
            f"expected a middleware function, got {type(obj).__name__} {obj!r:.60}.",
            "Name a function defined at module level: 'myapp.middleware:timed'.",
        )
    return obj


def _callable(obj: Any, where: str) -> Any:
    if not callable(obj):
        raise failure(where, f"expected a middleware callable, got {type(obj).__name__}.")
    return obj
