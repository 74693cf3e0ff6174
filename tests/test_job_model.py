"""The job model against stores and resume: data a store cannot keep, store failures,
elapsed time, and hand-edited JobStates."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import chain

from flowforge import Flow, JobState, JobStateError, JobStatus, Routine, UnstorableDataError
from flowforge.store import MemoryStore, SQLiteStore, Store, StoreError
from flowforge.store._records import Batch
from flowforge.testing import Collect, Double, Source


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """A factory of stores (``kind`` is ``"memory"`` or ``"sqlite"``), closed at the end."""
    made: list[Store] = []

    def make(kind: str, **options: Any) -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore(**options)
        else:
            store = SQLiteStore(tmp_path / f"jobs{len(made)}.db", **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per store kind."""
    return str(request.param)


class Stamp(Routine):
    """Relays ``value``; at config ``at`` it emits a ``datetime`` instead."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.stamp)
        self.define_event("out", ["value"])

    def stamp(self, value: Any) -> None:
        """Pass the value on, or a datetime on cue."""
        bad = value == self.get_config("at")
        self.emit("out", value=datetime.datetime(2024, 1, 1) if bad else value)


def stamping_flow(store: Store) -> tuple[Flow, Collect]:
    """``src -> stamp -> sink``; stamp emits a datetime for value 3."""
    flow = Flow(flow_id="stamping", store=store)
    stamp = Stamp()
    stamp.set_config(at=3)
    sink = Collect()
    chain(flow, ("src", Source()), ("stamp", stamp), ("sink", sink))
    return flow, sink


# -- data a store cannot keep -----------------------------------------------------------


@pytest.mark.parametrize("durability", ["grouped", "activation"])
def test_unstorable_data_fails_the_job_at_the_step_that_produced_it(
    make_store: Callable[..., Store], kind: str, durability: str
) -> None:
    """A datetime emitted with a store: execute() returns the job failed at that call,
    naming routine and event; nothing after it ran; the store says failed."""
    store = make_store(kind, durability=durability)
    flow, sink = stamping_flow(store)
    job = flow.execute("src", {"values": [1, 2, 3, 4, 5]})
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.error_type == "UnstorableDataError"
    assert (job.error.routine_id, job.error.strategy) == ("stamp", "stop")
    assert "Routine 'stamp' emitted 'out'" in job.error.message
    assert "datetime" in job.error.message
    assert job.runs["stamp"].activations == 2
    assert [m.data["value"] for m in job.pending if m.routine_id == "stamp"] == [3, 4, 5]
    assert len(sink.items) + len([m for m in job.pending if m.routine_id == "sink"]) == 2
    stored = store.load(job.job_id)
    assert stored.status == JobStatus.FAILED
    assert store.list_jobs()[0].status == JobStatus.FAILED


def test_after_fixing_the_cause_the_stored_job_resumes_exactly_once(
    make_store: Callable[..., Store], kind: str
) -> None:
    """The job as stored after the refusal resumes, once the routine is fixed, and every
    item reaches the sink exactly once."""
    store = make_store(kind)
    flow, _ = stamping_flow(store)
    failed = flow.execute("src", {"values": [1, 2, 3, 4, 5]})
    fixed, sink = stamping_flow(store)
    fixed.get_routine("stamp").set_config(at=None)  # type: ignore[union-attr]
    done = fixed.resume(store.load(failed.job_id))
    assert done.status == JobStatus.COMPLETED
    assert sorted(item["value"] for item in sink.items) == [1, 2, 3, 4, 5]
    assert done.runs["stamp"].activations == 5
    assert done.runs["sink"].activations == 5


def test_unstorable_data_fails_the_job_whatever_its_strategy(
    make_store: Callable[..., Store],
) -> None:
    """Under CONTINUE, unstorable data still stops the job: retrying would not help."""
    from flowforge import ErrorHandler, ErrorStrategy

    flow, _ = stamping_flow(make_store("memory"))
    flow.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    job = flow.execute("src", {"values": [3, 4]})
    assert job.status == JobStatus.FAILED
    assert job.pending[0].data == {"value": 3}
    assert job.runs["stamp"].continued == 0


def test_counters_a_store_cannot_keep_fail_the_call_naming_the_routine(
    make_store: Callable[..., Store],
) -> None:
    """A handler that puts a datetime in self._stats fails its job at that call."""

    class Dated(Double):
        def double(self, value: Any) -> None:
            self._stats["last"] = datetime.datetime(2024, 1, 1)
            super().double(value)

    flow = Flow(flow_id="dated", store=make_store("memory"))
    flow.add_routine(Dated(), "dated")
    job = flow.execute("dated", {"value": 1})
    assert job.status == JobStatus.FAILED and job.error is not None
    assert "Routine 'dated' set counters" in job.error.message
    assert isinstance(UnstorableDataError("x", routine_id="r", event=None), ValueError)


def test_without_a_store_the_same_data_runs() -> None:
    """Only a store needs JSON: without one, the datetime is delivered."""
    flow = Flow(flow_id="stamping")
    stamp = Stamp()
    stamp.set_config(at=3)
    sink = Collect()
    chain(flow, ("src", Source()), ("stamp", stamp), ("sink", sink))
    assert flow.execute("src", {"values": [3]}).status == JobStatus.COMPLETED


# -- store failures ------------------------------------------------------------------------


class FailingStore(MemoryStore):
    """A memory store whose commits fail from the ``fail_at``-th on (``heal`` after ``fails``)."""

    def __init__(self, fail_at: int, fails: int = 10**9, **options: Any) -> None:
        super().__init__(**options)
        self.applied = 0
        self.fail_at = fail_at
        self.fails = fails

    def write_batch(self, batch: Batch) -> None:
        self.applied += 1
        if self.fail_at <= self.applied < self.fail_at + self.fails:
            raise StoreError("disk on fire", path="")
        super().write_batch(batch)


@pytest.mark.parametrize("options", [{"durability": "activation"}, {"group_max": 2}])
def test_a_store_error_mid_job_ends_it_failed_in_memory_and_in_the_store(
    options: dict[str, Any],
) -> None:
    """A commit that fails stops the job failed; the store records that it failed."""
    store = FailingStore(fail_at=3, fails=1, **options)
    flow = Flow(flow_id="f", store=store)
    chain(flow, ("src", Source()), ("double", Double()), ("sink", Collect()))
    job = flow.execute("src", {"values": [1, 2, 3, 4]})
    assert job.status == JobStatus.FAILED and job.error is not None
    assert "disk on fire" in job.error.message
    assert store.list_jobs()[0].status == JobStatus.FAILED
    assert store.load(job.job_id).status == JobStatus.FAILED


def test_a_dead_store_fails_the_job_and_execute_returns_it() -> None:
    """When even the final commit fails, execute() returns the job failed, naming why."""
    store = FailingStore(fail_at=2, durability="activation")
    flow = Flow(flow_id="f", store=store)
    chain(flow, ("src", Source()), ("double", Double()))
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == JobStatus.FAILED
    assert "disk on fire" in str(job.reason)
    assert job.finished_at is not None


# -- elapsed time ---------------------------------------------------------------------------


class PeekElapsed(Routine):
    """Records, at each call, the elapsed time of its job as stored."""

    def __init__(self) -> None:
        super().__init__()
        self.store: Store | None = None
        self.seen: list[float] = []
        self.define_slot("in", handler=self.peek)

    def peek(self, value: Any) -> None:
        """Read the job back from the store."""
        assert self.store is not None
        (summary,) = self.store.list_jobs()
        self.seen.append(self.store.load(summary.job_id).tracker.elapsed)


@pytest.mark.parametrize("options", [{"durability": "activation"}, {"group_max": 2}])
def test_commits_save_the_time_spent_so_far(options: dict[str, Any]) -> None:
    """A job committed mid-run shows the time it ran until then (not 0.00 s)."""
    store = MemoryStore(**options)
    flow = Flow(flow_id="f", store=store)
    peek = PeekElapsed()
    peek.store = store
    chain(flow, ("src", Source()), ("double", Double()), ("peek", peek))
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert peek.seen[-1] > 0
    assert peek.seen == sorted(peek.seen)
    assert job.tracker.elapsed >= peek.seen[-1]


def test_elapsed_adds_up_over_a_pause_and_a_resume() -> None:
    """The resumed run adds its time to what the first run spent."""
    flow = Flow(flow_id="f")
    chain(flow, ("src", Source()), ("double", Double()))
    job = flow.execute("src", {"values": [1]})
    first = job.tracker.elapsed
    job.status = JobStatus.PAUSED
    job.queue("double", "in", {"value": 2})
    flow.resume(job)
    assert job.tracker.elapsed > first


# -- hand-edited JobStates ---------------------------------------------------------------------


def paused_job() -> tuple[Flow, JobState]:
    """A flow and a job of it paused with two messages pending."""
    flow = Flow(flow_id="f")
    chain(flow, ("src", Source()), ("double", Double()), ("sink", Collect()))
    job = flow.execute("src", {"values": [1]})
    job.status = JobStatus.PAUSED
    job.queue("double", "in", {"value": 2})
    job.queue("double", "in", {"value": 3})
    return flow, job


def test_resume_refuses_a_duplicated_pending_message() -> None:
    """A pending message there twice would be delivered twice: resume refuses."""
    flow, job = paused_job()
    job.pending.append(job.pending[0])
    with pytest.raises(JobStateError, match="twice"):
        flow.resume(job)


def test_resume_refuses_a_lowered_next_seq() -> None:
    """next_seq at or below a pending seq would repeat activation ids: resume refuses."""
    flow, job = paused_job()
    job.next_seq = 1
    with pytest.raises(JobStateError, match="next_seq"):
        flow.resume(job)


def test_resume_lists_every_problem_against_the_flow() -> None:
    """Unknown routines and slots in runs, slot states and pending: all in one error."""
    flow, job = paused_job()
    job.update_routine_state("ghost", {"activations": 1})
    job.slot_states["sink.nope"] = {"x": [1]}
    job.queue("double", "nope", {"value": 4})
    with pytest.raises(JobStateError) as caught:
        flow.resume(job)
    message = str(caught.value)
    assert "'double.nope'" in message and "'ghost'" in message and "'sink.nope'" in message


def test_resume_refuses_a_job_that_never_started() -> None:
    """A fresh JobState has nothing to resume: resume says to execute it instead."""
    flow, _ = paused_job()
    with pytest.raises(JobStateError, match=r"never started.*flow\.execute"):
        flow.resume(JobState(flow_id="f"))


def test_a_hand_edited_document_is_refused_at_load() -> None:
    """A saved job with a duplicated pending message or a bad count does not load."""
    from flowforge import SerializationError

    _, job = paused_job()
    data = job.serialize()
    data["pending"].append(data["pending"][0])
    data["routines"]["double"]["run"]["activations"] = "abc"
    with pytest.raises(SerializationError, match="activations"):
        JobState.from_dict(data)
    data["routines"]["double"]["run"]["activations"] = 1
    with pytest.raises(SerializationError, match="twice"):
        JobState.from_dict(data)


def test_a_job_stored_in_the_version_1_format_still_loads() -> None:
    """A stored record with a version 1 header and flat routine rows loads into runs."""
    from flowforge.store._records import JobRecord, assemble

    header = JobState(flow_id="f").header_data()
    header["version"] = 1
    record = JobRecord(
        json.dumps(header),
        None,
        [],
        [("double", json.dumps({"status": "completed", "activations": 2, "stats": {"calls": 2}}))],
        [],
        [],
    )
    job = assemble(record)
    assert job.runs["double"].activations == 2
    assert job.get_routine_state("double") == {
        "status": "completed",
        "activations": 2,
        "stats": {"calls": 2},
    }


def test_a_tracker_with_negative_counts_does_not_load() -> None:
    """A hand-edited tracker with negative calls is refused, naming the routine."""
    from flowforge import SerializationError

    data = JobState().serialize()
    data["tracker"]["routines"] = {
        "r": {
            "calls": -1,
            "successes": 0,
            "failures": 0,
            "total_time": 0.0,
            "min_time": 0.0,
            "max_time": 0.0,
        }
    }
    with pytest.raises(SerializationError, match=r"r\.calls"):
        JobState.from_dict(data)
