"""The exceptions FlowForge raises.

Every exception derives from :class:`FlowForgeError`. Misuse of the API also
derives from the matching builtin (a bad value is a :class:`ValueError`, a bad
type a :class:`TypeError`, an unknown name a :class:`LookupError`), so code
that already catches builtins keeps working. Each error carries the names it
is about (``routine_id``, ``slot``, ``event``, ...) as attributes, and its
message says what was expected, what was given, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def quoted(names: Iterable[str]) -> str:
    """Format names as ``'a', 'b'`` for messages, or ``(none)``."""
    items = [f"'{name}'" for name in sorted(names)]
    return ", ".join(items) if items else "(none)"


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
    """A routine, slot, event or connection was declared inconsistently."""


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
        path: Where in the document the problem is (``routines.parse.config``),
            or ``""`` for the whole document.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


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
