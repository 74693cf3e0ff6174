"""Timings, counts and the event flow of one job.

Every job has an :class:`ExecutionTracker`, saved with its
:class:`~flowforge.JobState`. It counts each handler call (every retry attempt
is a call) and keeps the latest ``retention`` event deliveries; older
deliveries are counted in ``event_flow_dropped`` rather than kept, so a
million-message job stays small.

``elapsed`` is the time the job has spent running, over all of its runs:
while a run goes on (between :meth:`ExecutionTracker.start_run` and
:meth:`ExecutionTracker.stop_run`) it includes the time so far, so a store
that saves the tracker mid-run saves the time spent, and a job whose process
died shows the time it ran until its last commit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any

import attrs

from .serialization import converter

# Per-routine counters kept as a list for speed:
# [calls, successes, failures, total_time, min_time, max_time]
_CALLS, _OK, _FAILED, _TIME, _MIN, _MAX = range(6)


@attrs.frozen
class EventFlowRecord:
    """One delivery: ``source.event`` reached ``target.slot`` at ``timestamp``."""

    timestamp: float
    source: str | None
    event: str | None
    target: str
    slot: str | None


@attrs.define(on_setattr=attrs.setters.NO_OP)
class ExecutionTracker:
    """Performance and event flow of one job.

    Attributes:
        flow_id: The job's flow.
        job_id: The job.
        retention: How many event deliveries are kept.
    """

    flow_id: str | None = None
    job_id: str | None = None
    retention: int = 1000
    _elapsed: float = attrs.field(default=0.0, alias="elapsed")
    event_flow_total: int = 0
    _routines: dict[str, list[float]] = attrs.field(factory=dict, alias="routines")
    _flow: deque[tuple[float, str | None, str | None, str, str | None]] = attrs.field(init=False)
    _run_start: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        # maxlen given by position: by keyword, making the deque costs twice as much.
        self._flow = deque((), self.retention)  # noqa: RUF037

    @property
    def elapsed(self) -> float:
        """Seconds the job has been running, over all of its runs, this one included."""
        if self._run_start is None:
            return self._elapsed
        return self._elapsed + (time.perf_counter() - self._run_start)

    @elapsed.setter
    def elapsed(self, value: float) -> None:
        self._elapsed = value
        if self._run_start is not None:
            self._run_start = time.perf_counter()

    def start_run(self) -> None:
        """A run of the job starts: ``elapsed`` counts from now."""
        if self._run_start is None:
            self._run_start = time.perf_counter()

    def stop_run(self) -> None:
        """The run stopped: its time is added to ``elapsed`` for good."""
        if self._run_start is not None:
            self._elapsed += time.perf_counter() - self._run_start
            self._run_start = None

    # -- recording (called by the scheduler) --------------------------------

    def record_call(self, routine_id: str, ok: bool, seconds: float) -> None:
        """Count one handler call of ``routine_id`` that took ``seconds``."""
        row = self._routines.get(routine_id)
        if row is None:
            row = self._routines[routine_id] = [0, 0, 0, 0.0, seconds, seconds]
        # Literal indices (_CALLS, _OK, _FAILED, _TIME, _MIN, _MAX): this runs for every call.
        row[0] += 1
        row[1 if ok else 2] += 1
        row[3] += seconds
        if seconds < row[4]:
            row[4] = seconds
        elif seconds > row[5]:
            row[5] = seconds

    def record_step(
        self,
        routine_id: str,
        seconds: float,
        deliveries: Sequence[tuple[float, str | None, str | None, str, str | None]] = (),
    ) -> None:
        """A successful call (:meth:`record_call`) and the deliveries of its emits
        (:meth:`record_deliveries`): one call, because it runs for every handler call."""
        row = self._routines.get(routine_id)
        if row is None:
            row = self._routines[routine_id] = [0, 0, 0, 0.0, seconds, seconds]
        row[0] += 1
        row[1] += 1
        row[3] += seconds
        if seconds < row[4]:
            row[4] = seconds
        elif seconds > row[5]:
            row[5] = seconds
        if deliveries:
            self.event_flow_total += len(deliveries)
            self._flow.extend(deliveries)

    def record_delivery(
        self,
        timestamp: float,
        source: str | None,
        event: str | None,
        target: str,
        slot: str | None,
    ) -> None:
        """Note that ``source.event`` was routed to ``target.slot`` at ``timestamp``."""
        self.event_flow_total += 1
        self._flow.append((timestamp, source, event, target, slot))

    def record_deliveries(
        self, rows: Sequence[tuple[float, str | None, str | None, str, str | None]]
    ) -> None:
        """:meth:`record_delivery` for each ``(timestamp, source, event, target, slot)``."""
        self.event_flow_total += len(rows)
        self._flow.extend(rows)

    # -- reading ------------------------------------------------------------

    def get_routine_performance(self, routine_id: str) -> dict[str, Any]:
        """Calls, successes, failures, success rate and timings of one routine."""
        row = self._routines.get(routine_id)
        if row is None:
            return _performance(0, 0, 0, 0.0, 0.0, 0.0)
        return _performance(int(row[0]), int(row[1]), int(row[2]), row[3], row[4], row[5])

    def get_flow_performance(self) -> dict[str, Any]:
        """The same figures over the whole job, plus its elapsed and total handler time."""
        rows = list(self._routines.values())
        calls, ok, failed = (int(sum(r[i] for r in rows)) for i in (_CALLS, _OK, _FAILED))
        total = sum(r[_TIME] for r in rows)
        perf = _performance(
            calls,
            ok,
            failed,
            total,
            min((r[_MIN] for r in rows), default=0.0),
            max((r[_MAX] for r in rows), default=0.0),
        )
        perf.update(routine_count=len(rows), total_time=self.elapsed, total_execution_time=total)
        return perf

    def get_event_flow(self) -> list[EventFlowRecord]:
        """The latest ``retention`` deliveries, oldest first."""
        return [EventFlowRecord(*row) for row in self._flow]

    def event_flow_since(
        self, total: int
    ) -> list[tuple[float, str | None, str | None, str, str | None]]:
        """The kept deliveries made after the first ``total`` ones, oldest first.

        Each is a ``(timestamp, source, event, target, slot)`` tuple, as saved.
        """
        count = min(self.event_flow_total - total, len(self._flow))
        if count <= 0:
            return []
        if count == len(self._flow):
            return list(self._flow)
        return list(islice(reversed(self._flow), count))[::-1]

    @property
    def event_flow_dropped(self) -> int:
        """How many older deliveries were dropped by retention."""
        return self.event_flow_total - len(self._flow)

    def serialize(self, *, event_flow: bool = True) -> dict[str, Any]:
        """Plain data for JSON/YAML; without the event flow if ``event_flow`` is false."""
        return _unstructure(self, event_flow)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionTracker:
        """Rebuild a tracker saved by :meth:`serialize`."""
        return converter.structure(data, cls)


def _performance(
    calls: int, ok: int, failed: int, total: float, low: float, high: float
) -> dict[str, Any]:
    return {
        "total_executions": calls,
        "success_count": ok,
        "failure_count": failed,
        "success_rate": ok / calls if calls else 0.0,
        "avg_execution_time": total / calls if calls else 0.0,
        "min_execution_time": low,
        "max_execution_time": high,
    }


def _unstructure(tracker: ExecutionTracker, event_flow: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "flow_id": tracker.flow_id,
        "job_id": tracker.job_id,
        "retention": tracker.retention,
        "elapsed": tracker.elapsed,
        "event_flow_total": tracker.event_flow_total,
        "routines": {
            rid: dict(
                zip(
                    ("calls", "successes", "failures", "total_time", "min_time", "max_time"),
                    row,
                    strict=True,
                )
            )
            for rid, row in tracker._routines.items()
        },
    }
    if event_flow:
        data["event_flow"] = [list(row) for row in tracker._flow]
    return data


@attrs.frozen
class _RoutineRow:
    calls: int
    successes: int
    failures: int
    total_time: float
    min_time: float
    max_time: float


@attrs.frozen
class _TrackerDoc:
    """A saved tracker, as read back: every field typed, so errors say where."""

    flow_id: str | None = None
    job_id: str | None = None
    retention: int = 1000
    elapsed: float = 0.0
    event_flow_total: int = 0
    routines: dict[str, _RoutineRow] = attrs.field(factory=dict)
    event_flow: list[tuple[float, str | None, str | None, str, str | None]] = attrs.field(
        factory=list
    )


def _structure(data: Any, _: Any) -> ExecutionTracker:
    doc = converter.structure(data, _TrackerDoc)
    if doc.retention < 1:
        raise ValueError(f"retention: expected an int >= 1, got {doc.retention!r}")
    negative = [
        f"{rid}.{name}"
        for rid, row in doc.routines.items()
        for name, value in attrs.asdict(row).items()
        if value < 0
    ]
    if negative:
        raise ValueError(f"routines: {', '.join(negative)} must not be negative")
    if doc.elapsed < 0 or doc.event_flow_total < len(doc.event_flow):
        raise ValueError(
            f"elapsed {doc.elapsed!r} or event_flow_total {doc.event_flow_total!r} is impossible "
            f"(expected >= 0 and >= the {len(doc.event_flow)} deliveries kept)"
        )
    tracker = ExecutionTracker(
        flow_id=doc.flow_id,
        job_id=doc.job_id,
        retention=doc.retention,
        elapsed=doc.elapsed,
        event_flow_total=doc.event_flow_total,
        routines={rid: list(attrs.astuple(row)) for rid, row in doc.routines.items()},
    )
    tracker._flow.extend(doc.event_flow)
    return tracker


converter.register_unstructure_hook(ExecutionTracker, _unstructure)
converter.register_structure_hook(ExecutionTracker, _structure)
