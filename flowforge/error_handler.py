"""What a job does when a handler fails.

An :class:`ErrorHandler` is an immutable policy: a strategy plus retry
settings. It holds no per-call state, so one handler can serve many routines
and jobs at once; the retry count of a failing call lives with that call.

======== ============================================================== ==================
strategy what happens                                                   job can end
======== ============================================================== ==================
STOP     the job takes no new work, running calls finish, the failed     ``failed``
         message goes back to the front of the pending queue (so
         :meth:`Flow.resume <flowforge.Flow.resume>` retries it)
CONTINUE the error is recorded against the routine; the message counts   ``completed``
         as handled and the job goes on
SKIP     the message is marked skipped and the job goes on; joins that   ``completed``
         wait on the routine are skipped too
RETRY    the call runs again up to ``max_retries`` more times, sleeping  as STOP when
         ``retry_delay * retry_backoff ** (attempt - 1)`` in between,    retries run out
         for exceptions in ``retryable_exceptions``
======== ============================================================== ==================

The settings are checked when the handler is made: ``max_retries`` is an
int >= 0, ``retry_delay`` and ``retry_backoff`` are finite numbers >= 0, and
the longest wait (before the last retry) is at most :data:`MAX_RETRY_WAIT`,
so computing a delay can never overflow. A bad value raises
:class:`~flowforge.errors.DefinitionTypeError` or
:class:`~flowforge.errors.DefinitionError`.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs

from ._checks import check_int, check_number
from .errors import DefinitionError, DefinitionTypeError, quoted


class ErrorStrategy(enum.StrEnum):
    """How a job reacts when a handler call fails."""

    STOP = "stop"
    CONTINUE = "continue"
    RETRY = "retry"
    SKIP = "skip"


#: The longest wait before a retry that an ErrorHandler accepts, in seconds (a week).
MAX_RETRY_WAIT = 7 * 24 * 3600.0


def _strategy(value: Any) -> ErrorStrategy:
    try:
        return ErrorStrategy(value)
    except ValueError:
        raise DefinitionError(
            f"ErrorHandler.strategy must be one of {quoted(m.value for m in ErrorStrategy)}, "
            f"got {value!r}. Use ErrorStrategy.RETRY, for example."
        ) from None


def _exception_types(value: Any) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise DefinitionTypeError(
                f"retryable_exceptions must be exception classes, got {item!r}. "
                "Pass for example (ConnectionError, TimeoutError)."
            )
    return tuple(items)


def _retries(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_int(value, f"ErrorHandler.{attribute.name}", minimum=0)


def _seconds(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_number(value, f"ErrorHandler.{attribute.name}")


@attrs.frozen
class ErrorHandler:
    """An error policy for routines: a strategy and its retry settings.

    Args:
        strategy: One of :class:`ErrorStrategy` (or its string value).
        max_retries: With RETRY, how many more times a failed call runs.
        retry_delay: Seconds to wait before the first retry.
        retry_backoff: Factor applied to the delay for each further retry.
        retryable_exceptions: Exception types that RETRY retries; any other
            exception is handled as STOP.

    Example:
        >>> from flowforge import ErrorHandler, ErrorStrategy
        >>> policy = ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0.5)
        >>> [policy.delay(attempt) for attempt in (1, 2)]
        [0.5, 1.0]
    """

    strategy: ErrorStrategy = attrs.field(default=ErrorStrategy.STOP, converter=_strategy)
    max_retries: int = attrs.field(default=3, validator=_retries)
    retry_delay: float = attrs.field(default=1.0, validator=_seconds)
    retry_backoff: float = attrs.field(default=2.0, validator=_seconds)
    retryable_exceptions: tuple[type[BaseException], ...] = attrs.field(
        default=(Exception,), converter=_exception_types
    )

    def __attrs_post_init__(self) -> None:
        longest = self._longest_wait()
        if longest > MAX_RETRY_WAIT:
            raise DefinitionError(
                f"ErrorHandler: the last retry would wait retry_delay * retry_backoff ** "
                f"(max_retries - 1) = {self.retry_delay!r} * {self.retry_backoff!r} ** "
                f"{self.max_retries - 1} = {longest:.3g} s, more than the {MAX_RETRY_WAIT:.0f} s "
                "(a week) allowed. Lower retry_backoff, retry_delay or max_retries."
            )

    def _longest_wait(self) -> float:
        if self.max_retries == 0:
            return 0.0
        try:
            return self.delay(max(self.max_retries, 1))
        except OverflowError:
            return math.inf

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first)."""
        return float(self.retry_delay * self.retry_backoff ** (attempt - 1))

    def should_retry(self, error: BaseException, retries_done: int) -> bool:
        """True when a call that failed with ``error`` gets another try."""
        return (
            self.strategy is ErrorStrategy.RETRY
            and retries_done < self.max_retries
            and isinstance(error, self.retryable_exceptions)
        )

    def final_strategy(self, error: BaseException) -> ErrorStrategy:
        """The strategy applied once no retry is left: RETRY ends as STOP."""
        return ErrorStrategy.STOP if self.strategy is ErrorStrategy.RETRY else self.strategy

    def reset(self) -> None:
        """Kept for compatibility: retry counts belong to each call, so nothing to reset."""
