"""ExecutionTracker: per-routine and per-flow performance, the event flow, saving."""

from __future__ import annotations

import json

import pytest
from conftest import chain, linear_flow, no_retry_delay

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    EventFlowRecord,
    ExecutionTracker,
    Flow,
)
from flowforge.testing import Flaky

PERFORMANCE_KEYS = {
    "total_executions",
    "success_count",
    "failure_count",
    "success_rate",
    "avg_execution_time",
    "min_execution_time",
    "max_execution_time",
}


def test_routine_performance_has_the_documented_keys() -> None:
    """get_routine_performance returns at least the documented keys."""
    tracker = ExecutionTracker()
    tracker.record_call("r", True, 0.5)
    assert tracker.get_routine_performance("r").keys() >= PERFORMANCE_KEYS


def test_routine_performance_counts_and_times_calls() -> None:
    """Counts, success rate and min/avg/max times follow the recorded calls."""
    tracker = ExecutionTracker()
    for ok, seconds in [(True, 1.0), (False, 3.0), (True, 2.0), (True, 2.0)]:
        tracker.record_call("r", ok, seconds)
    perf = tracker.get_routine_performance("r")
    assert perf["total_executions"] == 4
    assert (perf["success_count"], perf["failure_count"]) == (3, 1)
    assert perf["success_rate"] == pytest.approx(0.75)
    assert perf["avg_execution_time"] == pytest.approx(2.0)
    assert (perf["min_execution_time"], perf["max_execution_time"]) == (1.0, 3.0)


def test_routine_performance_of_an_unknown_routine_is_all_zero() -> None:
    """A routine never called has zero counts and times."""
    perf = ExecutionTracker().get_routine_performance("nope")
    assert perf["total_executions"] == 0
    assert perf["success_rate"] == 0.0


def test_flow_performance_sums_every_routine() -> None:
    """get_flow_performance adds up every routine's calls and has a total time."""
    tracker = ExecutionTracker()
    tracker.record_call("a", True, 1.0)
    tracker.record_call("b", False, 2.0)
    tracker.record_call("b", True, 3.0)
    perf = tracker.get_flow_performance()
    assert (perf["total_executions"], perf["success_count"], perf["failure_count"]) == (3, 2, 1)
    assert perf["success_rate"] == pytest.approx(2 / 3)
    assert perf["total_execution_time"] == pytest.approx(6.0)
    assert "total_time" in perf


def test_a_job_counts_one_call_per_activation() -> None:
    """After a job, each routine's call count is its number of handler calls."""
    flow = Flow()
    linear_flow(flow)
    job = flow.execute("src", {"values": [1, 2, 3]})
    tracker = job.tracker
    assert tracker.get_routine_performance("src")["total_executions"] == 1
    assert tracker.get_routine_performance("double")["total_executions"] == 3
    assert tracker.get_flow_performance()["total_executions"] == 1 + 3 + 3 + 3
    assert tracker.get_flow_performance()["total_time"] > 0


def test_every_retry_attempt_is_a_call() -> None:
    """A call retried twice before succeeding counts three calls, two failed."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=2)
    flaky.set_error_handler(no_retry_delay(ErrorStrategy.RETRY, max_retries=3))
    flow.add_routine(flaky, "flaky")
    job = flow.execute("flaky", {"x": 1})
    perf = job.tracker.get_routine_performance("flaky")
    assert (perf["total_executions"], perf["success_count"], perf["failure_count"]) == (3, 1, 2)


def test_the_tracker_records_which_event_reached_which_slot() -> None:
    """The event flow lists each delivery: source, event, target, slot, time."""
    flow = Flow()
    linear_flow(flow)
    job = flow.execute("src", {"values": [1]})
    rows = job.tracker.get_event_flow()
    assert all(isinstance(r, EventFlowRecord) for r in rows)
    assert [(r.source, r.event, r.target, r.slot) for r in rows] == [
        ("src", "out", "double", "in"),
        ("double", "out", "relay", "in"),
        ("relay", "out", "sink", "in"),
    ]
    assert [r.timestamp for r in rows] == sorted(r.timestamp for r in rows)


def test_event_flow_is_bounded_by_retention() -> None:
    """Only the latest `retention` deliveries are kept; the rest are counted."""
    flow = Flow(retention=4)
    linear_flow(flow)
    job = flow.execute("src", {"values": list(range(10))})
    assert len(job.tracker.get_event_flow()) == 4
    assert job.tracker.event_flow_dropped == 30 - 4
    assert job.tracker.event_flow_total == 30


def test_tracker_survives_json() -> None:
    """serialize -> JSON -> from_dict keeps counts, times and the event flow."""
    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    linear_flow(flow)
    tracker = flow.execute("src", {"values": [1, 2]}).tracker
    again = ExecutionTracker.from_dict(json.loads(json.dumps(tracker.serialize())))
    for rid in ("src", "double", "relay", "sink"):
        assert again.get_routine_performance(rid) == tracker.get_routine_performance(rid)
    assert again.get_flow_performance() == tracker.get_flow_performance()
    assert again.get_event_flow() == tracker.get_event_flow()
    assert (again.flow_id, again.job_id) == (tracker.flow_id, tracker.job_id)


def test_each_job_has_its_own_tracker_named_after_it() -> None:
    """A job's tracker carries the job's and flow's ids and only its own calls."""
    flow = Flow(flow_id="f")
    linear_flow(flow)
    first = flow.execute("src", {"values": [1]})
    second = flow.execute("src", {"values": [1, 2]})
    assert (first.tracker.flow_id, first.tracker.job_id) == ("f", first.job_id)
    assert first.tracker.get_routine_performance("double")["total_executions"] == 1
    assert second.tracker.get_routine_performance("double")["total_executions"] == 2


def test_resumed_job_adds_to_its_tracker() -> None:
    """A failed-then-resumed job's tracker counts calls of both runs."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=1)
    chain(flow, ("flaky", flaky))
    job = flow.execute("flaky", {"x": 1})
    assert job.status == "failed"
    flow.resume(job)
    perf = job.tracker.get_routine_performance("flaky")
    assert (perf["total_executions"], perf["success_count"], perf["failure_count"]) == (2, 1, 1)
