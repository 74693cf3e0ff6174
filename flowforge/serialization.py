"""Turning FlowForge objects into plain data and back.

One private :mod:`cattrs` converter (``converter``) does every
(un)structuring; the modules that own a class register its hooks here. Saved
routine classes and exception types are named by import path
(``"package.module:QualName"``). Loading imports a module only when it is
allowed: ``flowforge`` itself, anything already imported, and the prefixes
given to :func:`allow_modules` or to a loader's ``allowed_modules=`` (one
name or a list of names). A module that does not exist is reported as such,
not as "not allowed". YAML is read and written only with
``safe_load``/``safe_dump``.

Reading refuses at once, with a :class:`~flowforge.SerializationError`
whose one problem says where: files over :data:`MAX_FILE_BYTES`, text that
is not UTF-8, data nested deeper than :data:`MAX_DEPTH` (or than the parser
follows), data holding more than :data:`MAX_VALUES` values once YAML aliases
are expanded (measured without expanding them), and data that contains
itself.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import importlib.util
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

from .errors import DefinitionTypeError, Problem, SerializationError, quoted

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


def module_names(allowed: str | Iterable[str] | None) -> tuple[str, ...]:
    """``allowed_modules=`` as a tuple of names: one name, or an iterable of names.

    Raises:
        DefinitionTypeError: something other than module names was given.
    """
    if allowed is None:
        return ()
    names = (allowed,) if isinstance(allowed, str) else allowed
    try:
        result = tuple(names)
    except TypeError:
        result = (allowed,)  # type: ignore[assignment]
    for name in result:
        if not isinstance(name, str) or not name:
            raise DefinitionTypeError(
                f"allowed_modules takes a module name or a list of module names, got "
                f"{allowed!r}. Write allowed_modules=['myapp.routines']."
            )
    return result


def failure(where: str, message: str, hint: str = "") -> SerializationError:
    """A :class:`SerializationError` with one problem at ``where``."""
    text = f"{where}: {message}" + (f" {hint}" if hint else "")
    return SerializationError(text, path=where, problems=[Problem("error", where, message, hint)])


def resolve(path: str, base: type[T], where: str, allowed: Iterable[str] = ()) -> type[T]:
    """Import the class named ``path`` and check it is a subclass of ``base``.

    Raises:
        SerializationError: the path is malformed, its module does not exist
            or is not allowed, or it does not name a ``base`` subclass; its one
            problem is at ``where``.
    """
    module, obj = _lookup(path, where, allowed, ("ClassName", "class", "myapp.routines:Parse"))
    if obj is _MISSING:
        raise _no_such_class(module, path, base, where)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise failure(
            where,
            f"{path!r} does not name a subclass of {base.__name__}: it names {_kind_of(obj)}.",
            f"Name a {base.__name__} subclass defined in '{module.__name__}'.",
        )
    return obj


_MISSING: Any = object()


def resolve_object(path: str, where: str, allowed: Iterable[str] = ()) -> Any:
    """Import whatever ``path`` (``"module:QualName"``) names, from an allowed module.

    Raises:
        SerializationError: the path is malformed, its module does not exist
            or is not allowed, or it names nothing; its one problem is at ``where``.
    """
    module, obj = _lookup(path, where, allowed, ("name", "name", "myapp.middleware:timed"))
    if obj is _MISSING:
        raise failure(where, f"module '{module.__name__}' has no '{path.partition(':')[2]}'.")
    return obj


def _lookup(
    path: object, where: str, allowed: Iterable[str], words: tuple[str, str, str]
) -> tuple[Any, Any]:
    """The module of ``"module:QualName"`` and what it names there (``_MISSING`` if nothing).

    ``words`` say what the path should name, for the error: the placeholder,
    the word, and an example (``"ClassName", "class", "myapp.routines:Parse"``).
    """
    placeholder, word, example = words
    module_name, _, qualname = path.partition(":") if isinstance(path, str) else ("", "", "")
    if not module_name or not qualname:
        raise failure(
            where,
            f"expected an import path 'package.module:{placeholder}', got {path!r}.",
            f"Write the module, a colon, then the {word}, e.g. '{example}'.",
        )
    module = imported(module_name)
    if module is None:
        module = _import_allowed(module_name, where, {*allowed, *_allowed_prefixes})
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            break
    return module, obj


def imported(module_name: str) -> Any:
    """The module if it was imported already (whatever the allow-list says), else None.

    A module another thread is still importing sits in ``sys.modules``
    half-built; ``import_module`` waits for that import to finish instead of
    handing out the half-built module.
    """
    if module_name not in sys.modules:
        return None
    return importlib.import_module(module_name)


def _kind_of(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    return f"a {type(obj).__name__} ({obj!r:.60})"


def _no_such_class(module: Any, path: str, base: type, where: str) -> SerializationError:
    candidates = [
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and value is not base
    ]
    close = difflib.get_close_matches(path.partition(":")[2], candidates, n=3)
    if close:
        hint = f"Did you mean {quoted(close)}?"
    elif candidates:
        hint = f"Its {base.__name__} subclasses are: {quoted(candidates)}."
    else:
        hint = f"It defines no {base.__name__} subclass; check the module name."
    return failure(
        where, f"module '{module.__name__}' has no class '{path.partition(':')[2]}'.", hint
    )


def _import_allowed(module_name: str, where: str, allowed: set[str]) -> Any:
    top = module_name.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise failure(
            where,
            f"module '{module_name}' does not exist (no module named '{top}' is installed "
            "or on sys.path).",
            "Check the spelling, or install the package (for the flowforge command, put the "
            "module next to the flow file).",
        )
    if not any(module_name == p or module_name.startswith(p + ".") for p in allowed):
        raise failure(
            where,
            f"module '{module_name}' is not allowed to be imported by a saved flow.",
            f"Import it before loading, or allow it: flowforge.allow_modules({top!r}) or "
            f"load(..., allowed_modules=[{top!r}]).",
        )
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise failure(
            where,
            f"cannot import module '{module_name}': {exc}.",
            "Check the module name and that its own imports are installed.",
        ) from exc


def structure(data: Any, cls: type[T], what: str) -> T:
    """Structure ``data`` as ``cls``; errors list every problem with its place.

    Raises:
        SerializationError: with one :class:`~flowforge.Problem` per bad value.
    """
    try:
        return converter.structure(data, cls)
    except SerializationError:
        raise
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        inner = _first_serialization_error(exc)
        if inner is not None:
            raise inner from exc
        if isinstance(exc, cattrs.BaseValidationError):
            lines = cattrs.transform_error(exc, path=what, format_exception=_describe)
            problems = [_place_first(line) for line in lines]
        else:
            problems = [Problem("error", what, str(exc), "")]
        text = "\n  - ".join(f"{p.where}: {p.message}" for p in problems)
        raise SerializationError(
            f"Invalid data:\n  - {text}", path=what, problems=problems
        ) from exc


def problems_of(data: Any, cls: type[T], what: str) -> tuple[T | None, list[Problem]]:
    """Structure ``data`` as ``cls``: ``(result, [])`` or ``(None, problems)``."""
    try:
        return structure(data, cls, what), []
    except SerializationError as exc:
        return None, exc.problems


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


def _place_first(line: str) -> Problem:
    message, _, place = line.rpartition(" @ ")
    if not message:
        return Problem("error", "flow", line, "")
    place = re.sub(r"\[['\"]([^'\"\]]*)['\"]\]", r".\1", place)
    place = re.sub(r"\b(class|from)_\b", r"\1", place)
    return Problem("error", place, message, _hint_for(message))


def _hint_for(message: str) -> str:
    if message.startswith("unknown field"):
        return "Remove it or fix its spelling; see the flow-file reference for the keys."
    if message == "required field missing":
        return "Add it; see the flow-file reference."
    return ""


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


#: Largest flow file :meth:`Flow.load <flowforge.Flow.load>` reads, in bytes.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Most values (mappings, lists and scalars, counted with YAML aliases
#: expanded) a flow's data may hold.
MAX_VALUES = 1_000_000
#: Deepest nesting of mappings and lists a flow's data may have.
MAX_DEPTH = 100


def load_file(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Any:
    """Read a JSON or YAML file (by suffix) into plain data.

    Raises:
        SerializationError: the file cannot be read, is larger than
            ``max_bytes``, is not UTF-8 text, is not valid JSON/YAML, or nests
            deeper than the parser can follow.
    """
    source = Path(path)
    kind = _kind(source)
    text = _read_text(source, max_bytes)
    try:
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise failure(str(source), f"is not valid {kind.upper()}: {exc}") from exc
    except RecursionError:
        raise failure(
            str(source),
            f"nests mappings or lists too deeply for a {kind.upper()} file.",
            f"Flatten it: flow files nest at most {MAX_DEPTH} levels.",
        ) from None


def _read_text(source: Path, max_bytes: int | None) -> str:
    try:
        with source.open("rb") as handle:
            raw = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as exc:
        raise failure(str(source), f"Cannot read {source}: {exc.strerror}.") from exc
    if max_bytes is not None and len(raw) > max_bytes:
        raise failure(
            str(source),
            f"is larger than {max_bytes:,} bytes, the most a flow file may be.",
            "Keep large data out of the flow file: read it from a file named in config.",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise failure(str(source), _not_utf8(raw, exc), "Save the file as UTF-8.") from None


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8."
    if b"\x00" in raw[:4096]:
        return "is not UTF-8 text: it contains NUL bytes (UTF-16 text, or binary data)."
    return (
        f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
        "is not valid UTF-8 (binary data, or another encoding)."
    )


def check_shape(data: Any, where: str) -> None:
    """Refuse data that nests deeper than :data:`MAX_DEPTH`, holds more than
    :data:`MAX_VALUES` values once shared parts (YAML aliases) are expanded,
    or contains itself.

    Shared parts are sized once, so a small file of nested aliases is refused
    at once instead of being expanded.

    Raises:
        SerializationError: naming the place where the limit is passed.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    # Places are kept as (parent, key, in_list) links and spelt out only for an error.
    stack: list[tuple[Any, Any, int, bool]] = [(data, where, 0, False)]
    while stack:
        value, place, depth, done = stack.pop()
        key = id(value)
        if done:
            active.discard(key)
            items = value.values() if isinstance(value, dict) else value
            sizes[key] = 1 + sum(sizes[id(c)] if isinstance(c, (dict, list)) else 1 for c in items)
            if sizes[key] > MAX_VALUES:
                raise _too_big(_spell(place))
            continue
        if key in active:
            raise failure(_spell(place), "contains itself (a YAML alias to one of its parents).")
        if key in sizes or not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            raise failure(_spell(place), f"nests more than {MAX_DEPTH} levels deep.", "Flatten it.")
        active.add(key)
        stack.append((value, place, depth, True))
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        in_list = isinstance(value, list)
        stack.extend(
            (child, (place, k, in_list), depth + 1, False)
            for k, child in pairs
            if isinstance(child, (dict, list))
        )


def _spell(place: Any) -> str:
    parts: list[str] = []
    while isinstance(place, tuple):
        place, k, in_list = place
        parts.append(f"[{k}]" if in_list else f".{k}")
    return str(place) + "".join(reversed(parts))


def _too_big(place: str) -> SerializationError:
    # The list positions inside one value say little; name the key that holds it.
    return failure(
        re.sub(r"(\[\d+\])+$", "", place),
        f"holds more than {MAX_VALUES:,} values once YAML aliases are expanded.",
        "Write the data out without nested aliases, or keep large data in its own file.",
    )


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
