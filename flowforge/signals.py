"""Signals a running job sends, for observing it.

All signals live in one private :mod:`blinker` namespace and are sent with
the :class:`~flowforge.Flow` as sender, so a receiver can listen to one flow
(``job_finished.connect(receiver, sender=flow)``) or to all. Job and routine
signals are sent from the thread that runs the job; ``retry_scheduled`` from
the thread that runs the failing handler. A receiver that raises is logged
and ignored: it never breaks a job. Receivers should be quick: they run on
the job's own thread.

Example:
    >>> from flowforge import Flow, signals
    >>> seen = []
    >>> def on_finished(flow, job_state):
    ...     seen.append(str(job_state.status))
    >>> signals.job_finished.connect(on_finished)
    <function on_finished at ...>
    >>> signals.job_finished.disconnect(on_finished)
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

logger = logging.getLogger(__name__)
_namespace = Namespace()

job_started: NamedSignal = _namespace.signal(
    "job-started", doc="A job starts or resumes. Carries ``job_state``."
)
job_finished: NamedSignal = _namespace.signal(
    "job-finished",
    doc="A job stops running: completed, failed, paused or cancelled. Carries ``job_state``.",
)
routine_started: NamedSignal = _namespace.signal(
    "routine-started",
    doc="A handler call is dispatched. Carries ``job_state``, ``routine_id``, ``slot``, "
    "``activation_id``.",
)
routine_finished: NamedSignal = _namespace.signal(
    "routine-finished",
    doc="A handler call succeeded and its emits were routed. Carries ``job_state``, "
    "``routine_id``, ``slot``, ``activation_id``, ``duration`` (seconds).",
)
routine_failed: NamedSignal = _namespace.signal(
    "routine-failed",
    doc="A handler call failed for good (after any retries). Carries ``job_state``, "
    "``routine_id``, ``slot``, ``activation_id``, ``error`` (the exception), ``strategy``.",
)
event_emitted: NamedSignal = _namespace.signal(
    "event-emitted",
    doc="An emitted event was routed. Carries ``job_state``, ``routine_id``, ``event``, ``data``.",
)
retry_scheduled: NamedSignal = _namespace.signal(
    "retry-scheduled",
    doc="A failed call will run again. Carries ``job_id``, ``routine_id``, ``slot``, "
    "``activation_id``, ``attempt`` (the retry's number), ``delay``, ``error``.",
)

__all__ = [
    "event_emitted",
    "job_finished",
    "job_started",
    "retry_scheduled",
    "routine_failed",
    "routine_finished",
    "routine_started",
]


def send(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal``; a receiver that raises is logged, never propagated."""
    if not signal.receivers:
        return
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("Receiver %r of signal %r raised; ignored", receiver, signal.name)
