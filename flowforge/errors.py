"""The exceptions FlowForge raises.

Every exception derives from :class:`FlowForgeError`. Misuse of the API also
derives from the matching builtin (a bad value is a :class:`ValueError`, a bad
type a :class:`TypeError`, an unknown name a :class:`LookupError`), so code
that already catches builtins keeps working. Each error carries the names it
is about (``routine_id``, ``slot``, ``event``, ...) as attributes, and its
message says what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs


def quoted(names: Iterable[str]) -> str:
    """Format names as ``'a', 'b'`` for messages, or ``(none)``."""
    items = [f"'{name}'" for name in sorted(names)]
    return ", ".join(items) if items else "(none)"


@attrs.frozen
class Problem:
    """One problem in a flow: found by :meth:`Flow.validate <flowforge.Flow.validate>`,
    or met while loading a flow file (:attr:`SerializationError.problems`).

    Attributes:
        severity: ``"error"`` (the flow will not work as meant) or ``"warning"``.
            Loading problems are always errors.
        where: What it is about: ``"parse"``, ``"parse.input"``, ``"fetch.data"``
            for :meth:`~flowforge.Flow.validate`; a place in the file such as
            ``"flow.routines.parse.class"`` or ``"flow.connections[2]"`` (or the
            file's name, for the file as a whole) for loading.
        message: What is wrong.
        hint: How to fix it (may be ``""`` when there is nothing to add).
    """

    severity: Literal["error", "warning"]
    where: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message} Hint: {self.hint}"


class FlowForgeError(Exception):
    """Root of every error FlowForge raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only data, which the default pickling (which
        # calls cls(*args)) would lose; errors cross process boundaries.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class DefinitionError(FlowForgeError, ValueError):
    """A routine, slot, event, connection or flow was declared inconsistently,
    or given a value out of range."""


class DefinitionTypeError(DefinitionError, TypeError):
    """A flow, routine or connection was given a value of the wrong type.

    It is also a :class:`DefinitionError` (and so a :class:`ValueError`), so
    code catching either keeps working.
    """


class UnknownNameError(FlowForgeError, LookupError):
    """A routine, slot or event name that does not exist was used.

    Attributes:
        kind: What was looked up (``"routine"``, ``"slot"``, ``"event"``).
        name: The name that was given.
        known: The names that do exist.
    """

    def __init__(self, message: str, *, kind: str, name: str, known: Iterable[str]) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.known = sorted(known)

    def __str__(self) -> str:
        return str(self.args[0])


class EmitError(FlowForgeError, ValueError):
    """A routine emitted an event it did not declare, or undeclared parameters.

    Attributes:
        routine_id: The emitting routine.
        event: The event name that was emitted.
        expected: What the event allows.
        got: What was given.
    """

    def __init__(
        self, message: str, *, routine_id: str, event: str, expected: Any, got: Any
    ) -> None:
        super().__init__(message)
        self.routine_id = routine_id
        self.event = event
        self.expected = expected
        self.got = got


class HandlerParameterError(FlowForgeError, TypeError):
    """A slot handler could not be called with the delivered data.

    Attributes:
        routine_id: The routine that owns the slot.
        slot: The slot name.
        parameter: The missing parameter.
        delivered: The parameter names that were delivered.
    """

    def __init__(
        self, message: str, *, routine_id: str, slot: str, parameter: str, delivered: list[str]
    ) -> None:
        super().__init__(message)
        self.routine_id = routine_id
        self.slot = slot
        self.parameter = parameter
        self.delivered = delivered


class HandlerTimeoutError(FlowForgeError, TimeoutError):
    """A handler ran longer than its routine's ``timeout``.

    Attributes:
        routine_id: The routine whose handler timed out.
        slot: The slot whose handler timed out.
        timeout: The limit in seconds.
    """

    def __init__(self, message: str, *, routine_id: str, slot: str, timeout: float) -> None:
        super().__init__(message)
        self.routine_id = routine_id
        self.slot = slot
        self.timeout = timeout


class ActivationLimitError(FlowForgeError, RuntimeError):
    """A routine was activated more often in one job than its cap allows.

    Attributes:
        routine_id: The routine that hit its cap.
        limit: The cap.
    """

    def __init__(self, message: str, *, routine_id: str, limit: int) -> None:
        super().__init__(message)
        self.routine_id = routine_id
        self.limit = limit


class MiddlewareError(FlowForgeError, RuntimeError):
    """A middleware broke the ``mw(call, proceed)`` protocol (it called
    ``proceed()`` twice); the call fails like a handler error.

    Attributes:
        routine_id: The routine whose call it was.
        middleware: The middleware's name.
    """

    def __init__(self, message: str, *, routine_id: str, middleware: str) -> None:
        super().__init__(message)
        self.routine_id = routine_id
        self.middleware = middleware


class JobStateError(FlowForgeError, ValueError):
    """A job was asked to do something its status does not allow.

    Attributes:
        job_id: The job.
        status: Its status when asked.
    """

    def __init__(self, message: str, *, job_id: str, status: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class SerializationError(FlowForgeError, ValueError):
    """Saved data could not be read or written.

    Attributes:
        path: Where in the document the (first) problem is
            (``flow.routines.parse.config``), or ``""`` for the whole document.
        problems: Every problem found, each a :class:`Problem` (severity
            ``"error"``) with its place, message and hint; a loader reports
            all of a file's problems at once. An error raised with a message
            only has one problem made from it.
    """

    def __init__(
        self, message: str, *, path: str = "", problems: Sequence[Problem] | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.problems: list[Problem] = (
            list(problems) if problems else [Problem("error", path or "flow", message, "")]
        )

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> SerializationError:
        """One error listing ``problems`` (at least one), each on its own line."""
        lines = "\n".join(f"  - {_line(p)}" for p in problems)
        return cls(
            f"The flow has {len(problems)} problem(s):\n{lines}",
            path=problems[0].where if len(problems) == 1 else "flow",
            problems=problems,
        )


def _line(problem: Problem) -> str:
    """``where: message hint`` for one problem (no severity)."""
    hint = f" {problem.hint}" if problem.hint else ""
    return f"{problem.where}: {problem.message}{hint}"


class UnstorableDataError(SerializationError):
    """A call produced data its job's store cannot keep (for example a ``datetime``).

    The call fails with this error and the job stops ``failed`` at it,
    whatever the error strategy: retrying would produce the same data.

    Attributes:
        routine_id: The routine whose call produced the data.
        event: The event it emitted, or ``None`` when its counters are the problem.
    """

    def __init__(self, message: str, *, routine_id: str, event: str | None) -> None:
        super().__init__(message, path=routine_id if event is None else f"{routine_id}.{event}")
        self.routine_id = routine_id
        self.event = event


class ValidationError(FlowForgeError, ValueError):
    """:meth:`Flow.validate <flowforge.Flow.validate>` found problems.

    Attributes:
        problems: Every problem found, each a :class:`Problem`.
    """

    def __init__(self, problems: list[Any]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"The flow has {len(problems)} problem(s):\n{lines}")
        self.problems = problems


class MissingExtraError(FlowForgeError, ModuleNotFoundError):
    """A feature needs an optional extra of FlowForge that is not installed.

    Attributes:
        extra: The extra to install (``pip install "flowforge[<extra>]"``).
        module: The module that could not be imported.
    """

    def __init__(self, message: str, *, extra: str, module: str) -> None:
        super().__init__(message, name=module)
        self.extra = extra
        self.module = module
