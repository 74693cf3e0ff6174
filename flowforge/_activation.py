"""The context of the handler call that is running now.

:func:`~flowforge.runtime.activation.invoke` sets an :class:`ActivationContext`
around every handler call.
``Routine.emit`` buffers into it (so a failed call emits nothing), and
``Routine._stats`` reads a private copy of the job's counters from it (so a
failed call changes no counter).
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .routine import Routine

CURRENT: contextvars.ContextVar[ActivationContext | None] = contextvars.ContextVar(
    "flowforge_activation", default=None
)


class Steerable(Protocol):
    """What a :class:`JobControl` steers (the job's scheduler)."""

    def request_pause(self, reason: str | None) -> None:
        """Pause the job once running calls finish."""

    def request_cancel(self, reason: str | None) -> None:
        """Cancel the job."""


class JobControl:
    """What a handler may ask of the job it runs in: to pause or to cancel it.

    The scheduler hands each call this narrow object rather than itself, so
    a handler (through :meth:`Routine.pause_job
    <flowforge.Routine.pause_job>` and ``cancel_job``) can steer its job and
    nothing more. It holds the scheduler weakly: the scheduler holds it (in
    its calls' context), and a cycle would keep a finished job's state alive
    until the garbage collector ran.
    """

    __slots__ = ("_target",)

    def __init__(self, target: Steerable) -> None:
        self._target = weakref.ref(target)

    def request_pause(self, reason: str | None) -> None:
        """Pause the job once running calls finish."""
        target = self._target()
        if target is not None:
            target.request_pause(reason)

    def request_cancel(self, reason: str | None) -> None:
        """Cancel the job."""
        target = self._target()
        if target is not None:
            target.request_cancel(reason)


class JobSide(Protocol):
    """What a call's context knows of its job."""

    @property
    def job_id(self) -> str:
        """The job's id."""

    @property
    def control(self) -> JobControl | None:
        """Pause or cancel the job; ``None`` in another process."""


class ActivationContext:
    """What one handler call has done so far: its emits and its counters.

    The scheduler's :class:`~flowforge.runtime.activation.Activation` is one:
    the call's description doubles as its context, so a call costs one object.
    ``emits`` and ``stats`` start afresh for each attempt.
    """

    __slots__ = (
        "attempt",
        "base_stats",
        "call",
        "emits",
        "message",
        "routine",
        "routine_id",
        "stats",
    )

    attempt: int
    base_stats: dict[str, Any]
    call: JobSide
    emits: list[tuple[str, dict[str, Any]]]
    message: Any
    routine: Routine
    routine_id: str
    stats: dict[str, Any] | None

    @property
    def job_id(self) -> str:
        """The job the call belongs to."""
        return self.call.job_id

    @property
    def control(self) -> JobControl | None:
        """Pause or cancel the job from the handler; ``None`` in another process."""
        return self.call.control

    @property
    def seq(self) -> int:
        """The sequence number of the message the call consumes."""
        seq: int = self.message.seq
        return seq

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
    job_id = ctx.job_id
    return ActivationInfo(
        job_id,
        ctx.routine_id,
        f"{job_id}:{ctx.seq}",
        ctx.attempt,
        getattr(ctx, "slot_name", None),
        getattr(ctx, "data", None),
    )


_NO_DATA: Mapping[str, Any] = MappingProxyType({})


class ActivationInfo:
    """A read-only description of a running handler call.

    Middleware gets one as its ``call`` argument (see :doc:`/guide/middleware`).

    Attributes:
        job_id: The job the call belongs to.
        routine_id: The routine whose handler runs.
        activation_id: Stable id of this activation within the job.
        attempt: 0 for the first try, then 1, 2, ... for retries.
        slot: The slot whose handler runs; ``None`` for the entry call of a
            routine that overrides ``__call__``.
        data: The call's parameters, read-only (a
            :class:`~types.MappingProxyType` over the delivered dict).
    """

    __slots__ = ("activation_id", "attempt", "data", "job_id", "routine_id", "slot")

    def __init__(
        self,
        job_id: str,
        routine_id: str,
        activation_id: str,
        attempt: int,
        slot: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.job_id = job_id
        self.routine_id = routine_id
        self.activation_id = activation_id
        self.attempt = attempt
        self.slot = slot
        self.data: Mapping[str, Any] = _NO_DATA if data is None else MappingProxyType(data)

    def __repr__(self) -> str:
        return (
            f"ActivationInfo(job_id={self.job_id!r}, routine_id={self.routine_id!r}, "
            f"slot={self.slot!r}, activation_id={self.activation_id!r}, "
            f"attempt={self.attempt})"
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
