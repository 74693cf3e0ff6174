"""The context of the handler call that is running now.

The scheduler sets an :class:`ActivationContext` around every handler call.
``Routine.emit`` buffers into it (so a failed call emits nothing), and
``Routine._stats`` reads a private copy of the job's counters from it (so a
failed call changes no counter).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .routine import Routine

CURRENT: contextvars.ContextVar[ActivationContext | None] = contextvars.ContextVar(
    "flowforge_activation", default=None
)


@attrs.frozen
class JobControl:
    """What a handler may ask of the job it runs in: to pause or to cancel it.

    The scheduler hands each call this narrow object rather than itself, so
    a handler (through :meth:`Routine.pause_job
    <flowforge.Routine.pause_job>` and ``cancel_job``) can steer its job and
    nothing more.
    """

    _pause: Callable[[str | None], None]
    _cancel: Callable[[str | None], None]

    def request_pause(self, reason: str | None) -> None:
        """Pause the job once running calls finish."""
        self._pause(reason)

    def request_cancel(self, reason: str | None) -> None:
        """Cancel the job."""
        self._cancel(reason)


class ActivationContext:
    """What one handler call has done so far: its emits and its counters."""

    __slots__ = (
        "attempt",
        "base_stats",
        "control",
        "emits",
        "job_id",
        "routine",
        "routine_id",
        "seq",
        "stats",
    )

    def __init__(
        self,
        routine: Routine,
        routine_id: str,
        job_id: str,
        seq: int,
        base_stats: dict[str, Any],
        attempt: int = 0,
        control: JobControl | None = None,
    ) -> None:
        self.control = control
        self.routine = routine
        self.routine_id = routine_id
        self.job_id = job_id
        self.seq = seq
        self.attempt = attempt
        self.base_stats = base_stats
        self.stats: dict[str, Any] | None = None
        self.emits: list[tuple[str, dict[str, Any]]] = []

    @property
    def activation_id(self) -> str:
        """``"job_id:seq"``: the job and the message this activation consumes."""
        return f"{self.job_id}:{self.seq}"

    def stats_view(self) -> dict[str, Any]:
        """The call's own copy of the counters, made on first use."""
        if self.stats is None:
            self.stats = dict(self.base_stats)
        return self.stats


def current_activation() -> ActivationInfo | None:
    """Describe the handler call running in this thread or task, or ``None``.

    The activation id is stable: if the job is resumed after a crash and the
    same call runs again, it has the same id, so a handler can use it as an
    idempotency key for side effects outside FlowForge.

    Example:
        >>> from flowforge import current_activation
        >>> current_activation() is None   # not inside a handler
        True
    """
    ctx = CURRENT.get()
    if ctx is None:
        return None
    return ActivationInfo(ctx.job_id, ctx.routine_id, ctx.activation_id, ctx.attempt)


class ActivationInfo:
    """A read-only description of a running handler call.

    Attributes:
        job_id: The job the call belongs to.
        routine_id: The routine whose handler runs.
        activation_id: Stable id of this activation within the job.
        attempt: 0 for the first try, then 1, 2, ... for retries.
    """

    __slots__ = ("activation_id", "attempt", "job_id", "routine_id")

    def __init__(self, job_id: str, routine_id: str, activation_id: str, attempt: int) -> None:
        self.job_id = job_id
        self.routine_id = routine_id
        self.activation_id = activation_id
        self.attempt = attempt

    def __repr__(self) -> str:
        return (
            f"ActivationInfo(job_id={self.job_id!r}, routine_id={self.routine_id!r}, "
            f"activation_id={self.activation_id!r}, attempt={self.attempt})"
        )


def merge_stats(
    current: dict[str, Any], base: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any]:
    """Apply what one call changed (``base`` -> ``new``) onto ``current``.

    Numbers are merged as deltas, so calls of one routine that ran at the same
    time (``max_concurrency > 1``) or on other machines all count; any other
    value is replaced. Returns a new dict; ``current`` is never mutated,
    because other calls may be copying it.
    """
    merged = dict(current)
    for key, value in new.items():
        old = base.get(key, _MISSING)
        if old is value or (old is not _MISSING and old == value):
            continue
        now = merged.get(key, _MISSING)
        if old is _MISSING:
            old = 0  # a counter this call started counts from zero
        if _is_number(value) and _is_number(old) and _is_number(now):
            merged[key] = now + (value - old)
        else:
            merged[key] = value
    for key in base.keys() - new.keys():
        merged.pop(key, None)
    return merged


_MISSING: Any = object()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
