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
"""

from __future__ import annotations

import enum
from typing import Any

import attrs


class ErrorStrategy(enum.StrEnum):
    """How a job reacts when a handler call fails."""

    STOP = "stop"
    CONTINUE = "continue"
    RETRY = "retry"
    SKIP = "skip"


def _exception_types(value: Any) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"retryable_exceptions must be exception classes, got {item!r}. "
                "Pass for example (ConnectionError, TimeoutError)."
            )
    return tuple(items)


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"ErrorHandler.{attribute.name} must be >= 0, got {value!r}.")


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

    strategy: ErrorStrategy = attrs.field(default=ErrorStrategy.STOP, converter=ErrorStrategy)
    max_retries: int = attrs.field(default=3, validator=_non_negative)
    retry_delay: float = attrs.field(default=1.0, validator=_non_negative)
    retry_backoff: float = attrs.field(default=2.0, validator=_non_negative)
    retryable_exceptions: tuple[type[BaseException], ...] = attrs.field(
        default=(Exception,), converter=_exception_types
    )

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
