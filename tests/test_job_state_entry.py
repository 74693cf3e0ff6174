"""``JobState.update_entry_params``: new entry parameters for a job not past its entry."""

from __future__ import annotations

from flowforge import Flow, JobState, JobStatus
from flowforge.testing import Collect, Double


def failed_at_entry() -> tuple[Flow, JobState]:
    """A flow whose entry, ``double``, was called without ``value``; the failed job."""
    flow = Flow(flow_id="entry")
    flow.add_routine(Double(), "double")
    flow.add_routine(Collect(), "sink")
    flow.connect("double", "out", "sink", "in")
    job = flow.execute("double", {})
    assert job.status == JobStatus.FAILED
    return flow, job


def test_new_params_reach_the_pending_entry_call() -> None:
    """The failed entry message gets the params; resuming calls the entry with them."""
    flow, job = failed_at_entry()
    assert job.update_entry_params({"value": 4}) is True
    assert job.entry == {"routine_id": "double", "slot": "in", "params": {"value": 4}}
    flow.resume(job)
    assert job.status == JobStatus.COMPLETED
    assert [r.data for r in job.get_execution_history("double")] == [{"value": 8}]


def test_nothing_changes_once_the_entry_has_run() -> None:
    """A job past its entry call: False, and the recorded params stay."""
    flow = Flow(flow_id="done")
    flow.add_routine(Double(), "double")
    job = flow.execute("double", {"value": 1})
    assert job.update_entry_params({"value": 2}) is False
    assert job.entry is not None and job.entry["params"] == {"value": 1}
