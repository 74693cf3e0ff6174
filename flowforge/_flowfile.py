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
    middleware:                                   # optional, outermost first
      - myapp.middleware:timed                    # a module-level function
      - {class: flowforge.middleware:LogCalls, config: {logger: app, level: 20}}
    routines:
      read:
        class: myapp.routines:ReadCsv             # import path
        config: {delimiter: ","}
        stats: {}
        policy: {max_concurrency: 1, timeout: null, max_activations: null,
                 error_handler: null}
        middleware: []                            # optional, inside the flow's
    connections:
      - read.rows -> parse.input                 # "source.event -> target.slot"
      - {from: parse.bad, to: rejects.input, mapping: {row: record}}
    tasks:                                        # optional: functions run as tasks
      summary: {function: myapp.tasks:summary, depends_on: [], retries: 0}

Loading (:func:`load_flow`) first checks the data alone, without running any
routine's code, into a :class:`FlowSpec`; then builds the routines whose
entries are sound and checks the connections against the slots and events
they declare. Every problem of both steps is reported together, each once,
as a :class:`~flowforge.Problem` with its place in the file; a
:class:`~flowforge.Flow` fills itself from the result only when there is none.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._checks import check_flow_id, check_int, check_name
from ._middleware import dump as dump_middleware
from ._middleware import load_all as load_middleware
from .connection import check_mapping
from .error_handler import ErrorHandler, ErrorStrategy
from .errors import DefinitionError, Problem, SerializationError, quoted
from .routine import Policy, Routine
from .runtime.executors import create_executor, executor_kinds
from .serialization import (
    _import_allowed,
    allowed_modules,
    check_shape,
    converter,
    failure,
    import_path,
    imported,
    problems_of,
    resolve,
)
from .task import Task, dependency_wire, tasks_of

if TYPE_CHECKING:
    from .flow import Flow

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
    middleware: Any = attrs.field(factory=list)  # checked by _middleware.load_all
    #: Per slot: at most this many undelivered messages wait for it in a job.
    capacity: dict[str, int] = attrs.field(factory=dict)


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
    middleware: Any = attrs.field(factory=list)  # checked by _middleware.load_all


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
    middleware: Any = attrs.field(factory=list)  # checked by _middleware.load_all


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
    RoutineDoc,
    make_dict_unstructure_fn(
        RoutineDoc,
        converter,
        class_=override(rename="class"),
        middleware=override(omit_if_default=True),
        capacity=override(omit_if_default=True),
    ),
)
converter.register_structure_hook(
    TaskDoc, make_dict_structure_fn(TaskDoc, converter, _cattrs_forbid_extra_keys=True)
)
converter.register_unstructure_hook(
    TaskDoc,
    make_dict_unstructure_fn(TaskDoc, converter, middleware=override(omit_if_default=True)),
)


# -- writing -------------------------------------------------------------------


def dump_flow(flow: Flow) -> dict[str, Any]:
    """The flow as plain data.

    Raises:
        SerializationError: a middleware or a task's function has no import
            path (a lambda or a closure); the message says where it is used.
    """
    tasks = tasks_of(flow.routines)
    doc = FlowDoc(
        flow_id=flow.flow_id,
        routines={
            rid: _routine_doc(rid, r) for rid, r in flow.routines.items() if rid not in tasks
        },
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
        middleware=_middleware_docs(flow.middleware, "flow.middleware"),
    )
    data: dict[str, Any] = converter.unstructure(doc)
    if not tasks:
        del data["tasks"]
    if not data["middleware"]:
        del data["middleware"]
    return {"format": data.pop("format"), "version": data.pop("version"), **data}


def _middleware_docs(middleware: tuple[Any, ...], where: str) -> list[Any]:
    return [dump_middleware(mw, f"{where}[{i}]") for i, mw in enumerate(middleware)]


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
        _middleware_docs(task.middleware, f"flow.tasks.{task.name}.middleware"),
    )


def _routine_doc(rid: str, routine: Routine) -> RoutineDoc:
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
        _middleware_docs(routine.middleware, f"flow.routines.{rid}.middleware"),
        {name: s.capacity for name, s in routine.slots.items() if s.capacity is not None},
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


@attrs.frozen
class RoutineSpec:
    """A routine of a checked flow file: its class and what to set on it."""

    cls: type[Routine]
    config: dict[str, Any]
    stats: dict[str, Any]
    policy: Policy
    middleware: tuple[Any, ...] = ()
    capacity: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class WireSpec:
    """A connection of a checked flow file, and its place in the file."""

    where: str
    source: str
    event: str
    target: str
    slot: str
    mapping: dict[str, str] | None


@attrs.frozen
class TaskSpec:
    """A task of a checked flow file: its function and options (see :meth:`Flow.task`)."""

    fn: Callable[..., Any]
    depends_on: tuple[str, ...]
    retries: int
    retry_delay: float
    retry_backoff: float
    timeout: float | None
    max_concurrency: int
    error_strategy: ErrorStrategy | None
    middleware: tuple[Any, ...] = ()


@attrs.frozen
class FlowSpec:
    """A checked flow file as plain values: what a :class:`Flow` is built from.

    Only the parts without problems are in it; the problems are listed apart.
    """

    flow_id: str | None
    executor: ExecutorDoc
    error_handler: ErrorHandler | None
    retention: int
    max_activations: int | None
    entry: dict[str, Any] | None
    routines: dict[str, RoutineSpec]
    wires: list[WireSpec]
    tasks: dict[str, TaskSpec] = attrs.field(factory=dict)
    middleware: tuple[Any, ...] = ()


@attrs.frozen
class LoadedFlow:
    """A flow file checked whole, its routines built: ready to fill a Flow."""

    spec: FlowSpec
    routines: dict[str, Routine]
    executor: Any
    #: The tasks, made but not yet added (adding one wires its dependencies).
    tasks: dict[str, Task] = attrs.field(factory=dict)


def load_flow(data: Any, allowed: tuple[str, ...]) -> LoadedFlow:
    """Check ``data`` whole, then build its routines; nothing else is touched.

    First the data alone is checked (structure, types, numbers, names,
    classes, which routines the connections and the entry name), without
    running any routine's code. Then the routines whose entries are sound
    are built, and the connections checked against the slots and events
    they declare. Every problem of both steps is raised together.

    Raises:
        SerializationError: its ``problems`` list every problem found.
    """
    spec, problems = check_flow(data, allowed)
    routines = {rid: _build_routine(rid, r, problems) for rid, r in spec.routines.items()}
    built: dict[str, Routine] = {rid: r for rid, r in routines.items() if r is not None}
    tasks = {name: t for name, ts in spec.tasks.items() if (t := _make_task(name, ts, problems))}
    built.update(tasks)
    for wire in spec.wires:
        _check_wire(wire, built, problems)
    _check_entry_slot(spec.entry, built, problems)
    executor = _executor(spec.executor, problems) if not problems else None
    if problems:
        raise SerializationError.of(sorted(problems, key=_file_order))
    routines_only = {rid: r for rid, r in built.items() if rid not in tasks}
    return LoadedFlow(spec, routines_only, executor, tasks)


def _file_order(problem: Problem) -> tuple[int, int]:
    """Problems in the order of the file's sections: header, routines, tasks, connections,
    entry."""
    where = problem.where
    if where.startswith("flow.tasks"):
        return 1, 1
    if where.startswith("flow.connections["):
        return 2, int(where[len("flow.connections[") :].partition("]")[0])
    if where.startswith("flow.connections"):
        return 2, -1
    if where.startswith("flow.routines"):
        return 1, 0
    if where.startswith("flow.entry"):
        return 3, 0
    return 0, 0


def check_flow(data: Any, allowed: tuple[str, ...]) -> tuple[FlowSpec, list[Problem]]:
    """The flow file's data checked without running user code: ``(spec, problems)``.

    Raises:
        SerializationError: at once when the data is not a flow file at all
            (not a mapping, another format or a newer version) or is too
            large or deep to look at.
    """
    if not isinstance(data, Mapping):
        raise failure(
            "flow",
            f"a flow file must be a mapping with 'routines' and 'connections', got "
            f"{type(data).__name__}.",
        )
    check_shape(dict(data), "flow")
    header = dict(data)
    raw_routines = header.pop("routines", None)
    raw_connections = header.pop("connections", [])
    raw_tasks = header.pop("tasks", {})
    if raw_routines is None and raw_tasks:
        raw_routines = {}
    _check_format(header.get("format", FORMAT), header.get("version", VERSION))
    doc, problems = problems_of({**header, "routines": {}}, FlowDoc, "flow")
    doc = doc or FlowDoc(routines={})  # the header's problems are listed; check the rest too
    flow_id = _checked(
        lambda: None if doc.flow_id is None else check_flow_id(doc.flow_id),
        "flow.flow_id",
        problems,
    )
    retention = _checked(
        lambda: check_int(doc.retention, "retention", minimum=1), "flow.retention", problems
    )
    max_activations = _checked(
        lambda: check_int(doc.max_activations, "max_activations", minimum=1, optional=True),
        "flow.max_activations",
        problems,
    )
    executor = _checked_executor(doc.executor, problems)
    handler = _handler(doc.error_handler, "flow.error_handler", allowed, problems)
    ids = _routine_ids(raw_routines, problems)
    routines = {
        rid: found
        for rid, entry in ids.items()
        if (found := _routine_spec(rid, entry, allowed, problems)) is not None
    }
    tasks = _task_specs(raw_tasks, ids, allowed, problems)
    names = {**ids, **dict.fromkeys(tasks)}
    wires = _wires(raw_connections, names, problems)
    spec = FlowSpec(
        flow_id=flow_id,
        executor=executor,
        error_handler=handler,
        retention=retention or 1,
        max_activations=max_activations,
        entry=_entry(doc.entry, names, problems),
        routines=routines,
        wires=wires,
        tasks=tasks,
        middleware=load_middleware(doc.middleware, "flow.middleware", allowed, problems),
    )
    return spec, problems


def _checked(check: Callable[[], Any], where: str, problems: list[Problem]) -> Any:
    try:
        return check()
    except (TypeError, ValueError) as exc:
        problems.append(Problem("error", where, str(exc), ""))
        return None


def _check_format(kind: Any, version: Any) -> None:
    if kind != FORMAT:
        raise failure(
            "flow.format",
            f"expected {FORMAT!r}, got {kind!r}; this is not a flow file.",
        )
    if isinstance(version, int) and version > VERSION:
        raise failure(
            "flow.version",
            f"this file is version {version}, newer than this FlowForge reads ({VERSION}).",
            "Upgrade FlowForge.",
        )


def _routine_ids(raw: Any, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        what = "required field missing" if raw is None else f"got {type(raw).__name__}"
        problems.append(
            Problem(
                "error",
                "flow.routines",
                f"expected a mapping of routine ids to routines; {what}.",
                "Write routines: {my_id: {class: 'package.module:ClassName'}}.",
            )
        )
        return {}
    ids: dict[str, Any] = {}
    for rid, entry in raw.items():
        if _checked(partial(check_name, rid, "Routine id"), f"flow.routines.{rid}", problems):
            ids[rid] = entry
    return ids


def _routine_spec(
    rid: str, entry: Any, allowed: tuple[str, ...], problems: list[Problem]
) -> RoutineSpec | None:
    where = f"flow.routines.{rid}"
    doc, found = problems_of(entry, RoutineDoc, where)
    problems += found
    if doc is None:
        return None
    cls = None
    try:
        cls = resolve(doc.class_, Routine, f"{where}.class", allowed)
    except SerializationError as exc:
        problems += exc.problems
    policy = _policy(doc.policy, f"{where}.policy", allowed, problems)
    middleware = load_middleware(doc.middleware, f"{where}.middleware", allowed, problems)
    if cls is None:
        return None
    # A bad policy is listed; the routine is still built to check its wires.
    return RoutineSpec(
        cls, dict(doc.config), dict(doc.stats), policy or Policy(), middleware, dict(doc.capacity)
    )


def _policy(
    doc: PolicyDoc, where: str, allowed: tuple[str, ...], problems: list[Problem]
) -> Policy | None:
    before = len(problems)
    handler = _handler(doc.error_handler, f"{where}.error_handler", allowed, problems)
    policy = _checked(
        lambda: Policy(doc.max_concurrency, doc.timeout, doc.max_activations, handler),
        where,
        problems,
    )
    return policy if len(problems) == before else None


def _handler(
    doc: ErrorHandlerDoc | None, where: str, allowed: tuple[str, ...], problems: list[Problem]
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
            problems += exc.problems
    handler: ErrorHandler | None = _checked(
        lambda: ErrorHandler(
            doc.strategy,
            doc.max_retries,
            doc.retry_delay,
            doc.retry_backoff,
            tuple(types) or (Exception,),
        ),
        where,
        problems,
    )
    return handler


def _wires(raw: Any, ids: Mapping[str, Any], problems: list[Problem]) -> list[WireSpec]:
    if not isinstance(raw, list):
        problems.append(
            Problem("error", "flow.connections", f"expected a list, got {type(raw).__name__}.", "")
        )
        return []
    wires: list[WireSpec] = []
    seen: dict[tuple[str, str, str], str] = {}
    for i, entry in enumerate(raw):
        where = f"flow.connections[{i}]"
        doc, found = problems_of(entry, ConnectionDoc, where)
        problems += found
        wire = None if doc is None else _wire(doc, where, ids, problems)
        if wire is None:
            continue
        key = (doc.from_, doc.to, repr(sorted((doc.mapping or {}).items())))  # type: ignore[union-attr]
        if key in seen:
            problems.append(
                Problem(
                    "error",
                    where,
                    f"repeats {seen[key]} ({doc.from_} -> {doc.to}); every delivery "  # type: ignore[union-attr]
                    "would arrive twice.",
                    "Remove one of them.",
                )
            )
            continue
        seen[key] = where
        wires.append(wire)
    return wires


def _wire(
    doc: ConnectionDoc, where: str, ids: Mapping[str, Any], problems: list[Problem]
) -> WireSpec | None:
    source, _, event = doc.from_.partition(".")
    target, _, slot = doc.to.partition(".")
    if not (source and event and target and slot):
        problems.append(
            Problem(
                "error",
                where,
                f"expected 'source.event' and 'target.slot', got {doc.from_!r} -> {doc.to!r}.",
                "Write 'routine.event -> routine.slot'.",
            )
        )
        return None
    unknown = [rid for rid in dict.fromkeys((source, target)) if rid not in ids]
    for rid in unknown:
        problems.append(
            Problem(
                "error",
                where,
                f"unknown routine '{rid}' ({doc.from_} -> {doc.to}).",
                f"The routines are: {quoted(ids)}.",
            )
        )
    return None if unknown else WireSpec(where, source, event, target, slot, doc.mapping)


def _entry(
    doc: EntryDoc | None, ids: Mapping[str, Any], problems: list[Problem]
) -> dict[str, Any] | None:
    if doc is None:
        return None
    if doc.routine not in ids and ids:
        problems.append(
            Problem(
                "error",
                "flow.entry.routine",
                f"unknown routine '{doc.routine}'.",
                f"The routines are: {quoted(ids)}.",
            )
        )
    return {"routine_id": doc.routine, "slot": doc.slot, "params": dict(doc.params)}


def _checked_executor(doc: ExecutorDoc, problems: list[Problem]) -> ExecutorDoc:
    known = executor_kinds()
    if doc.kind not in known:
        problems.append(
            Problem(
                "error",
                "flow.executor.kind",
                f"expected one of {quoted(known)}, got {doc.kind!r}.",
                "",
            )
        )
    _checked(
        lambda: check_int(doc.max_workers, "max_workers", minimum=1, optional=True),
        "flow.executor.max_workers",
        problems,
    )
    return doc


def _executor(doc: ExecutorDoc, problems: list[Problem]) -> Any:
    try:
        return create_executor(doc.kind, max_workers=doc.max_workers, address=doc.address)
    except (ImportError, ValueError) as exc:
        problems.append(Problem("error", "flow.executor", str(exc), ""))
        return None


def _build_routine(rid: str, spec: RoutineSpec, problems: list[Problem]) -> Routine | None:
    where = f"flow.routines.{rid}.class"
    try:
        routine = spec.cls()
    except Exception as exc:
        problems.append(
            Problem(
                "error",
                where,
                f"{import_path(spec.cls)}() raised {type(exc).__name__}: {exc}.",
                "A saved routine must be constructible with no arguments.",
            )
        )
        return None
    if not hasattr(routine, "_slots"):
        problems.append(
            Problem(
                "error",
                where,
                f"{import_path(spec.cls)}.__init__ did not call super().__init__().",
                "Add super().__init__() as its first line.",
            )
        )
        return None
    routine.set_config(**spec.config)
    routine._own_stats = dict(spec.stats)
    routine._policy = spec.policy
    for mw in spec.middleware:
        routine.use(mw)
    return routine if _set_capacities(rid, routine, spec.capacity, problems) else None


def _set_capacities(
    rid: str, routine: Routine, capacities: dict[str, int], problems: list[Problem]
) -> bool:
    """Set each slot's capacity from the file (it wins over the routine's own)."""
    ok = True
    for name, value in capacities.items():
        where = f"flow.routines.{rid}.capacity.{name}"
        slot = routine.slots.get(name)
        if slot is None:
            problems.append(
                Problem(
                    "error",
                    where,
                    f"routine '{rid}' has no slot '{name}'.",
                    f"Its slots are: {quoted(routine.slots)}.",
                )
            )
            ok = False
            continue
        try:
            slot.capacity = value
        except DefinitionError as exc:
            problems.append(Problem("error", where, str(exc), "Write an int >= 1."))
            ok = False
    return ok


def _check_wire(wire: WireSpec, built: Mapping[str, Routine], problems: list[Problem]) -> None:
    label = f"Cannot connect '{wire.source}' -> '{wire.target}'"
    source, target = built.get(wire.source), built.get(wire.target)
    found = [
        _find(kind, f"{label}: '{rid}'", name, table, wire.where, problems)
        for kind, rid, name, table in (
            ("event", wire.source, wire.event, None if source is None else source.events),
            ("slot", wire.target, wire.slot, None if target is None else target.slots),
        )
    ]
    if all(end is not None for end in found):
        try:
            check_mapping(found[0], found[1], wire.mapping)
        except ValueError as exc:
            problems.append(Problem("error", wire.where, str(exc), ""))


def _find(
    kind: str,
    owner: str,
    name: str,
    table: Mapping[str, Any] | None,
    where: str,
    problems: list[Problem],
) -> Any:
    if table is None:
        return None  # the routine could not be built; its own problem is listed
    if name not in table:
        problems.append(
            Problem(
                "error",
                where,
                f"{owner} has no {kind} '{name}'.",
                f"Its {kind}s are: {quoted(table)}.",
            )
        )
        return None
    return table[name]


def _check_entry_slot(
    entry: dict[str, Any] | None, built: Mapping[str, Routine], problems: list[Problem]
) -> None:
    if entry is None or entry["slot"] is None or entry["routine_id"] not in built:
        return
    routine = built[entry["routine_id"]]
    if entry["slot"] not in routine.slots:
        problems.append(
            Problem(
                "error",
                "flow.entry.slot",
                f"routine '{entry['routine_id']}' has no slot '{entry['slot']}'.",
                f"Its slots are: {quoted(routine.slots)}.",
            )
        )


# -- tasks ---------------------------------------------------------------------


def _task_specs(
    raw: Any, ids: Mapping[str, Any], allowed: tuple[str, ...], problems: list[Problem]
) -> dict[str, TaskSpec]:
    """The ``tasks`` section checked as data: names, options, functions, dependencies."""
    if not isinstance(raw, Mapping):
        problems.append(
            Problem(
                "error",
                "flow.tasks",
                f"expected a mapping of task names to tasks, got {type(raw).__name__}.",
                "Write tasks: {my_task: {function: 'package.module:function'}}.",
            )
        )
        return {}
    specs: dict[str, TaskSpec] = {}
    for name, entry in raw.items():
        where = f"flow.tasks.{name}"
        if not _checked(partial(check_name, name, "Task name"), where, problems):
            continue
        if name in ids:
            problems.append(
                Problem("error", where, f"'{name}' is also a routine id.", "Rename one of them.")
            )
            continue
        spec = _task_spec(entry, where, allowed, problems)
        if spec is not None:
            specs[name] = spec
    _check_dependencies(raw, specs, ids, problems)
    return specs


def _task_spec(
    entry: Any, where: str, allowed: tuple[str, ...], problems: list[Problem]
) -> TaskSpec | None:
    doc, found = problems_of(entry, TaskDoc, where)
    problems += found
    if doc is None:
        return None
    middleware = load_middleware(doc.middleware, f"{where}.middleware", allowed, problems)
    try:
        fn = _function(doc.function, f"{where}.function", allowed)
    except SerializationError as exc:
        problems += exc.problems
        return None
    return TaskSpec(
        fn,
        tuple(doc.depends_on),
        doc.retries,
        doc.retry_delay,
        doc.retry_backoff,
        doc.timeout,
        doc.max_concurrency,
        doc.error_strategy,
        middleware,
    )


def _check_dependencies(
    raw: Mapping[str, Any],
    specs: Mapping[str, TaskSpec],
    ids: Mapping[str, Any],
    problems: list[Problem],
) -> None:
    graph: dict[str, tuple[str, ...]] = {}
    for name, spec in specs.items():
        where = f"flow.tasks.{name}.depends_on"
        for dep in spec.depends_on:
            if dep in ids:
                problems.append(
                    Problem(
                        "error",
                        where,
                        f"'{dep}' is a routine, not a task; a task depends on tasks only.",
                        "Connect the routine to the task's 'input' slot instead.",
                    )
                )
            elif dep not in raw:
                problems.append(
                    Problem(
                        "error", where, f"unknown task '{dep}'.", f"The tasks are: {quoted(raw)}."
                    )
                )
        graph[name] = tuple(d for d in spec.depends_on if d in specs)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        order = {name: i for i, name in enumerate(specs)}
        cycle = list(reversed(exc.args[1]))[:-1]
        first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
        cycle = cycle[first:] + cycle[:first]
        problems.append(
            Problem(
                "error",
                f"flow.tasks.{max(cycle, key=order.__getitem__)}",  # the task closing it
                f"its dependencies close a cycle: {' -> '.join([*cycle, cycle[0]])}.",
                "Remove one of these dependencies.",
            )
        )


def _function(path: Any, where: str, allowed: tuple[str, ...]) -> Callable[..., Any]:
    module_name, _, qualname = path.partition(":") if isinstance(path, str) else ("", "", "")
    if not module_name or not qualname:
        raise failure(
            where,
            f"expected an import path 'package.module:function', got {path!r}.",
            "Write the module, a colon, then the function, e.g. 'myapp.tasks:summary'.",
        )
    obj: Any = imported(module_name) or _import_allowed(
        module_name, where, {*allowed, *allowed_modules()}
    )
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, Task):
        return obj.fn
    if not callable(obj) or isinstance(obj, type):
        raise failure(
            where,
            f"{path!r} does not name a function (found {obj!r:.60}).",
            f"Name a module-level function defined in '{module_name}'.",
        )
    fn: Callable[..., Any] = obj
    return fn


def _make_task(name: str, spec: TaskSpec, problems: list[Problem]) -> Task | None:
    try:
        task = Task(
            spec.fn,
            name=name,
            depends_on=spec.depends_on,
            retries=spec.retries,
            retry_delay=spec.retry_delay,
            retry_backoff=spec.retry_backoff,
            timeout=spec.timeout,
            max_concurrency=spec.max_concurrency,
            error_strategy=spec.error_strategy,
        )
    except (TypeError, ValueError) as exc:
        problems.append(Problem("error", f"flow.tasks.{name}", str(exc), ""))
        return None
    for mw in spec.middleware:
        task.use(mw)
    return task
