"""Tasks: plain functions that run once per job, after their dependencies.

:meth:`Flow.task <flowforge.Flow.task>` turns a function into a
:class:`Task`, a :class:`~flowforge.Routine` with one slot, ``input``, and
one event, ``done(result)``. Declaring ``depends_on=[extract]`` wires
``extract.done -> clean.input`` with the result renamed to ``extract``, so
the dependency's return value arrives under its name.

How a task gets its arguments
    ``input`` is a join over the task's sources: every connection arriving
    at it (dependencies, and any routine event wired in) plus the job's
    params. When a job starts, every task receives one message holding the
    job's params (:data:`PARAMS_SOURCE`); a task without dependencies (a
    root) therefore starts at once. When every source has delivered, the
    join fires once, on the scheduler's side, with the dependencies' data
    first and the job params filling only the names still free. The call's
    data is thus complete before it is sent anywhere, so tasks see their
    params on every executor, in this process or another. After firing the
    join is *closed*: later deliveries are dropped, so a task runs at most
    once per job.

What becomes of a task
    Its status and result live in the job's
    :class:`~flowforge.JobState` (``job.task_status(name)``,
    ``job.output(name)``). ``raise Skip(reason)`` ends a task ``skipped``;
    a task that failed under STOP ends ``failed`` and tasks that never
    started end ``cancelled``; under CONTINUE its dependents are skipped.
    The scheduler side of this lives in :mod:`flowforge.runtime.tasks`.

Dependency cycles are found here (:func:`task_cycles`) and reported by
``validate()``, ``execute()`` and ``@flow.task`` itself.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._activation import CURRENT
from .error_handler import ErrorHandler, ErrorStrategy
from .errors import DefinitionError, FlowForgeError, UnstorableDataError, quoted
from .routine import Routine
from .slot import Slot, combine_round
from .validation import Problem

if TYPE_CHECKING:
    from .connection import Connection
    from .flow import Flow

#: The source key of the job-params message every task receives when a job starts.
PARAMS_SOURCE = "(job params)"
#: The private emit a skipped call leaves for the scheduler (never routed).
SKIPPED = "#skipped"
#: The merge state of a task's input once it has fired or been settled.
CLOSED: dict[str, Any] = {"#closed": True}
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Skip(FlowForgeError):
    """Raise in a task to end it ``skipped``; its dependents are skipped too.

    Args:
        reason: Why, in words (kept in the job's skipped work).

    Example:
        >>> from flowforge import Skip
        >>> Skip("nothing to load").reason
        'nothing to load'
    """

    def __init__(self, reason: str = "skipped") -> None:
        super().__init__(reason)
        self.reason = reason


class TaskResultError(UnstorableDataError):
    """A task returned a result the job's store cannot keep.

    The store's check of what a call emits finds it (the result is the
    task's ``done`` event), so the task fails and the job stops ``failed``
    at it, as for any :class:`~flowforge.errors.UnstorableDataError`.

    Attributes:
        task: The task's name.
    """

    def __init__(self, message: str, *, task: str) -> None:
        super().__init__(message, routine_id=task, event="done")
        self.task = task


@attrs.frozen
class RetryThen(ErrorHandler):
    """A task's retries, then ``then`` once they are used up.

    ``then=None`` stands for the flow's strategy; a job's plan fills it in
    (:func:`flowforge.runtime.tasks.task_handlers`), and STOP applies until then.
    """

    then: ErrorStrategy | None = attrs.field(
        default=None, converter=attrs.converters.optional(ErrorStrategy)
    )

    def final_strategy(self, error: BaseException) -> ErrorStrategy:
        """``then`` once no retry is left."""
        if self.strategy is not ErrorStrategy.RETRY:
            return self.strategy
        return self.then or ErrorStrategy.STOP


class TaskInput(Slot):
    """A task's ``input``: a join over its sources and the job params, firing once."""

    __slots__ = ()

    def __init__(self, routine: Task, handler: Callable[..., Any]) -> None:
        super().__init__("input", routine, handler, "join")
        self.merge = merge_task
        self.plain = False

    @property
    def is_join(self) -> bool:
        """False: the task layer settles a task's input, not the engine's join rules."""
        return False


def merge_task(
    state: Any, data: dict[str, Any], source: str | None, sources: Collection[str]
) -> tuple[dict[str, Any] | None, Any]:
    """Queue ``data`` under its source; fire once, when every source and the params came.

    As :func:`~flowforge.slot.merge_join`: a delivery that cannot complete the
    input adds to ``state`` in place; the one that may complete it works on a copy.
    """
    if state is not None and state.get("#closed"):
        return None, state
    key = PARAMS_SOURCE if source is None or source not in sources else source
    queues: dict[str, list[dict[str, Any]]] = {} if state is None else state
    queue = queues.get(key)
    if len(queues) + (queue is None) <= len(sources):  # a queue per source and the params
        if queue is None:
            queues[key] = [data]
        else:
            queue.append(data)
        return None, queues
    queues = {k: list(v) for k, v in queues.items()}
    queues.setdefault(key, []).append(data)
    combined = combine_round([queues[s][0] for s in sources])
    for name, value in queues[PARAMS_SOURCE][0].items():
        combined.setdefault(name, value)
    return combined, dict(CLOSED)


class Task(Routine):
    """A function run once per job, after its dependencies; see the module docs.

    Made by :meth:`Flow.task <flowforge.Flow.task>`. Calling a task calls
    the plain function, so it can be unit-tested without a flow.

    Attributes:
        fn: The function.
        name: The task's name (its routine id in the flow).
        depends_on: The names of the tasks it depends on.
        retries: How many more attempts after a failed first one.
        error_strategy: What a failure does once retries are used up
            (``None``: the flow's error handler decides).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        depends_on: Iterable[Task | str] = (),
        retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        timeout: float | None = None,
        max_concurrency: int = 1,
        error_strategy: ErrorStrategy | str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@flow.task decorates a function, got {fn!r}.")
        super().__init__()
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        self.depends_on: tuple[str, ...] = _dependency_names(self.name, depends_on)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise DefinitionError(
                f"Task '{self.name}': retries must be an int >= 0, got {retries!r}."
            )
        self.retries = retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.error_strategy = None if error_strategy is None else ErrorStrategy(error_strategy)
        self._names, self._defaults, self._var_kw = _signature(fn)
        handler = self._run_async if inspect.iscoroutinefunction(fn) else self._run
        self._slots["input"] = TaskInput(self, handler)
        self.define_event("done", ["result"])
        self.set_policy(
            max_concurrency=max_concurrency, timeout=timeout, error_handler=self._error_handler()
        )
        functools.update_wrapper(self, fn, updated=())

    def _error_handler(self) -> ErrorHandler | None:
        if self.retries:
            return RetryThen(
                ErrorStrategy.RETRY,
                self.retries,
                self.retry_delay,
                self.retry_backoff,
                then=self.error_strategy,
            )
        return None if self.error_strategy is None else ErrorHandler(self.error_strategy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the plain function."""
        return self.fn(*args, **kwargs)

    def _run(self, **data: Any) -> None:
        try:
            result = self.fn(**self._arguments(data))
        except Skip as skip:
            self._skipped(skip.reason)
            return
        self.emit("done", result=result)

    async def _run_async(self, **data: Any) -> None:
        try:
            result = await self.fn(**self._arguments(data))
        except Skip as skip:
            self._skipped(skip.reason)
            return
        self.emit("done", result=result)

    def _arguments(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if self._var_kw:
            return dict(data)
        return {name: data[name] for name in self._names if name in data}

    def _skipped(self, reason: str) -> None:
        ctx = CURRENT.get()
        if ctx is not None and ctx.routine is self:
            ctx.emits.append((SKIPPED, {"reason": reason}))

    def needed_params(self) -> list[str]:
        """The function's parameters that neither a source nor a default fills."""
        filled = set(self._defaults)
        for connection in self._slots["input"].connections:
            params = connection.event.params
            if params is None:  # an event that may carry anything: it may fill anything
                return []
            mapping = connection.param_mapping or {}
            filled.update(mapping.get(p, p) for p in params)
        return [name for name in self._names if name not in filled]

    def __getstate__(self) -> dict[str, Any]:
        # A function decorated at module level is shadowed there by its Task, so
        # pickle cannot find it by name; ship its name and look it up again.
        state = super().__getstate__()
        module, qualname = getattr(self.fn, "__module__", ""), getattr(self.fn, "__qualname__", "")
        found = _module_attribute(module, qualname) if module and qualname else None
        if isinstance(found, Task) and found.fn is self.fn:
            state["fn"] = state["__wrapped__"] = _ShadowedFunction(module, qualname)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["fn"], _ShadowedFunction):
            state["fn"] = state["__wrapped__"] = state["fn"].resolve()
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


@attrs.frozen
class _ShadowedFunction:
    """A task's function named by module and qualified name, for pickling."""

    module: str
    qualname: str

    def resolve(self) -> Callable[..., Any]:
        found = _module_attribute(self.module, self.qualname, load=True)
        fn: Callable[..., Any] = found.fn if isinstance(found, Task) else found
        return fn


def _module_attribute(module: str, qualname: str, load: bool = False) -> Any:
    obj: Any = importlib.import_module(module) if load else sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _dependency_names(name: str, depends_on: Iterable[Task | str]) -> tuple[str, ...]:
    if isinstance(depends_on, (str, Task)):
        depends_on = [depends_on]
    names = []
    for dep in depends_on:
        if isinstance(dep, Task):
            names.append(dep.name)
        elif isinstance(dep, str) and dep:
            names.append(dep)
        else:
            raise DefinitionError(
                f"Task '{name}': depends_on takes tasks or task names, got {dep!r}."
            )
    if name in names:
        raise DefinitionError(
            f"Task '{name}' depends on itself: {name} -> {name}. Remove it from depends_on."
        )
    return tuple(dict.fromkeys(names))


def _signature(fn: Callable[..., Any]) -> tuple[list[str], list[str], bool]:
    params = inspect.signature(fn).parameters.values()
    names = [p.name for p in params if p.kind in _NAMED]
    defaults = [p.name for p in params if p.kind in _NAMED and p.default is not p.empty]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return names, defaults, var_kw


# -- the flow's tasks --------------------------------------------------------


def tasks_of(routines: Mapping[str, Routine]) -> dict[str, Task]:
    """The tasks among a flow's routines, by id, in the order added."""
    return {rid: r for rid, r in routines.items() if isinstance(r, Task)}


def dependency_wire(connection: Connection) -> bool:
    """True for a connection made by ``depends_on`` (``dep.done -> task.input``)."""
    target, source = connection.slot.routine, connection.event.routine
    return (
        isinstance(target, Task)
        and isinstance(source, Task)
        and connection.event.name == "done"
        and source.name in target.depends_on
        and connection.param_mapping == {"result": source.name}
    )


def wire_task(routines: Mapping[str, Routine], task: Task) -> list[tuple[str, str]]:
    """The dependency wires adding ``task`` makes now: ``(dependency, dependent)`` pairs.

    Raises:
        DefinitionError: a dependency names a routine that is not a task.
    """
    wires = []
    for dep in task.depends_on:
        found = routines.get(dep)
        if found is None:
            continue  # defined later: wired when it is added
        if not isinstance(found, Task):
            raise DefinitionError(
                f"Task '{task.name}' depends on '{dep}', which is a {type(found).__name__}, not "
                f"a task. Wire its event instead: flow.connect('{dep}', <event>, "
                f"'{task.name}', 'input')."
            )
        wires.append((dep, task.name))
    for rid, other in routines.items():
        if isinstance(other, Task) and task.name in other.depends_on:
            wires.append((task.name, rid))
    return wires


def task_cycles(
    routines: Mapping[str, Routine],
    connections: Iterable[Connection],
    extra: Iterable[tuple[str, str]] = (),
) -> list[list[str]]:
    """Dependency cycles that pass through a task, each as ``[a, b, ..., a]``.

    Loops of plain routines (a guarded loop) are not cycles here; a loop
    through a task's input is, since a task waits for all its sources. Takes
    time linear in the size of the graph when there is no cycle.
    """
    graph: dict[str, list[str]] = {rid: [] for rid in routines}
    ids = {id(r): rid for rid, r in routines.items()}
    edges = [(ids[id(c.event.routine)], ids[id(c.slot.routine)]) for c in connections]
    for source, target in [*edges, *extra]:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    looping = _on_cycles(graph)
    cycles: list[list[str]] = []
    covered: set[str] = set()
    for start in graph:
        is_task = isinstance(routines.get(start), Task) or start not in routines
        if start in looping and is_task and start not in covered:
            path = _path_back(graph, start)
            if path is not None:
                cycles.append(path)
                covered.update(path)
    return cycles


def _on_cycles(graph: Mapping[str, list[str]]) -> set[str]:
    """The nodes left once those with no way in (or out) are stripped repeatedly."""
    remaining = set(graph)
    for forward in (True, False):
        degree = dict.fromkeys(remaining, 0)
        outgoing: dict[str, list[str]] = {node: [] for node in remaining}
        for source in remaining:
            for target in graph[source]:
                if target in remaining:
                    a, b = (source, target) if forward else (target, source)
                    degree[b] += 1
                    outgoing[a].append(b)
        ready = [node for node, d in degree.items() if d == 0]
        while ready:
            node = ready.pop()
            remaining.discard(node)
            for nxt in outgoing[node]:
                degree[nxt] -= 1
                if degree[nxt] == 0:
                    ready.append(nxt)
    return remaining


def _path_back(graph: Mapping[str, list[str]], start: str) -> list[str] | None:
    """The shortest path ``start -> ... -> start``, or None."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for target in graph[node]:
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if target not in parents:
                    parents[target] = node
                    nxt.append(target)
        frontier = nxt
    return None


def cycle_text(cycle: Sequence[str]) -> str:
    """``extract -> clean -> extract``."""
    return " -> ".join(cycle)


def unknown_dependencies(routines: Mapping[str, Routine]) -> list[tuple[str, str]]:
    """``(task, dependency)`` for each ``depends_on`` name the flow does not have."""
    return [
        (rid, dep)
        for rid, task in tasks_of(routines).items()
        for dep in task.depends_on
        if dep not in routines
    ]


def task_problems(
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    params: Mapping[str, Any] | None,
) -> list[Problem]:
    """The tasks' problems for ``validate()``: cycles, unknown dependencies, params to give."""
    problems = [
        Problem(
            "error",
            cycle[0],
            f"dependency cycle: {cycle_text(cycle)}; none of these tasks can ever run.",
            "Remove one of the dependencies (depends_on or a connection) to break the cycle.",
        )
        for cycle in task_cycles(routines, connections)
    ]
    problems += [
        Problem(
            "error",
            f"{rid}.input",
            f"task '{rid}' depends on '{dep}', which is not in the flow.",
            f"Define a task named '{dep}' in this flow, or remove it from depends_on.",
        )
        for rid, dep in unknown_dependencies(routines)
    ]
    given = set(params or ())
    for rid, task in tasks_of(routines).items():
        needed = [p for p in task.needed_params() if p not in given]
        if needed:
            problems.append(
                Problem(
                    "warning",
                    f"{rid}.input",
                    f"task '{rid}' needs job param(s) {quoted(needed)}: no dependency or "
                    "default fills them.",
                    f"Pass them when running: flow.execute(entry_params={{{needed[0]!r}: ...}}).",
                )
            )
    return problems


def add_task(flow: Flow, task: Task) -> Task:
    """Add ``task`` to ``flow`` and wire its dependencies (both ways); returns it.

    Raises:
        DefinitionError: the task would close a dependency cycle, or depends
            on a routine that is not a task.
    """
    wires = wire_task(flow.routines, task)
    cycle = _closed_cycle(flow.routines, task.name, wires)
    if cycle is not None:
        raise DefinitionError(
            f"Task '{task.name}' closes a dependency cycle: {cycle_text(cycle)}. Remove one "
            "of these dependencies."
        )
    flow.add_routine(task, task.name)
    for source, target in wires:
        flow.connect(source, "done", target, "input", {"result": source})
    return task


def _closed_cycle(
    routines: Mapping[str, Routine], name: str, wires: list[tuple[str, str]]
) -> list[str] | None:
    """The cycle that adding task ``name`` with ``wires`` would close, or None.

    Only a path from a task waiting for ``name`` back to one of its
    dependencies can close one, so only that is searched (usually nothing:
    dependencies are mostly defined first).
    """
    deps = {source for source, target in wires if target == name}
    parents = {target: name for source, target in wires if source == name}
    frontier = list(parents)
    while frontier and deps:
        node = frontier.pop(0)
        if node in deps:
            path = [node]
            while path[-1] != name:
                path.append(parents[path[-1]])
            order = {rid: i for i, rid in enumerate(routines)}
            cycle = path[::-1]  # name -> ... -> node
            first = min(range(len(cycle)), key=lambda i: order.get(cycle[i], len(order)))
            cycle = cycle[first:] + cycle[:first]
            return [*cycle, cycle[0]]
        for event in routines[node]._events.values():
            for connection in event._connections:
                target = connection.target_id
                if target not in parents and target in routines:
                    parents[target] = node
                    frontier.append(target)
    return None


def covered_by_tasks(problem: Problem, tasks: Mapping[str, Task]) -> bool:
    """True for a generic warning that does not apply to a task.

    A task's unconsumed ``done`` is fine (its result is kept in the job), and
    a task needs no path from an entry routine (every job starts every task).
    """
    if problem.severity != "warning":
        return False
    rid, _, part = problem.where.partition(".")
    return rid in tasks and part in ("", "done")


def check_runnable(
    flow_id: str,
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    params: Mapping[str, Any],
) -> None:
    """Raise :class:`DefinitionError` if a job of these tasks cannot run with ``params``."""
    cycles = task_cycles(routines, connections)
    if cycles:
        raise DefinitionError(
            f"Flow '{flow_id}' has a dependency cycle: {cycle_text(cycles[0])}. No task of it "
            "could ever run; remove one of the dependencies."
        )
    for rid, dep in unknown_dependencies(routines):
        raise DefinitionError(
            f"Task '{rid}' depends on '{dep}', which is not in flow '{flow_id}'. Define it, or "
            "remove it from depends_on."
        )
    for rid, task in tasks_of(routines).items():
        missing = [p for p in task.needed_params() if p not in params]
        if missing:
            raise DefinitionError(
                f"Task '{rid}' needs parameter '{missing[0]}', which no dependency, default or "
                f"job param provides (job params: {quoted(params)}). Pass it: "
                f"flow.execute(entry_params={{{missing[0]!r}: ...}})."
            )


__all__ = ["PARAMS_SOURCE", "Skip", "Task", "TaskInput", "TaskResultError"]
