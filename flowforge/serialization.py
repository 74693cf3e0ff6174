"""Turning FlowForge objects into plain data and back.

One private :mod:`cattrs` converter (``converter``) does every
(un)structuring; the modules that own a class register its hooks here. Saved
routine classes and exception types are named by import path
(``"package.module:QualName"``). Loading imports a module only when it is
allowed: ``flowforge`` itself, anything already imported, and the prefixes
given to :func:`allow_modules` or to a loader's ``allowed_modules=``. YAML is
read and written only with ``safe_load``/``safe_dump``.
"""

from __future__ import annotations

import enum
import importlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import cattrs
import yaml

from .errors import SerializationError

converter = cattrs.Converter(forbid_extra_keys=True)
# StrEnums are str subclasses: write their plain value, so safe YAML accepts them.
converter.register_unstructure_hook(enum.StrEnum, lambda member: member.value)


def _strict(kind: type, accepts: tuple[type, ...]) -> Any:
    # cattrs would turn 5 into "5" or "5" into 5; a hand-written file deserves an error.
    def check(value: Any, _: Any) -> Any:
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, accepts):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return kind(value)

    return check


def _enum(value: Any, cls: type[enum.StrEnum]) -> enum.StrEnum:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"expected one of {choices}, got {value!r}") from None


converter.register_structure_hook(enum.StrEnum, _enum)
converter.register_structure_hook(str, _strict(str, (str,)))
converter.register_structure_hook(int, _strict(int, (int,)))
converter.register_structure_hook(float, _strict(float, (int, float)))
converter.register_structure_hook(bool, _strict(bool, (bool,)))
_allowed_prefixes: set[str] = {"flowforge"}
T = TypeVar("T")


def allow_modules(*prefixes: str) -> None:
    """Let saved flows import routine classes from these modules (and below).

    Example:
        >>> import flowforge
        >>> flowforge.allow_modules("myapp.routines")
    """
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix:
            raise TypeError(f"allow_modules() takes module names, got {prefix!r}.")
        _allowed_prefixes.add(prefix)


def allowed_modules() -> frozenset[str]:
    """The module prefixes saved flows may import from, process-wide."""
    return frozenset(_allowed_prefixes)


def import_path(obj: Any) -> str:
    """``"module:QualName"`` naming a class so it can be imported again."""
    return f"{obj.__module__}:{obj.__qualname__}"


def resolve(path: str, base: type[T], where: str, allowed: Iterable[str] = ()) -> type[T]:
    """Import the class named ``path`` and check it is a subclass of ``base``.

    Raises:
        SerializationError: the path is malformed, its module is not allowed,
            or it does not name a ``base`` subclass; the message says ``where``.
    """
    module_name, _, qualname = path.partition(":") if isinstance(path, str) else ("", "", "")
    if not module_name or not qualname:
        raise SerializationError(
            f"{where}: expected an import path 'package.module:ClassName', got {path!r}.",
            path=where,
        )
    module = sys.modules.get(module_name)
    if module is None:
        module = _import_allowed(module_name, where, {*allowed, *_allowed_prefixes})
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise SerializationError(
            f"{where}: {path!r} does not name a subclass of {base.__name__} (found {obj!r}).",
            path=where,
        )
    return obj


def _import_allowed(module_name: str, where: str, allowed: set[str]) -> Any:
    if not any(module_name == p or module_name.startswith(p + ".") for p in allowed):
        top = module_name.split(".")[0]
        raise SerializationError(
            f"{where}: module '{module_name}' is not allowed to be imported by a saved flow. "
            f"Import it before loading, or allow it: flowforge.allow_modules({top!r}) or "
            f"load(..., allowed_modules=[{top!r}]).",
            path=where,
        )
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise SerializationError(
            f"{where}: cannot import module '{module_name}': {exc}.", path=where
        ) from exc


def structure(data: Any, cls: type[T], what: str) -> T:
    """Structure ``data`` as ``cls``; errors list every problem with its place."""
    try:
        return converter.structure(data, cls)
    except SerializationError:
        raise
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            lines = [
                _place_first(line)
                for line in cattrs.transform_error(exc, path=what, format_exception=_describe)
            ]
        else:
            lines = [f"{what}: {exc}"]
        inner = _first_serialization_error(exc)
        if inner is not None:
            raise inner from exc
        raise SerializationError("Invalid data:\n  - " + "\n  - ".join(lines), path=what) from exc


def problems_of(data: Any, cls: type[T], what: str) -> tuple[T | None, list[str]]:
    """Structure ``data`` as ``cls``: ``(result, [])`` or ``(None, problems)``."""
    try:
        return structure(data, cls, what), []
    except SerializationError as exc:
        text = str(exc)
        prefix = "Invalid data:\n  - "
        return None, text[len(prefix) :].split("\n  - ") if text.startswith(prefix) else [text]


def _describe(exc: BaseException, expected: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s) {', '.join(map(repr, sorted(exc.extra_fields)))}"
    text = str(exc)
    if text.startswith("expected "):
        return text
    name = getattr(expected, "__name__", None) or str(expected)
    return f"expected {name}: {text}"


def _place_first(line: str) -> str:
    message, _, place = line.rpartition(" @ ")
    if not message:
        return line
    place = re.sub(r"\[['\"]([^'\"\]]*)['\"]\]", r".\1", place)
    place = re.sub(r"\b(class|from)_\b", r"\1", place)
    return f"{place}: {message}"


def _first_serialization_error(exc: BaseException) -> SerializationError | None:
    if isinstance(exc, SerializationError):
        return exc
    for sub in getattr(exc, "exceptions", ()):
        found = _first_serialization_error(sub)
        if found is not None:
            return found
    return None


def unencodable_path(value: Any, path: list[Any] | None = None) -> list[Any] | None:
    """The keys and indexes leading to the first value of ``value`` that is
    not plain JSON data, or ``None`` when there is none."""
    path = [] if path is None else path
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if key is not None and not isinstance(key, (str, int, float, bool)):
                return [*path, key]
            found = unencodable_path(item, [*path, key])
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = unencodable_path(item, [*path, i])
            if found is not None:
                return found
        return None
    return path


def describe_value(data: Any, path: list[Any]) -> str:
    """What is found at ``path`` in ``data`` (from :func:`unencodable_path`), in words."""
    value = data
    for step in path:
        if isinstance(value, dict) and step not in value:
            return f"a key of type {type(step).__name__} ({step!r:.60})"
        value = value[step]
    return f"a {type(value).__name__} ({value!r:.60})"


def dump_file(data: Any, path: str | os.PathLike[str]) -> None:
    """Write ``data`` as JSON or YAML (by suffix), atomically."""
    target = Path(path)
    text = _dumps(data, target)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dumps(data: Any, target: Path) -> str:
    kind = _kind(target)
    try:
        if kind == "json":
            return json.dumps(data, indent=2, sort_keys=False) + "\n"
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise SerializationError(
            f"Cannot write {target} as {kind.upper()}: {exc}. Configuration, stats and "
            "message data must be plain data (dict, list, str, int, float, bool, None)."
        ) from exc


def load_file(path: str | os.PathLike[str]) -> Any:
    """Read a JSON or YAML file (by suffix) into plain data."""
    source = Path(path)
    kind = _kind(source)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise SerializationError(f"Cannot read {source}: {exc.strerror}.") from exc
    try:
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SerializationError(f"{source} is not valid {kind.upper()}: {exc}") from exc


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise SerializationError(
        f"Cannot tell the format of {path}: expected a name ending in .json, .yaml or .yml, "
        f"got {suffix or 'no suffix'!r}."
    )
