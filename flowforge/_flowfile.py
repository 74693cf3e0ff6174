"""The flow-file format: what :meth:`Flow.serialize` writes and loading reads.

A flow file (JSON or YAML) is a mapping::

    format: flowforge/flow        # optional when reading
    version: 1
    flow_id: report
    executor: {kind: thread, max_workers: 4}     # optional
    error_handler: {strategy: retry, max_retries: 2}   # optional, the default
    retention: 1000                               # optional
    max_activations: 1000000                      # optional, null disables
    entry: {routine: read, slot: null, params: {path: data.csv}}   # optional
    routines:
      read:
        class: myapp.routines:ReadCsv             # import path
        config: {delimiter: ","}
        stats: {}
        policy: {max_concurrency: 1, timeout: null, max_activations: null,
                 error_handler: null}
    connections:
      - read.rows -> parse.input                 # "source.event -> target.slot"
      - {from: parse.bad, to: rejects.input, mapping: {row: record}}
    tasks:                                        # optional: functions run as tasks
      summary: {function: myapp.tasks:summary, depends_on: [], retries: 0}

Loading checks everything before building anything, and reports every
problem with its place in the file.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .error_handler import ErrorHandler, ErrorStrategy
from .errors import SerializationError, quoted
from .routine import Routine
from .runtime.executors import EXECUTORS, make_executor
from .serialization import (
    _import_allowed,
    allowed_modules,
    converter,
    import_path,
    problems_of,
    resolve,
)
from .task import Task, dependency_wire, tasks_of

if TYPE_CHECKING:
    from .flow import Flow

F = TypeVar("F", bound="Flow")
FORMAT = "flowforge/flow"
VERSION = 1


@attrs.frozen
class ErrorHandlerDoc:
    """An ErrorHandler in a flow file."""

    strategy: ErrorStrategy = ErrorStrategy.STOP
    max_retries: int = 3
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retryable_exceptions: list[str] = attrs.field(factory=lambda: ["builtins:Exception"])


@attrs.frozen
class PolicyDoc:
    """A routine's policy in a flow file."""

    max_concurrency: int = 1
    timeout: float | None = None
    max_activations: int | None = None
    error_handler: ErrorHandlerDoc | None = None


@attrs.frozen
class RoutineDoc:
    """A routine in a flow file."""

    class_: str
    config: dict[str, Any] = attrs.field(factory=dict)
    stats: dict[str, Any] = attrs.field(factory=dict)
    policy: PolicyDoc = attrs.field(factory=PolicyDoc)


@attrs.frozen
class ConnectionDoc:
    """A connection: ``from`` is ``source.event``, ``to`` is ``target.slot``."""

    from_: str
    to: str
    mapping: dict[str, str] | None = None


@attrs.frozen
class ExecutorDoc:
    """The executor settings."""

    kind: str = "sequential"
    max_workers: int | None = None
    address: str | None = None


@attrs.frozen
class EntryDoc:
    """Where jobs start by default."""

    routine: str
    slot: str | None = None
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class TaskDoc:
    """A task in a flow file: its function's import path and its options."""

    function: str
    depends_on: list[str] = attrs.field(factory=list)
    retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    timeout: float | None = None
    max_concurrency: int = 1
    error_strategy: ErrorStrategy | None = None


@attrs.frozen
class FlowDoc:
    """A whole flow file."""

    routines: dict[str, RoutineDoc]
    connections: list[ConnectionDoc] = attrs.field(factory=list)
    flow_id: str | None = None
    format: str = FORMAT
    version: int = VERSION
    executor: ExecutorDoc = attrs.field(factory=ExecutorDoc)
    error_handler: ErrorHandlerDoc | None = None
    retention: int = 1000
    max_activations: int | None = 1_000_000
    entry: EntryDoc | None = None
    tasks: dict[str, TaskDoc] = attrs.field(factory=dict)


def _structure_connection(data: Any, _: Any) -> ConnectionDoc:
    if isinstance(data, str):
        source, arrow, target = data.partition("->")
        if not arrow:
            raise ValueError(f"expected 'source.event -> target.slot', got {data!r}")
        return ConnectionDoc(source.strip(), target.strip())
    return _structure_connection_dict(data, ConnectionDoc)


def _unstructure_connection(doc: ConnectionDoc) -> Any:
    if doc.mapping is None:
        return f"{doc.from_} -> {doc.to}"
    return {"from": doc.from_, "to": doc.to, "mapping": dict(doc.mapping)}


_structure_connection_dict = make_dict_structure_fn(
    ConnectionDoc, converter, from_=override(rename="from"), _cattrs_forbid_extra_keys=True
)
converter.register_structure_hook(ConnectionDoc, _structure_connection)
converter.register_unstructure_hook(ConnectionDoc, _unstructure_connection)
converter.register_structure_hook(
    RoutineDoc,
    make_dict_structure_fn(
        RoutineDoc, converter, class_=override(rename="class"), _cattrs_forbid_extra_keys=True
    ),
)
converter.register_unstructure_hook(
    RoutineDoc, make_dict_unstructure_fn(RoutineDoc, converter, class_=override(rename="class"))
)
converter.register_structure_hook(
    TaskDoc, make_dict_structure_fn(TaskDoc, converter, _cattrs_forbid_extra_keys=True)
)


# -- writing -------------------------------------------------------------------


def dump_flow(flow: Flow) -> dict[str, Any]:
    """The flow as plain data."""
    tasks = tasks_of(flow.routines)
    doc = FlowDoc(
        flow_id=flow.flow_id,
        routines={rid: _routine_doc(r) for rid, r in flow.routines.items() if rid not in tasks},
        tasks={rid: _task_doc(t) for rid, t in tasks.items()},
        connections=[
            ConnectionDoc(
                f"{c.event.routine_label()}.{c.event.name}",
                f"{c.slot.routine_label()}.{c.slot.name}",
                c.param_mapping,
            )
            for c in flow.connections
            if not dependency_wire(c)
        ],
        executor=ExecutorDoc(**flow.executor.settings()),
        error_handler=_handler_doc(flow.error_handler),
        retention=flow.retention,
        max_activations=flow.max_activations,
        entry=None
        if flow.entry is None
        else EntryDoc(
            flow.entry["routine_id"], flow.entry.get("slot"), dict(flow.entry.get("params") or {})
        ),
    )
    data: dict[str, Any] = converter.unstructure(doc)
    if not tasks:
        del data["tasks"]
    return {"format": data.pop("format"), "version": data.pop("version"), **data}


def _task_doc(task: Task) -> TaskDoc:
    qualname = getattr(task.fn, "__qualname__", "<locals>")
    if "<" in qualname:  # a lambda, a nested function, a partial: nothing to import
        raise SerializationError(
            f"Task '{task.name}' cannot be saved: its function {task.fn!r} has no import path. "
            "A saved task needs a module-level function.",
            path=f"flow.tasks.{task.name}.function",
        )
    return TaskDoc(
        import_path(task.fn),
        list(task.depends_on),
        task.retries,
        task.retry_delay,
        task.retry_backoff,
        task.policy.timeout,
        task.policy.max_concurrency,
        task.error_strategy,
    )


def _task_docs(raw: Any, problems: list[str]) -> dict[str, TaskDoc]:
    if not isinstance(raw, Mapping):
        problems.append(f"flow.tasks: expected a mapping of task names to tasks, got {raw!r}")
        return {}
    docs: dict[str, TaskDoc] = {}
    for name, entry in raw.items():
        doc, found = problems_of(entry, TaskDoc, f"flow.tasks.{name}")
        problems += found
        if doc is not None:
            docs[str(name)] = doc
    return docs


def _build_task(
    flow: Flow, name: str, doc: TaskDoc, allowed: tuple[str, ...], problems: list[str]
) -> None:
    where = f"flow.tasks.{name}"
    try:
        fn = _function(doc.function, f"{where}.function", allowed)
        flow.task(
            fn,
            name=name,
            depends_on=doc.depends_on,
            retries=doc.retries,
            retry_delay=doc.retry_delay,
            retry_backoff=doc.retry_backoff,
            timeout=doc.timeout,
            max_concurrency=doc.max_concurrency,
            error_strategy=doc.error_strategy,
        )
    except SerializationError as exc:
        problems.append(str(exc))
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")


def _function(path: str, where: str, allowed: tuple[str, ...]) -> Any:
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise SerializationError(
            f"{where}: expected an import path 'package.module:function', got {path!r}.",
            path=where,
        )
    obj: Any = sys.modules.get(module_name) or _import_allowed(
        module_name, where, {*allowed, *allowed_modules()}
    )
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, Task):
        return obj.fn
    if not callable(obj) or isinstance(obj, type):
        raise SerializationError(
            f"{where}: {path!r} does not name a function (found {obj!r}).", path=where
        )
    return obj


def _routine_doc(routine: Routine) -> RoutineDoc:
    policy = routine.policy
    return RoutineDoc(
        import_path(type(routine)),
        dict(routine.config),
        dict(routine._own_stats),
        PolicyDoc(
            policy.max_concurrency,
            policy.timeout,
            policy.max_activations,
            None if policy.error_handler is None else _handler_doc(policy.error_handler),
        ),
    )


def _handler_doc(handler: ErrorHandler) -> ErrorHandlerDoc:
    return ErrorHandlerDoc(
        handler.strategy,
        handler.max_retries,
        handler.retry_delay,
        handler.retry_backoff,
        [import_path(e) for e in handler.retryable_exceptions],
    )


# -- reading -------------------------------------------------------------------


def load_flow(data: Mapping[str, Any], flow_cls: type[F], allowed: tuple[str, ...]) -> F:
    """Check ``data`` whole, then build a new flow of ``flow_cls`` from it.

    Every problem is collected (each routine and connection is checked on its
    own, so one bad entry does not hide the others) before anything is
    returned; nothing is half-loaded.
    """
    if not isinstance(data, Mapping):
        raise SerializationError(
            f"A flow file must be a mapping with 'routines' and 'connections', got "
            f"{type(data).__name__}."
        )
    header = dict(data)
    raw_routines = header.pop("routines", None)
    raw_connections = header.pop("connections", [])
    raw_tasks = header.pop("tasks", {})
    if raw_routines is None and raw_tasks:
        raw_routines = {}
    doc, problems = problems_of({**header, "routines": {}}, FlowDoc, "flow")
    if doc is not None:
        _check_format(doc)
    routines = _routine_docs(raw_routines, problems)
    connections = _connection_docs(raw_connections, problems)
    tasks = _task_docs(raw_tasks, problems)
    if doc is None:
        doc = FlowDoc(routines={})  # the header's problems are listed; check the rest too
    if doc.retention < 1:
        problems.append(f"flow.retention: expected an int >= 1, got {doc.retention!r}")
        doc = attrs.evolve(doc, retention=1)
    flow = flow_cls(
        doc.flow_id,
        executor=_executor(doc.executor, problems),
        error_handler=_handler(doc.error_handler, "flow.error_handler", allowed, problems),
        retention=doc.retention,
        max_activations=doc.max_activations,
    )
    broken = (
        {str(rid) for rid in raw_routines or ()} if isinstance(raw_routines, Mapping) else set()
    )
    for rid, rdoc in routines.items():
        routine = _build_routine(rid, rdoc, allowed, problems)
        if routine is not None:
            _add(flow, rid, routine, problems)
    for name, tdoc in tasks.items():
        _build_task(flow, name, tdoc, allowed, problems)
    broken |= {str(name) for name in raw_tasks} if isinstance(raw_tasks, Mapping) else set()
    broken -= set(flow.routines)
    for where, cdoc in connections:
        # A connection to a routine that could not be built would only repeat its problem.
        ends = {cdoc.from_.partition(".")[0], cdoc.to.partition(".")[0]}
        if not ends & broken:
            _connect(flow, cdoc, where, problems)
    if doc.entry is not None:
        _set_entry(flow, doc.entry, problems)
    if problems:
        raise _invalid(problems)
    return flow


def _invalid(problems: list[str]) -> SerializationError:
    return SerializationError(
        f"The flow has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems), path="flow"
    )


def _check_format(doc: FlowDoc) -> None:
    if doc.format != FORMAT:
        raise SerializationError(
            f"flow.format: expected {FORMAT!r}, got {doc.format!r}; this is not a flow file.",
            path="flow.format",
        )
    if doc.version > VERSION:
        raise SerializationError(
            f"flow.version: this file is version {doc.version}, newer than this FlowForge "
            f"reads ({VERSION}). Upgrade FlowForge.",
            path="flow.version",
        )


def _routine_docs(raw: Any, problems: list[str]) -> dict[str, RoutineDoc]:
    if not isinstance(raw, Mapping):
        what = "required field missing" if raw is None else f"got {type(raw).__name__}"
        problems.append(f"flow.routines: expected a mapping of routine ids to routines; {what}")
        return {}
    docs: dict[str, RoutineDoc] = {}
    for rid, entry in raw.items():
        doc, found = problems_of(entry, RoutineDoc, f"flow.routines.{rid}")
        problems += found
        if doc is not None:
            docs[str(rid)] = doc
    return docs


def _connection_docs(raw: Any, problems: list[str]) -> list[tuple[str, ConnectionDoc]]:
    if not isinstance(raw, list):
        problems.append(f"flow.connections: expected a list, got {type(raw).__name__}")
        return []
    docs = []
    for i, entry in enumerate(raw):
        where = f"flow.connections[{i}]"
        doc, found = problems_of(entry, ConnectionDoc, where)
        problems += found
        if doc is not None:
            docs.append((where, doc))
    return docs


def _set_entry(flow: Flow, entry: EntryDoc, problems: list[str]) -> None:
    if entry.routine not in flow.routines and flow.routines:
        problems.append(
            f"flow.entry.routine: unknown routine '{entry.routine}'; "
            f"routines are {quoted(flow.routines)}"
        )
    flow.entry = {"routine_id": entry.routine, "slot": entry.slot, "params": dict(entry.params)}


def _executor(doc: ExecutorDoc, problems: list[str]) -> Any:
    known = [*EXECUTORS, "dask"]
    if doc.kind not in known:
        problems.append(f"flow.executor.kind: expected one of {quoted(known)}, got {doc.kind!r}")
        return None
    try:
        return make_executor(doc.kind, doc.max_workers, address=doc.address)
    except (ImportError, ValueError) as exc:
        problems.append(f"flow.executor: {exc}")
        return None


def _handler(
    doc: ErrorHandlerDoc | None, where: str, allowed: tuple[str, ...], problems: list[str]
) -> ErrorHandler | None:
    if doc is None:
        return None
    types: list[type[BaseException]] = []
    for i, path in enumerate(doc.retryable_exceptions):
        try:
            types.append(
                resolve(path, BaseException, f"{where}.retryable_exceptions[{i}]", allowed)
            )
        except SerializationError as exc:
            problems.append(str(exc))
    try:
        return ErrorHandler(
            doc.strategy,
            doc.max_retries,
            doc.retry_delay,
            doc.retry_backoff,
            tuple(types) or (Exception,),
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return None


def _build_routine(
    rid: str, doc: RoutineDoc, allowed: tuple[str, ...], problems: list[str]
) -> Routine | None:
    where = f"flow.routines.{rid}"
    try:
        cls = resolve(doc.class_, Routine, f"{where}.class", allowed)
        routine = cls()
    except SerializationError as exc:
        problems.append(str(exc))
        return None
    except Exception as exc:
        problems.append(
            f"{where}.class: {doc.class_}() raised {type(exc).__name__}: {exc}. "
            "A saved routine must be constructible with no arguments."
        )
        return None
    routine.set_config(**doc.config)
    routine._own_stats = dict(doc.stats)
    handler = _handler(doc.policy.error_handler, f"{where}.policy.error_handler", allowed, problems)
    try:
        routine.set_policy(
            max_concurrency=doc.policy.max_concurrency,
            timeout=doc.policy.timeout,
            max_activations=doc.policy.max_activations,
            error_handler=handler,
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}.policy: {exc}")
    return routine


def _add(flow: Flow, rid: str, routine: Routine, problems: list[str]) -> None:
    try:
        flow.add_routine(routine, rid)
    except (TypeError, ValueError) as exc:
        problems.append(f"flow.routines.{rid}: {exc}")


def _connect(flow: Flow, doc: ConnectionDoc, where: str, problems: list[str]) -> None:
    source, _, event = doc.from_.partition(".")
    target, _, slot = doc.to.partition(".")
    if not (source and event and target and slot):
        problems.append(
            f"{where}: expected 'source.event' and 'target.slot', got {doc.from_!r} -> {doc.to!r}"
        )
        return
    try:
        flow.connect(source, event, target, slot, doc.mapping)
    except (LookupError, TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
