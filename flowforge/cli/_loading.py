"""Loading flow files for the commands, and the entry's parameters.

Whatever goes wrong while a flow file is read (bad YAML, a document nested
too deep or too large, text that is not UTF-8, invalid content) becomes
one :class:`CommandError` (exit status 2) naming the file and listing every
problem, each with a hint in flow-file and command-line terms.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import SerializationError, quoted
from ..flow import Flow
from ..runtime.executors import executor_kind, executor_kinds, make_executor
from ..serialization import load_file
from ..task import tasks_of
from ._common import CommandError

logger = logging.getLogger(__name__)

FLOW_DIR = "${flow_dir}"
#: The executors ``--executor`` offers; ``--workers`` sizes the pools.
EXECUTOR_CHOICES = executor_kinds()
POOLS = tuple(kind for kind in EXECUTOR_CHOICES if executor_kind(kind).pool)
#: Errors that escape a loader fed a hostile or broken file.
LOAD_FAILURES = (SerializationError, RecursionError, MemoryError, UnicodeDecodeError)
_NOT_ALLOWED = "is not allowed to be imported"


@attrs.frozen
class FlowFile:
    """A loaded flow file and what the command needed to load it."""

    flow: Flow
    path: Path
    #: Modules beside the flow file that its routines come from.
    local_modules: tuple[str, ...]


@attrs.frozen
class LoadProblem:
    """One problem met while loading a flow file."""

    where: str
    message: str
    hint: str | None = None
    severity: str = "error"

    def as_dict(self) -> dict[str, Any]:
        """The problem as ``validate --json`` prints it."""
        return {
            "severity": self.severity,
            "where": self.where,
            "message": self.message,
            "hint": self.hint,
        }


def sibling_modules(directory: Path) -> tuple[str, ...]:
    """Names of the modules and packages in ``directory`` (importable once it is on sys.path)."""
    names = {p.stem for p in directory.glob("*.py") if p.stem.isidentifier()}
    names |= {
        p.parent.name for p in directory.glob("*/__init__.py") if p.parent.name.isidentifier()
    }
    return tuple(sorted(names))


def allowed_from(allow: Sequence[str]) -> tuple[str, ...]:
    """``--allow`` names plus those in ``FLOWFORGE_ALLOW`` (comma separated)."""
    from_env = os.environ.get("FLOWFORGE_ALLOW", "").replace(",", " ").split()
    return tuple(dict.fromkeys([*allow, *from_env]))


def add_search_path(directory: Path) -> tuple[str, ...]:
    """Put ``directory`` first on ``sys.path``; the module names found there."""
    text = str(directory)
    if text not in sys.path:
        sys.path.insert(0, text)
    return sibling_modules(directory)


def load_flow_file(path: str | os.PathLike[str], allow: Sequence[str] = ()) -> FlowFile:
    """Load a flow file, letting it import the modules beside it.

    Raises:
        SerializationError, RecursionError, MemoryError, UnicodeDecodeError:
            the file is not a valid flow file (see :func:`load_problems`).
    """
    source = Path(path)
    directory = source.resolve().parent
    siblings = add_search_path(directory)
    allowed = (*siblings, *allowed_from(allow))
    logger.debug("Loading %s; modules allowed: %s", source, ", ".join(allowed) or "none")
    flow = Flow.load(source, allowed_modules=allowed)
    used = {type(r).__module__.partition(".")[0] for r in flow.routines.values()}
    expand_flow_dir(flow, directory)
    logger.info(
        "Loaded flow %r from %s: %d routines, %d connections",
        flow.flow_id,
        source,
        len(flow.routines),
        len(flow.connections),
    )
    return FlowFile(flow, source, tuple(m for m in siblings if m in used))


def expand_flow_dir(flow: Flow, directory: Path) -> None:
    """Replace ``${flow_dir}`` in the entry's params and in routine config."""
    if flow.entry is not None:
        flow.entry["params"] = _expand(flow.entry.get("params") or {}, str(directory))
    for routine in flow.routines.values():
        routine.config.update(_expand(routine.config, str(directory)))


def _expand(value: Any, directory: str) -> Any:
    if isinstance(value, str):
        return value.replace(FLOW_DIR, directory)
    if isinstance(value, dict):
        return {k: _expand(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, directory) for v in value]
    return value


# -- problems -------------------------------------------------------------------------


def load_problems(path: str, error: BaseException) -> list[LoadProblem]:
    """The separate problems of a loading error, each once, with a command-line hint."""
    if isinstance(error, SerializationError):
        problems = [
            LoadProblem(
                p.where, _named(p.message, path), hint_for(p.message) or p.hint or None, p.severity
            )
            for p in error.problems
        ]
    else:
        problems = [_split_place(_named(p, path)) for p in _message_problems(path, error)]
    return _dedupe(problems)


def _message_problems(path: str, error: BaseException) -> list[str]:
    if isinstance(error, RecursionError):
        return [f"the document is nested too deeply to read ({error})."]
    if isinstance(error, MemoryError):
        return ["the document is too large to read (it may be a YAML alias bomb)."]
    if isinstance(error, UnicodeDecodeError):
        return [f"the file is not UTF-8 text: {error}."]
    head, sep, rest = str(error).partition("\n  - ")
    return rest.split("\n  - ") if sep else [head]


def _named(message: str, path: str) -> str:
    # PyYAML names text it parsed from a string "<unicode string>".
    return message.replace('"<unicode string>"', f'"{path}"')


def _split_place(problem: str) -> LoadProblem:
    place, sep, text = problem.partition(": ")
    if sep and place.startswith("flow") and " " not in place:
        return LoadProblem(place, text, hint_for(text))
    return LoadProblem("flow", problem, hint_for(problem))


def _dedupe(problems: list[LoadProblem]) -> list[LoadProblem]:
    """Each problem once: a module not allowed is said once, naming every place it is used."""
    places: dict[str, list[LoadProblem]] = {}
    for p in problems:
        key = p.message if _about_a_module(p.message) else f"{p.where}|{p.message}"
        places.setdefault(key, []).append(p)
    return [_merged(same) for same in places.values()]


def _merged(same: list[LoadProblem]) -> LoadProblem:
    first = same[0]
    if not _about_a_module(first.message):
        return first
    # The loader's advice is for Python callers; the hint gives the command-line way.
    message = first.message.split(". Import it before loading")[0].rstrip(".")
    if len(same) > 1:
        message += f" (also used at {', '.join(p.where for p in same[1:])})"
    return attrs.evolve(first, message=message + ".")


def _about_a_module(message: str) -> bool:
    """A problem of a whole module (said once however many routines use it)."""
    return _NOT_ALLOWED in message or (
        message.startswith("module ") and "does not exist" in message
    )


def hint_for(problem: str) -> str | None:
    """A command-line hint for a loading problem, when there is one."""
    if _NOT_ALLOWED in problem:
        return (
            "Put the module next to the flow file, or allow it with --allow MODULE "
            "(or FLOWFORGE_ALLOW=MODULE)."
        )
    if "cannot import module" in problem or "does not exist" in problem:
        return "Check the module name; it must be next to the flow file or installed (see --allow)."
    if "unknown field(s)" in problem or "required field missing" in problem:
        return "See the flow-file reference for the keys each section takes."
    if "nested too deeply" in problem or "too large" in problem:
        return "A flow file is a plain mapping of a few levels; check for runaway anchors."
    if "not UTF-8" in problem:
        return "Save the flow file as UTF-8."
    return None


def format_load_error(path: str, problems: Sequence[LoadProblem]) -> str:
    """The loading problems as the text ``run``, ``show`` and ``validate`` print."""
    lines = [f"{path}: cannot load the flow ({len(problems)} problem(s)):"]
    for p in problems:
        lines.append(f"  error: {problem_text(p)}")
        if p.hint:
            lines.append(f"         hint: {p.hint}")
    return "\n".join(lines)


def problem_text(p: LoadProblem) -> str:
    return p.message if p.where == "flow" else f"{p.where}: {p.message}"


def open_flow(path: str, allow: Sequence[str]) -> FlowFile:
    """:func:`load_flow_file`, any loading failure turned into a :class:`CommandError`."""
    try:
        return load_flow_file(path, allow)
    except LOAD_FAILURES as exc:
        raise CommandError(format_load_error(path, load_problems(path, exc))) from None


# -- parameters and overrides -----------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON if it parses (numbers, true, lists...), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    """Split ``key=value``; the value goes through :func:`parse_value`."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CommandError(f"{option} expects KEY=VALUE, got {text!r}. Example: {option} limit=10")
    return key.strip(), parse_value(value)


def entry_params(
    flow: Flow,
    routine_id: str,
    params: Sequence[str],
    params_file: str | None,
) -> dict[str, Any]:
    """The entry's params: the flow file's (same entry only), the params file, then ``--param``."""
    defaults = flow.entry or {}
    merged: dict[str, Any] = {}
    if defaults.get("routine_id") == routine_id:
        merged.update(defaults.get("params") or {})
    if params_file is not None:
        merged.update(_read_params_file(params_file))
    merged.update(parse_assignment(p, "--param") for p in params)
    return merged


def _read_params_file(path: str) -> dict[str, Any]:
    try:
        data = load_file(path)
    except LOAD_FAILURES as exc:
        problems = "; ".join(problem_text(p) for p in load_problems(path, exc))
        raise CommandError(f"--params-file {path}: {problems}") from None
    if not isinstance(data, dict):
        raise CommandError(
            f"--params-file {path}: expected a mapping of parameter names to values, got "
            f"{type(data).__name__}."
        )
    return data


def resolve_entry(flow: Flow, entry: str | None) -> tuple[str, str | None]:
    """``(routine_id, slot)`` from ``--entry ROUTINE[.SLOT]`` or the flow file's entry."""
    if entry is None:
        defaults = flow.entry or {}
        if defaults.get("routine_id") is None and tasks_of(flow.routines):
            return "", None  # a flow of tasks: every job starts every task
        if defaults.get("routine_id") is None:
            raise CommandError(
                f"Flow '{flow.flow_id}' has no entry. Name the routine to start at with "
                f"--entry ROUTINE (one of {quoted(flow.routines)}), or add an 'entry:' section."
            )
        return defaults["routine_id"], defaults.get("slot")
    routine_id, _, slot = entry.partition(".")
    if routine_id not in flow.routines:
        raise CommandError(
            f"--entry {entry}: flow '{flow.flow_id}' has no routine '{routine_id}'. Its "
            f"routines are: {quoted(flow.routines)}."
        )
    return routine_id, slot or None


def apply_settings(flow: Flow, settings: Sequence[str]) -> None:
    """Apply ``--set ROUTINE.KEY=VALUE`` to the routines' config."""
    for text in settings:
        target, value = parse_assignment(text, "--set")
        routine_id, _, key = target.partition(".")
        routine = flow.get_routine(routine_id)
        if routine is None or not key:
            raise CommandError(
                f"--set {text}: expected ROUTINE.KEY=VALUE with ROUTINE one of "
                f"{quoted(flow.routines)}."
            )
        routine.set_config(**{key: value})


def apply_executor(flow: Flow, executor: str | None, workers: int | None) -> None:
    """Apply ``--executor`` and ``--workers``."""
    kind = executor or flow.executor.name
    if workers is not None and kind not in POOLS:
        raise CommandError("--workers needs a pool: add --executor thread (or process).")
    if executor is not None or workers is not None:
        default = getattr(flow.executor, "max_workers", None)
        try:
            flow.executor = make_executor(kind, workers or default)
        except ImportError as exc:  # the kind's extra is missing; the message says which
            raise CommandError(str(exc)) from exc
