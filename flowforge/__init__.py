"""FlowForge: event-driven dataflow with jobs you can pause, save and resume.

Layers, bottom up: :mod:`~flowforge.errors` and
:mod:`~flowforge.serialization`; the definition (routines, slots, events,
connections, error handlers); the job's data (:class:`JobState`,
:class:`ExecutionTracker`); the runtime (:mod:`flowforge.runtime`: plan,
scheduler, executors); and :class:`Flow`, the door through which jobs run.
Users import from ``flowforge`` only.
"""

from . import signals
from ._activation import ActivationInfo, current_activation
from .connection import Connection
from .error_handler import ErrorHandler, ErrorStrategy
from .errors import (
    ActivationLimitError,
    DefinitionError,
    DefinitionTypeError,
    EmitError,
    FlowForgeError,
    HandlerParameterError,
    HandlerTimeoutError,
    JobStateError,
    MiddlewareError,
    Problem,
    SerializationError,
    UnknownNameError,
    UnstorableDataError,
    ValidationError,
)
from .event import Event
from .execution_tracker import EventFlowRecord, ExecutionTracker
from .flow import Flow
from .job_state import (
    ErrorInfo,
    ExecutionRecord,
    JobState,
    JobStatus,
    Message,
    RoutineRun,
    RoutineStatus,
    SkippedWork,
    TaskRun,
)
from .routine import Policy, Routine
from .runtime.executors import Executor, SequentialExecutor, ThreadExecutor
from .serialization import allow_modules
from .slot import Slot
from .task import Skip, Task

__version__ = "0.1.0"

__all__ = [
    "ActivationInfo",
    "ActivationLimitError",
    "Connection",
    "DefinitionError",
    "DefinitionTypeError",
    "EmitError",
    "ErrorHandler",
    "ErrorInfo",
    "ErrorStrategy",
    "Event",
    "EventFlowRecord",
    "ExecutionRecord",
    "ExecutionTracker",
    "Executor",
    "Flow",
    "FlowForgeError",
    "HandlerParameterError",
    "HandlerTimeoutError",
    "JobState",
    "JobStateError",
    "JobStatus",
    "Message",
    "MiddlewareError",
    "Policy",
    "Problem",
    "Routine",
    "RoutineRun",
    "RoutineStatus",
    "SequentialExecutor",
    "SerializationError",
    "Skip",
    "SkippedWork",
    "Slot",
    "Task",
    "TaskRun",
    "ThreadExecutor",
    "UnknownNameError",
    "UnstorableDataError",
    "ValidationError",
    "allow_modules",
    "current_activation",
    "signals",
]
