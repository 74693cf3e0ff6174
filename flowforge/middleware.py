"""Middleware that ships with FlowForge: logging and OpenTelemetry spans.

Use them with :meth:`Flow.use <flowforge.Flow.use>` or :meth:`Routine.use
<flowforge.Routine.use>`::

    flow.use(log_calls())                 # one log record per handler call
    flow.use(opentelemetry_spans())       # one span per handler call

Both are instances of module-level classes, so they pickle (they run in the
worker on the process and Dask executors) and are saved with the flow by
import path and arguments. ``opentelemetry_spans`` needs the
``flowforge[otel]`` extra; this module imports without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._activation import ActivationInfo
from .errors import MissingExtraError

try:
    from opentelemetry import trace as _trace
except ImportError:  # the otel extra is optional
    _trace = None  # type: ignore[assignment]

#: The logger :func:`log_calls` writes to by default.
DEFAULT_LOGGER = "flowforge.calls"


class LogCalls:
    """Log one record per handler call: routine, slot, attempt, outcome and time.

    Made by :func:`log_calls`. Records are formatted lazily: a disabled
    level costs one check per call.
    """

    __slots__ = ("_logger", "level")

    def __init__(self, logger: logging.Logger | str | None = None, level: int = logging.INFO):
        if logger is None:
            logger = DEFAULT_LOGGER
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise TypeError(
                f"log_calls() takes a logging.Logger or a logger name, got "
                f"{type(logger).__name__} {logger!r:.60}."
            )
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"log_calls() level must be an int (logging.INFO), got {level!r}.")
        self._logger = logger
        self.level = level

    @property
    def logger(self) -> logging.Logger:
        """The logger the records go to."""
        return self._logger

    @property
    def config(self) -> Mapping[str, Any]:
        """The arguments to make this middleware again (how a flow file saves it)."""
        return {"logger": self._logger.name, "level": self.level}

    def __call__(self, call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
        logger, level = self._logger, self.level
        if not logger.isEnabledFor(level):
            return proceed()
        start = time.perf_counter()
        outcome = "ok"
        try:
            return proceed()
        except BaseException as exc:
            outcome = f"failed ({type(exc).__name__}: {exc})"
            raise
        finally:
            logger.log(
                level,
                "%s.%s %s attempt %d: %s in %.6f s",
                call.routine_id,
                call.slot or "__call__",
                call.activation_id,
                call.attempt,
                outcome,
                time.perf_counter() - start,
            )

    def __reduce__(self) -> tuple[Any, ...]:
        return (LogCalls, (self._logger.name, self.level))

    def __repr__(self) -> str:
        return f"log_calls(logger={self._logger.name!r}, level={self.level!r})"


def log_calls(logger: logging.Logger | str | None = None, level: int = logging.INFO) -> LogCalls:
    """Middleware logging one record per handler call.

    Each record names the routine and slot, the activation id, the attempt,
    the outcome (``ok`` or ``failed (Type: message)``) and the call's time.

    Args:
        logger: A :class:`logging.Logger` or a logger name; default
            ``"flowforge.calls"``.
        level: The records' level (default ``logging.INFO``).

    Example:
        >>> import logging
        >>> from flowforge import Flow
        >>> from flowforge.middleware import log_calls
        >>> flow = Flow(flow_id="logged")
        >>> flow.use(log_calls("myapp.calls", logging.DEBUG))
        log_calls(logger='myapp.calls', level=10)
    """
    return LogCalls(logger, level)


#: The values of the ``flowforge.outcome`` span attribute.
OUTCOME_OK, OUTCOME_ERROR = "ok", "error"


class OpenTelemetrySpans:
    """One OpenTelemetry span per handler call. Made by :func:`opentelemetry_spans`."""

    __slots__ = ("_given", "_name", "_tracer")

    def __init__(self, tracer: Any = None) -> None:
        if _trace is None:
            raise MissingExtraError(
                "opentelemetry_spans() needs the 'otel' extra, which is not installed (no "
                "module 'opentelemetry'). Install it: pip install \"flowforge[otel]\"",
                extra="otel",
                module="opentelemetry",
            )
        self._name: str | None = None
        self._given = not (tracer is None or isinstance(tracer, str))
        if not self._given:
            self._name = tracer
            tracer = _trace.get_tracer(tracer or "flowforge")
        self._tracer = tracer

    @property
    def config(self) -> Mapping[str, Any] | None:
        """The arguments to make this middleware again, or ``None`` when it was
        given a tracer object (which a flow file cannot hold; give its name)."""
        return None if self._given else {"tracer": self._name}

    def __call__(self, call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
        slot = call.slot or "__call__"
        attributes = {
            "flowforge.job_id": call.job_id,
            "flowforge.routine_id": call.routine_id,
            "flowforge.slot": slot,
            "flowforge.attempt": call.attempt,
        }
        with self._tracer.start_as_current_span(
            f"{call.routine_id}.{slot}", attributes=attributes
        ) as span:
            try:
                result = proceed()
            except BaseException:
                span.set_attribute("flowforge.outcome", OUTCOME_ERROR)
                raise
            span.set_attribute("flowforge.outcome", OUTCOME_OK)
            return result

    def __reduce__(self) -> tuple[Any, ...]:
        # A named tracer is got again from the worker's own global provider; a
        # tracer object travels only if it pickles.
        return (OpenTelemetrySpans, (self._tracer if self._given else self._name,))

    def __repr__(self) -> str:
        tracer = self._tracer if self._given else self._name
        return f"opentelemetry_spans(tracer={tracer!r})"


def opentelemetry_spans(tracer: Any = None) -> OpenTelemetrySpans:
    """Middleware making one OpenTelemetry span per handler call.

    The span is named ``routine_id.slot`` and has the attributes
    ``flowforge.job_id``, ``flowforge.routine_id``, ``flowforge.slot``,
    ``flowforge.attempt`` and ``flowforge.outcome`` (``"ok"`` or
    ``"error"``); a failed attempt's span also records the exception and has
    an error status. Each attempt of a retried call has its own span. Spans
    nest under the span current where the handler runs.

    Args:
        tracer: An OpenTelemetry ``Tracer``, or the name to get one from the
            global tracer provider (default ``"flowforge"``). Only a name
            can be saved in a flow file or sent to worker processes, which
            use their own global provider.

    Raises:
        MissingExtraError: the ``flowforge[otel]`` extra is not installed.
    """
    return OpenTelemetrySpans(tracer)
