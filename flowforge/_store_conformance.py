"""The store conformance suite: what every :class:`~flowforge.store.Store` backend must do.

Published as :class:`flowforge.testing.StoreConformance`. It is a pytest test
class; a backend's test module subclasses it and provides a ``store``
fixture, and every test here then runs against that backend::

    import pytest
    from flowforge.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            with MyStore(tmp_path / "jobs") as store:
                yield store

        def reopen(self, store):
            return MyStore(store.directory)  # the same jobs, through a second store object

The suite checks the behaviour users rely on, through real flows: a job
saved and loaded back whole, atomic commits (every commit of a running job
resumes to exactly the result of an uninterrupted run), both durability
modes, pausing, cancelling and failing, resuming from the store, task
results, ``list_jobs`` filters, ``delete``, ``prune``, flow definitions, the
errors for unknown ids and for jobs that are running, closing, threads
sharing one store, and leases, control requests and the queue (``submit``,
``claim``). Tests with a second runner act for it through the backend
interface with another owner id, so they run on every backend.

Contract with the fixture: ``store`` yields an empty, open store with the
default durability settings, and closes it afterwards (closing twice must be
harmless). Tests that need other settings set the store's ``durability``,
``group_max`` and ``group_seconds`` attributes before using it; journaling is
the base class's work, so this exercises the backend's commits as the
constructor arguments would. :meth:`StoreConformance.reopen` opens a second
store object on the same storage; backends that keep nothing across objects
(memory) leave it returning ``None``, and the tests that need it are skipped.

Call ``pytest.register_assert_rewrite("flowforge._store_conformance")`` in
your ``conftest.py`` for pytest's detailed assertion messages.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from ._activation import current_activation
from .error_handler import ErrorHandler, ErrorStrategy
from .errors import JobStateError
from .flow import Flow
from .job_state import JobState, JobStatus, Message
from .routine import Routine
from .store import (
    Batch,
    FlowNotFoundError,
    JobNotFoundError,
    JobPage,
    JobSummary,
    LeaseHeldError,
    LeaseLostError,
    Store,
    StoreClosedError,
    StoreUsageError,
)
from .store._records import whole
from .testing import Collect, Double, Flaky, Relay, Source


class Halt(Routine):
    """Relays ``value``; pauses the job (or cancels it, config ``cancel``) at config ``at``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Stop the job on cue, then pass the value on."""
        if value == self.get_config("at"):
            if self.get_config("cancel", False):
                self.cancel_job("cancelled on cue")
            else:
                self.pause_job("paused on cue")
        self.emit("out", value=value)


class Gate(Routine):
    """Relays ``value``; at config ``at`` it signals ``reached`` and waits for ``opened``."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = threading.Event()
        self.opened = threading.Event()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Wait at the gate on cue, then pass the value on."""
        if value == self.get_config("at"):
            self.reached.set()
            self.opened.wait(30)
        self.emit("out", value=value)


class Peek(Routine):
    """At each call, notes how many of its own calls the store has committed."""

    def __init__(self) -> None:
        super().__init__()
        self.store: Store | None = None
        self.seen: list[int] = []
        self.define_slot("in", handler=self.peek)

    def peek(self, value: Any) -> None:
        """Load this job from the store and note its committed activations."""
        activation = current_activation()
        assert self.store is not None and activation is not None
        stored = self.store.load(activation.job_id)
        self.seen.append(stored.routine_states["peek"]["activations"])


class Emits(Routine):
    """Emits ``out(value=...)``: ``value`` as given, or an object (not JSON) if ``bad``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.send)
        self.define_event("out", ["value"])

    def send(self, value: Any, bad: bool = False) -> None:
        """Pass ``value`` on, or something no store can keep."""
        self.emit("out", value=object() if bad else value)


def comparable(job: JobState) -> dict[str, Any]:
    """``job.serialize()`` as JSON would give it back."""
    return dict(json.loads(json.dumps(job.serialize())))


def stream_flow(store: Store | None = None, flow_id: str = "stream") -> Flow:
    """``src -> double -> relay -> sink``: a stream through three routines."""
    flow = Flow(flow_id=flow_id, store=store)
    _chain(flow, ("src", Source()), ("double", Double()), ("relay", Relay()), ("sink", Collect()))
    return flow


def halting_flow(at: int | None, *, cancel: bool = False) -> Flow:
    """``src -> halt -> sink``; ``halt`` pauses (or cancels) the job at value ``at``."""
    flow = Flow(flow_id="halting")
    halt = Halt()
    halt.set_config(at=at, cancel=cancel)
    _chain(flow, ("src", Source()), ("halt", halt), ("sink", Collect()))
    return flow


def gated_flow(at: int) -> tuple[Flow, Gate, threading.Event]:
    """``src -> gate -> sink``, the gate, and an event set when the flow is asked to stop."""
    flow = Flow(flow_id="gated")
    gate = Gate()
    gate.set_config(at=at)
    _chain(flow, ("src", Source()), ("gate", gate), ("sink", Collect()))
    asked = threading.Event()
    for action in ("pause", "cancel"):
        original = getattr(flow, action)

        def spy(
            job: JobState | None = None, reason: str | None = None, act: Any = original
        ) -> None:
            asked.set()
            act(job, reason)

        setattr(flow, action, spy)
    return flow, gate, asked


def rival_acquires(store: Store, job: JobState, owner: str, expires_at: float) -> None:
    """Another runner (``owner``) takes the job's lease, as its ``begin`` would."""
    batch = whole(job, time.time())[0]
    batch.owner, batch.acquire, batch.expires_at = owner, True, expires_at
    store.write_batch(batch)


def set_durability(
    store: Store, durability: str, group_max: int = 10_000, group_seconds: float = 0.05
) -> Store:
    """Give an idle store other commit settings, as its constructor would."""
    store.durability = durability  # type: ignore[assignment]
    store.group_max = 1 if durability == "activation" else group_max
    store.group_seconds = group_seconds
    return store


def _chain(flow: Flow, *routines: tuple[str, Routine]) -> None:
    for rid, routine in routines:
        flow.add_routine(routine, rid)
    for (source, _), (target, _) in itertools.pairwise(routines):
        flow.connect(source, "out", target, "in")


def _outcome(job: JobState) -> dict[str, Any]:
    return {
        "status": str(job.status),
        "routine_states": job.routine_states,
        "slot_states": job.slot_states,
        "next_seq": job.next_seq,
        "history_total": job.history_total,
        "pending": len(job.pending),
    }


def _without_bulk(job: JobState) -> dict[str, Any]:
    data = comparable(job)
    for key in ("pending", "history", "skipped", "slot_states"):
        del data[key]
    del data["tracker"]["event_flow"]
    return data


class StoreConformance:
    """The tests every store backend passes; subclass it in a test module.

    Provide a ``store`` fixture yielding an empty, open store (see
    :mod:`flowforge._store_conformance` for the whole contract), and
    override :meth:`reopen` if the backend's jobs outlive a store object.
    """

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """The store under test: override this fixture in the subclass."""
        pytest.fail(f"{type(self).__name__} must define a 'store' fixture yielding an empty store")
        yield  # pragma: no cover

    def reopen(self, store: Store) -> Store | None:
        """A second store object on ``store``'s storage, or ``None`` if there is no such thing."""
        return None

    def _reopened(self, store: Store) -> Store:
        other = self.reopen(store)
        if other is None:
            pytest.skip(f"{type(store).__name__} keeps nothing across store objects")
        return other

    # -- saving and loading ----------------------------------------------------------

    def test_a_job_run_against_the_store_is_listed_completed(self, store: Store) -> None:
        """A job of a flow given the store is listed there, completed, nothing pending."""
        job = stream_flow(store).execute("src", {"values": [1, 2, 3]})
        (summary,) = store.list_jobs()
        assert isinstance(summary, JobSummary)
        assert (summary.job_id, summary.flow_id, summary.status, summary.pending) == (
            job.job_id,
            "stream",
            JobStatus.COMPLETED,
            0,
        )
        assert summary.started_at is not None and summary.finished_at is not None

    @pytest.mark.parametrize("durability", ["grouped", "activation"])
    def test_a_stream_loads_back_equal_to_the_job_in_memory(
        self, store: Store, durability: str
    ) -> None:
        """A stream through three routines, loaded back, equals the JobState that ran."""
        set_durability(store, durability, group_max=7)
        job = stream_flow(store).execute("src", {"values": list(range(40))})
        loaded = store.load(job.job_id)
        assert comparable(loaded) == comparable(job)
        assert loaded.routine_states["sink"]["stats"] == {"calls": 40}

    def test_errors_skips_and_history_load_back(self, store: Store) -> None:
        """load() gives back errors, skipped work, history and the tracker as they were."""
        flow = stream_flow(store)
        flaky = Flaky()
        flaky.set_config(fail_times=-1)
        flaky.set_error_handler(ErrorHandler(ErrorStrategy.SKIP))
        _chain(flow, ("flaky", flaky))
        flow.connect("relay", "out", "flaky", "in")
        job = flow.execute("src", {"values": [1, 2, 3]})
        assert job.errors and job.skipped and job.get_execution_history()
        assert comparable(store.load(job.job_id)) == comparable(job)

    def test_retention_bounds_what_is_stored_and_loaded(self, store: Store) -> None:
        """With a short retention, the loaded job keeps the same latest entries as in memory."""
        set_durability(store, "grouped", group_max=5)
        flow = Flow(flow_id="short", retention=3, store=store)
        _chain(flow, ("src", Source()), ("relay", Relay()), ("sink", Collect()))
        job = flow.execute("src", {"values": list(range(600))})
        loaded = store.load(job.job_id)
        assert loaded.history_dropped == job.history_dropped > 0
        assert comparable(loaded) == comparable(job)

    def test_a_loaded_job_shares_nothing_with_the_stored_one(self, store: Store) -> None:
        """Changing a loaded JobState does not change what the store holds."""
        job = stream_flow(store).execute("src", {"values": [1]})
        store.load(job.job_id).routine_states["sink"]["stats"]["calls"] = 99
        assert store.load(job.job_id).routine_states["sink"]["stats"]["calls"] == 1

    def test_pending_order_survives_even_when_not_in_seq_order(self, store: Store) -> None:
        """A pending queue out of seq order comes back in the same order."""
        job = JobState(flow_id="f")
        job.pending = deque(Message(seq, "r", "in", {"value": seq}) for seq in (5, 2, 9, 1))
        job.next_seq = 10
        store.begin(job)
        store.end(job)
        assert [m.seq for m in store.load(job.job_id).pending] == [5, 2, 9, 1]

    def test_save_stores_a_job_whole_and_replaces_it(self, store: Store) -> None:
        """save() stores a JobState that ran elsewhere, and replaces it when saved again."""
        job = stream_flow().execute("src", {"values": [1, 2]})
        store.save(job)
        assert comparable(store.load(job.job_id)) == comparable(job)
        job.reason = "archived"
        store.save(job)
        assert [s.reason for s in store.list_jobs()] == ["archived"]

    def test_unstorable_message_data_fails_the_job_and_keeps_the_last_commit(
        self, store: Store
    ) -> None:
        """Data that is not JSON fails the job at its step; the step itself is not stored."""
        set_durability(store, "activation")
        flow = Flow(flow_id="bad", store=store)
        _chain(flow, ("emits", Emits()), ("sink", Collect()))
        job = flow.execute("emits", {"value": 1, "bad": True})
        assert job.status == JobStatus.FAILED and job.error is not None
        assert "Routine 'emits' emitted 'out'" in job.error.message
        (summary,) = store.list_jobs()
        assert summary.status == JobStatus.FAILED
        assert store.load(summary.job_id).routine_states["emits"]["activations"] == 0

    # -- commits ------------------------------------------------------------------------

    def test_activation_durability_commits_each_step_before_the_next(self, store: Store) -> None:
        """With durability='activation' a handler sees every earlier call committed."""
        peek = self._peek_flow(set_durability(store, "activation"), [1, 2, 3, 4])
        assert peek.seen == [0, 1, 2, 3]

    def test_grouped_durability_commits_every_group_max_steps(self, store: Store) -> None:
        """A group is committed when it holds group_max steps, not before."""
        peek = self._peek_flow(set_durability(store, "grouped", 3, 3600), list(range(1, 8)))
        # Steps: src, then peek x7; groups of 3 commit after peek 2 and after peek 5.
        assert peek.seen == [0, 0, 2, 2, 2, 5, 5]

    @staticmethod
    def _peek_flow(store: Store, values: list[int]) -> Peek:
        flow = Flow(flow_id="peek", store=store)
        peek = Peek()
        peek.store = store
        _chain(flow, ("src", Source()), ("peek", peek))
        flow.execute("src", {"values": values})
        return peek

    @pytest.mark.parametrize("group_max", [1, 2, 5])
    def test_every_commit_resumes_to_the_uninterrupted_result(
        self, store: Store, group_max: int
    ) -> None:
        """What the store holds after any commit resumes to exactly an uninterrupted run."""
        expected = _outcome(stream_flow().execute("src", {"values": [3, 1, 4, 1, 5]}))
        snapshots: list[JobState] = []
        apply = store.write_batch

        def spy(batch: Batch) -> None:
            apply(batch)
            if not batch.replace:
                snapshots.append(store.load(batch.job_id))

        store.write_batch = spy  # type: ignore[method-assign]
        set_durability(store, "grouped", group_max, 3600)
        stream_flow(store).execute("src", {"values": [3, 1, 4, 1, 5]})
        assert snapshots
        for snapshot in snapshots:
            assert snapshot.status == JobStatus.RUNNING
            assert _outcome(stream_flow().resume(snapshot)) == expected

    # -- pausing, cancelling, failing, resuming -------------------------------------------

    def test_a_paused_job_resumes_from_the_store(self, store: Store) -> None:
        """A paused job is stored with its reason and pending work, and resumes to the end."""
        job = halting_flow(at=2).execute("src", {"values": [1, 2, 3, 4]}, store=store)
        assert job.status == JobStatus.PAUSED
        (summary,) = store.list_jobs(status="paused")
        assert (summary.reason, summary.pending) == ("paused on cue", 4)
        flow = halting_flow(at=None)
        resumed = flow.resume(store.load(summary.job_id), store=store)
        assert resumed.status == JobStatus.COMPLETED
        assert store.list_jobs()[0].status == JobStatus.COMPLETED
        assert flow.get_routine("sink").items == [{"value": v} for v in (1, 2, 3, 4)]  # type: ignore[union-attr]

    def test_a_paused_job_resumes_from_another_store_object(self, store: Store) -> None:
        """A job paused on one store object resumes from a second one on the same storage."""
        job = halting_flow(at=2).execute("src", {"values": [1, 2, 3]}, store=store)
        with self._reopened(store) as other:
            resumed = halting_flow(at=None).resume(other.load(job.job_id), store=other)
            assert resumed.status == JobStatus.COMPLETED
            assert resumed.routine_states["sink"]["stats"]["calls"] == 3
        assert store.list_jobs()[0].status == JobStatus.COMPLETED

    def test_a_cancelled_job_is_recorded_as_cancelled(self, store: Store) -> None:
        """Cancelling a job is recorded with its reason."""
        halting_flow(at=1, cancel=True).execute("src", {"values": [1, 2]}, store=store)
        (summary,) = store.list_jobs()
        assert (summary.status, summary.reason) == (JobStatus.CANCELLED, "cancelled on cue")

    def test_a_failed_job_is_recorded_and_resumes_from_the_store(self, store: Store) -> None:
        """A STOP failure is stored with its error; resuming it retries the message."""
        flow = Flow(flow_id="fails")
        _chain(flow, ("src", Source()), ("flaky", Flaky()), ("sink", Collect()))
        failed = flow.execute("src", {"values": [1, 2]}, store=store)
        stored = store.load(failed.job_id)
        assert stored.status == JobStatus.FAILED
        assert stored.error is not None and stored.error.error_type == "ValueError"
        done = flow.resume(stored, store=store)
        assert done.status == JobStatus.COMPLETED
        assert done.routine_states["sink"]["stats"]["calls"] == 2

    def test_task_results_survive_the_store_and_resume(self, store: Store) -> None:
        """Task statuses and results load back from the store, and a resumed job keeps them."""
        flow = Flow(flow_id="tasks")
        calls: list[str] = []
        broken = [True]

        def extract(n: int) -> dict[str, Any]:
            calls.append("extract")
            return {"rows": list(range(n)), "source": "s\u00e9"}

        def total(extract: dict[str, Any]) -> int:
            calls.append("total")
            if broken[0]:
                raise ValueError("not yet")
            return sum(extract["rows"])

        flow.task(extract)
        flow.task(total, depends_on=["extract"])

        failed = flow.execute(entry_params={"n": 4}, store=store)
        stored = store.load(failed.job_id)
        assert stored.status == JobStatus.FAILED
        assert stored.outputs == {"extract": {"rows": [0, 1, 2, 3], "source": "s\u00e9"}}
        assert stored.task_status("total") == "failed"
        broken[0] = False
        done = flow.resume(stored, store=store)
        assert done.status == JobStatus.COMPLETED
        assert store.load(done.job_id).outputs == {
            "extract": {"rows": [0, 1, 2, 3], "source": "s\u00e9"},
            "total": 6,
        }
        assert calls == ["extract", "total", "total"]

    # -- reading and housekeeping ------------------------------------------------------

    def test_list_jobs_filters_by_flow_and_status(self, store: Store) -> None:
        """list_jobs(flow_id=..., status=...) keeps the matching jobs, oldest first."""
        first = stream_flow(store, "one").execute("src", {"values": [1]})
        second = stream_flow(store, "two").execute("src", {"values": [1]})
        paused = halting_flow(at=1).execute("src", {"values": [1, 2]}, store=store)
        assert [s.job_id for s in store.list_jobs()] == [first.job_id, second.job_id, paused.job_id]
        assert [s.job_id for s in store.list_jobs(flow_id="two")] == [second.job_id]
        assert [s.job_id for s in store.list_jobs(status="paused")] == [paused.job_id]
        assert len(store.list_jobs(status=["paused", "completed"])) == 3
        assert store.list_jobs(flow_id="one", status=JobStatus.PAUSED) == []

    def test_page_jobs_pages_newest_first_with_the_total(self, store: Store) -> None:
        """page_jobs() is list_jobs() newest first (ties by id), cut to the page, with a total."""
        for job_id in ("b", "a", "c"):
            store.save(JobState(job_id=job_id, flow_id="one", created_at=1.0))
        paused = halting_flow(at=1).execute("src", {"values": [1, 2]}, store=store)
        newest = store.list_jobs()[::-1]
        assert [s.job_id for s in newest] == [paused.job_id, "c", "b", "a"]
        assert newest[0].pending > 0
        assert store.page_jobs(limit=2, offset=1) == JobPage(newest[1:3], 4)
        assert store.page_jobs(status=["paused", "queued"]) == JobPage(newest[:1], 1)
        assert store.page_jobs(flow_id="one", offset=2) == JobPage(newest[3:], 3)
        assert store.page_jobs(flow_id="one", offset=5) == JobPage([], 3)

    def test_page_jobs_refuses_an_empty_page(self, store: Store) -> None:
        """page_jobs(limit=0) raises StoreUsageError naming limit."""
        with pytest.raises(StoreUsageError, match="limit must be an int >= 1"):
            store.page_jobs(limit=0)

    def test_list_jobs_refuses_an_unknown_status(self, store: Store) -> None:
        """An unknown status raises StoreUsageError listing the real ones."""
        with pytest.raises(StoreUsageError, match=r"'finished'.*'completed'"):
            store.list_jobs(status="finished")

    def test_load_of_an_unknown_job_raises_job_not_found(self, store: Store) -> None:
        """load() of an id the store lacks raises JobNotFoundError, also a KeyError."""
        with pytest.raises(KeyError, match=r"no job 'nope'.*list_jobs") as caught:
            store.load("nope")
        assert isinstance(caught.value, JobNotFoundError)
        assert caught.value.job_id == "nope"

    def test_load_brief_equals_load_but_for_the_bulk(self, store: Store) -> None:
        """load_brief() gives the job load() gives, less pending messages, tails and slot states."""
        flow = halting_flow(at=5)
        flaky = Flaky()
        flaky.set_config(fail_times=-1)
        flaky.set_error_handler(ErrorHandler(ErrorStrategy.SKIP))
        _chain(flow, ("flaky", flaky))
        flow.connect("src", "out", "flaky", "in")
        job = flow.execute("src", {"values": [1, 2, 3, 4, 5, 6]}, store=store)
        full, brief = store.load(job.job_id), store.load_brief(job.job_id)
        assert job.status == JobStatus.PAUSED and job.errors and job.skipped
        assert brief.pending == len(full.pending) > 0
        assert not (brief.job.pending or brief.job.get_execution_history() or brief.job.skipped)
        assert _without_bulk(brief.job) == _without_bulk(full)

    def test_load_brief_keeps_task_outputs(self, store: Store) -> None:
        """load_brief() gives the task runs and outputs of a job of tasks."""
        flow = Flow(flow_id="tasks")
        flow.task(lambda n: list(range(n)), name="rows")
        job = flow.execute(entry_params={"n": 3}, store=store)
        brief = store.load_brief(job.job_id).job
        assert (brief.outputs, brief.task_status("rows")) == ({"rows": [0, 1, 2]}, "succeeded")

    def test_load_brief_of_an_unknown_job_raises_job_not_found(self, store: Store) -> None:
        """load_brief() of an id the store lacks raises JobNotFoundError."""
        with pytest.raises(JobNotFoundError, match=r"no job 'nope'"):
            store.load_brief("nope")

    def test_load_takes_a_string_id(self, store: Store) -> None:
        """load() with something other than a string id raises TypeError."""
        with pytest.raises(TypeError, match="job_id must be a non-empty string"):
            store.load(42)  # type: ignore[arg-type]

    def test_delete_forgets_the_job(self, store: Store) -> None:
        """delete() removes the job; deleting it again raises JobNotFoundError."""
        job = stream_flow(store).execute("src", {"values": [1]})
        store.delete(job.job_id)
        assert store.list_jobs() == []
        with pytest.raises(JobNotFoundError):
            store.load(job.job_id)
        with pytest.raises(JobNotFoundError, match="Cannot delete job"):
            store.delete(job.job_id)

    def test_prune_drops_finished_jobs_older_than_the_age(self, store: Store) -> None:
        """prune() deletes completed, failed and cancelled jobs older than given; keeps the rest."""
        stream_flow(store).execute("src", {"values": [1]})
        halting_flow(at=1, cancel=True).execute("src", {"values": [1]}, store=store)
        paused = halting_flow(at=1).execute("src", {"values": [1, 2]}, store=store)
        assert store.prune(older_than=datetime.timedelta(hours=1)) == 0
        assert store.prune(older_than=0) == 2
        assert [s.job_id for s in store.list_jobs()] == [paused.job_id]
        assert store.prune(0, statuses=["paused"]) == 1
        assert store.list_jobs() == []

    def test_prune_keeps_a_job_running_against_the_store(self, store: Store) -> None:
        """prune() never deletes a job that is running against the store."""
        job = JobState(flow_id="f", status=JobStatus.RUNNING)
        store.begin(job)
        assert store.prune(0, statuses=["running"]) == 0
        store.end(job)
        assert store.prune(0, statuses=["running"]) == 1

    def test_a_running_job_cannot_be_deleted_saved_or_begun_twice(self, store: Store) -> None:
        """While a job runs against the store, delete/save/begin/close raise JobStateError."""
        job = JobState(flow_id="f", status=JobStatus.RUNNING)
        store.begin(job)
        with pytest.raises(JobStateError, match="already running"):
            store.begin(job)
        with pytest.raises(JobStateError, match="Cannot delete"):
            store.delete(job.job_id)
        with pytest.raises(JobStateError, match="Cannot save job"):
            store.save(job)
        with pytest.raises(JobStateError, match="still run"):
            store.close()
        store.end(job)
        store.delete(job.job_id)

    def test_ending_a_copy_of_a_running_job_leaves_the_store_alone(self, store: Store) -> None:
        """end() with another JobState of a running job's id does not overwrite it."""
        running = JobState(flow_id="f", status=JobStatus.RUNNING)
        store.begin(running)
        copy = JobState.from_dict(running.serialize())
        copy.status = JobStatus.COMPLETED
        store.end(copy)
        assert [s.status for s in store.list_jobs()] == [JobStatus.RUNNING]
        store.end(running)

    def test_a_job_deleted_while_it_runs_stops_with_job_not_found(self, store: Store) -> None:
        """Commits for a job deleted by another store object raise JobNotFoundError."""
        set_durability(store, "activation")
        job = JobState(flow_id="f", status=JobStatus.RUNNING)
        with self._reopened(store) as other:
            store.begin(job)
            # delete() refuses a leased job; the backend's own removal goes around that.
            other.remove_job(job.job_id)
        with pytest.raises(JobNotFoundError, match="deleted"):
            store.step(job, [], [], None, None)
        with pytest.raises(JobNotFoundError, match="deleted"):
            store.end(job)
        assert store.list_jobs() == []

    def test_a_closed_store_refuses_to_be_used(self, store: Store) -> None:
        """After close() (twice is fine) every call raises StoreClosedError."""
        store.close()
        store.close()
        with pytest.raises(StoreClosedError, match="closed"):
            store.list_jobs()
        with pytest.raises(StoreClosedError):
            stream_flow(store).execute("src", {"values": [1]})

    # -- flow definitions ----------------------------------------------------------------

    def test_a_saved_flow_loads_back(self, store: Store) -> None:
        """save_flow() then load_flow() rebuilds the flow: routines, config, connections."""
        flow = stream_flow()
        flow.get_routine("double").set_config(factor=3)  # type: ignore[union-attr]
        store.save_flow(flow)
        assert store.load_flow("stream").serialize() == flow.serialize()
        flow.get_routine("double").set_config(factor=4)  # type: ignore[union-attr]
        store.save_flow(flow)
        assert store.load_flow("stream").serialize() == flow.serialize()

    def test_a_job_leaves_its_flows_definition_in_the_store(self, store: Store) -> None:
        """Running a job against the store saves its flow's definition as it started."""
        flow = stream_flow(store)
        started = flow.serialize()
        flow.execute("src", {"values": [1]})
        assert store.load_flow("stream").serialize() == started

    def test_load_flow_of_an_unknown_flow_raises_flow_not_found(self, store: Store) -> None:
        """load_flow() of a flow never saved raises FlowNotFoundError, also a KeyError."""
        with pytest.raises(KeyError, match="no saved flow 'ghost'") as caught:
            store.load_flow("ghost")
        assert isinstance(caught.value, FlowNotFoundError)

    # -- sharing ------------------------------------------------------------------------

    def test_jobs_outlive_the_store_object(self, store: Store) -> None:
        """A second store object on the same storage sees the jobs and flows of the first."""
        job = stream_flow(store).execute("src", {"values": [1, 2]})
        with self._reopened(store) as other:
            assert [s.job_id for s in other.list_jobs()] == [job.job_id]
            assert comparable(other.load(job.job_id)) == comparable(job)
            assert other.load_flow("stream").serialize() == stream_flow().serialize()

    def test_threads_running_jobs_against_one_store_lose_nothing(self, store: Store) -> None:
        """Jobs run by several threads at once against one store are all stored whole."""
        set_durability(store, "grouped", group_max=4)
        jobs: list[JobState] = []
        lock = threading.Lock()

        def run() -> None:
            job = stream_flow(store).execute("src", {"values": list(range(30))})
            with lock:
                jobs.append(job)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(jobs) == 4
        for job in jobs:
            assert comparable(store.load(job.job_id)) == comparable(job)
            assert job.routine_states["sink"]["stats"] == {"calls": 30}

    # -- leases, control requests, the queue -------------------------------------------

    def test_a_running_job_holds_a_lease_in_its_runners_name(self, store: Store) -> None:
        """begin takes the job's lease for store.owner; end releases it."""
        job = JobState(flow_id="f", status=JobStatus.RUNNING)
        store.begin(job)
        lease = store.lease(job.job_id)
        assert lease is not None and lease.owner == store.owner and lease.live()
        assert lease.expires_at > lease.heartbeat_at >= lease.since
        store.end(job)
        assert store.lease(job.job_id) is None

    def test_beginning_a_job_another_runner_holds_is_refused_naming_the_owner(
        self, store: Store
    ) -> None:
        """A live lease of another owner refuses begin with LeaseHeldError naming it."""
        job = JobState(flow_id="f", status=JobStatus.PAUSED)
        store.save(job)
        rival_acquires(store, job, "elsewhere:1:abc", time.time() + 60)
        with pytest.raises(LeaseHeldError, match="elsewhere:1:abc") as caught:
            store.begin(store.load(job.job_id))
        assert isinstance(caught.value, JobStateError)
        assert caught.value.owner == "elsewhere:1:abc" and caught.value.job_id == job.job_id
        with pytest.raises(LeaseHeldError):
            store.delete(job.job_id)
        assert store.load(job.job_id).status == JobStatus.PAUSED

    def test_a_lapsed_lease_lets_another_runner_resume_the_job(self, store: Store) -> None:
        """Once a dead owner's lease has expired, the job resumes with a new owner."""
        flow = halting_flow(at=2)
        job = flow.execute("src", {"values": [1, 2, 3]}, store=store)
        rival_acquires(store, job, "dead:1:abc", time.time() - 1)
        assert store.lease(job.job_id).owner == "dead:1:abc"  # type: ignore[union-attr]
        resumed = halting_flow(at=None).resume(store.load(job.job_id), store=store)
        assert resumed.status == JobStatus.COMPLETED
        assert store.lease(job.job_id) is None

    def test_a_runner_that_lost_its_lease_cannot_commit(self, store: Store) -> None:
        """After a takeover, the first runner's commits raise LeaseLostError."""
        set_durability(store, "activation")
        job = JobState(flow_id="f", status=JobStatus.RUNNING)
        store.begin(job)
        store._keeper.unwatch(job.job_id)  # its heartbeat stops (a frozen process)
        store.release(job.job_id)
        rival_acquires(store, job, "new:1:abc", time.time() + 60)
        with pytest.raises(LeaseLostError, match="new:1:abc"):
            store.step(job, [], [], None, None)
        with pytest.raises(LeaseLostError):
            store.end(job)
        assert store.lease(job.job_id).owner == "new:1:abc"  # type: ignore[union-attr]

    @pytest.mark.parametrize("action", ["pause", "cancel"])
    def test_a_control_request_through_the_store_stops_the_running_job(
        self, store: Store, action: str
    ) -> None:
        """request_pause/request_cancel reach the job's runner, which stops it."""
        flow, gate, asked = gated_flow(at=1)
        job = JobState(flow_id="gated")
        runner = threading.Thread(
            target=flow.execute, args=("src", {"values": [1, 2, 3]}), kwargs={"job_state": job}
        )
        flow.store = store
        runner.start()
        try:
            assert gate.reached.wait(30)
            other = self.reopen(store) or store
            with contextlib.ExitStack() as stack:
                if other is not store:
                    stack.enter_context(other)
                assert getattr(other, f"request_{action}")(job.job_id, "from afar") is True
            assert asked.wait(30)
        finally:
            gate.opened.set()
            runner.join(30)
        stored = store.load(job.job_id)
        expected = JobStatus.PAUSED if action == "pause" else JobStatus.CANCELLED
        assert (stored.status, stored.reason) == (expected, "from afar")
        assert store.lease(job.job_id) is None

    def test_a_job_that_runs_nowhere_is_paused_or_cancelled_in_the_store(
        self, store: Store
    ) -> None:
        """Without a live lease the request changes the stored job; finished ones refuse."""
        flow = halting_flow(at=None)
        queued = flow.submit({"values": [1]}, entry_routine_id="src", store=store)
        assert store.request_pause(queued.job_id, "hold on") is False
        assert (store.load(queued.job_id).status, store.list_jobs()[0].reason) == (
            JobStatus.PAUSED,
            "hold on",
        )
        with pytest.raises(JobStateError, match="paused"):
            store.request_pause(queued.job_id)
        assert store.request_cancel(queued.job_id) is False
        assert store.load(queued.job_id).status == JobStatus.CANCELLED
        with pytest.raises(JobStateError, match="cancelled"):
            store.request_cancel(queued.job_id)
        with pytest.raises(JobNotFoundError):
            store.request_pause("no-such-job")

    def test_a_submitted_job_is_queued_claimed_once_and_runs(self, store: Store) -> None:
        """submit stores a queued job; claim leases it to one runner; it runs to the end."""
        job = stream_flow().submit({"values": [1, 2]}, entry_routine_id="src", store=store)
        assert [s.status for s in store.list_jobs()] == [JobStatus.QUEUED]
        claimed = store.claim()
        assert claimed is not None and claimed.job_id == job.job_id
        assert store.lease(job.job_id).owner == store.owner  # type: ignore[union-attr]
        assert store.claim_queued("rival:1:abc", time.time(), time.time() + 60) is None
        flow = store.load_flow("stream", allowed_modules=["flowforge.testing"])
        done = flow.resume(claimed, store=store)
        assert done.status == JobStatus.COMPLETED
        assert flow.get_routine("sink").items == [{"value": 2}, {"value": 4}]  # type: ignore[union-attr]
        assert store.claim() is None and store.lease(job.job_id) is None

    def test_submitting_an_id_the_store_has_is_refused(self, store: Store) -> None:
        """submit never replaces a stored job."""
        job = stream_flow().submit({"values": [1]}, entry_routine_id="src", store=store)
        with pytest.raises(JobStateError, match="already has"):
            stream_flow().submit(
                {"values": [2]},
                entry_routine_id="src",
                store=store,
                job_state=JobState(job_id=job.job_id),
            )

    def test_a_queued_job_whose_runner_died_is_claimed_again(self, store: Store) -> None:
        """A claimed job left running with a lapsed lease goes to the next claim."""
        stream_flow().submit({"values": [1]}, entry_routine_id="src", store=store)
        job = store.claim()
        assert job is not None
        job.status = JobStatus.RUNNING
        store.begin(job)
        assert store.claim_queued("rival:1:abc", time.time(), time.time() + 60) is None
        store._keeper.unwatch(job.job_id)  # its heartbeat stops and the lease lapses
        store.release(job.job_id)
        assert store.claim_queued("rival:1:abc", time.time(), time.time() + 60) == job.job_id
        with pytest.raises(LeaseLostError):
            store.end(job)

    def test_concurrent_claims_never_share_a_job(self, store: Store) -> None:
        """Threads claiming with different owners get every queued job exactly once."""
        ids = {
            stream_flow().submit({"values": [i]}, entry_routine_id="src", store=store).job_id
            for i in range(12)
        }
        got: list[str] = []

        def claim(owner: str) -> None:
            while (job_id := store.claim_queued(owner, time.time(), time.time() + 60)) is not None:
                got.append(job_id)

        threads = [threading.Thread(target=claim, args=(f"w{i}:1:x",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(got) == sorted(ids)
