"""Stores: checkpointing jobs, loading and resuming them, housekeeping, bad files.

Most tests run against both :class:`SQLiteStore` and :class:`MemoryStore`.
Crashes of a real process are in ``test_crash_resume.py``; here a crash is
simulated by taking what a store holds at each commit and resuming that in
a fresh flow, which must end exactly like an uninterrupted run.
"""

from __future__ import annotations

import datetime
import inspect
import json
import sqlite3
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AppendCollect, Gate, chain, linear_flow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    Flow,
    FlowForgeError,
    JobState,
    JobStateError,
    JobStatus,
    Message,
)
from flowforge._store_conformance import Emits, Peek, comparable, halting_flow
from flowforge.runtime.scheduler import Journal
from flowforge.store import (
    CorruptStoreError,
    FlowNotFoundError,
    JobNotFoundError,
    JobSummary,
    MemoryStore,
    NotAStoreError,
    SQLiteStore,
    Store,
    StoreAccessError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreUsageError,
    StoreVersionError,
    _records,
    sqlite,
)
from flowforge.testing import Collect, Double, Flaky, Join, Relay, Source

KINDS = ("memory", "sqlite")


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """A factory of stores (``kind`` is ``"memory"`` or ``"sqlite"``), closed at the end."""
    made: list[Store] = []

    def make(kind: str = "sqlite", **options: Any) -> Store:
        if kind == "memory":
            store: Store = MemoryStore(**options)
        else:
            store = SQLiteStore(tmp_path / options.pop("name", "jobs.db"), **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per store kind."""
    return str(request.param)


def plain_flow(store: Store | None = None, flow_id: str = "plain") -> Flow:
    """``src -> double -> relay -> sink`` (the sink collects)."""
    flow = Flow(flow_id=flow_id, store=store)
    linear_flow(flow)
    return flow


def stats(job: JobState) -> dict[str, Any]:
    """Each routine's counters in ``job``."""
    return {rid: state["stats"] for rid, state in job.routine_states.items()}


def peek_flow(store: Store) -> tuple[Flow, Peek]:
    """``src -> peek``; ``peek`` reads its own job from ``store`` at every call."""
    flow = Flow(flow_id="peek", store=store)
    peek = Peek()
    peek.store = store
    chain(flow, ("src", Source()), ("peek", peek))
    return flow, peek


# -- attaching a store -------------------------------------------------------------


def test_flow_with_a_store_checkpoints_its_jobs(
    make_store: Callable[..., Store], kind: str
) -> None:
    """A job of a flow given store= is listed there, completed, with nothing pending."""
    store = make_store(kind)
    job = plain_flow(store).execute("src", {"values": [1, 2, 3]})
    (summary,) = store.list_jobs()
    assert isinstance(summary, JobSummary)
    assert (summary.job_id, summary.flow_id, summary.status, summary.pending) == (
        job.job_id,
        "plain",
        JobStatus.COMPLETED,
        0,
    )
    assert summary.finished_at is not None


def test_store_given_to_execute_wins_over_the_flows(make_store: Callable[..., Store]) -> None:
    """flow.execute(store=...) checkpoints there, not in the flow's own store."""
    own, other = make_store("memory"), make_store("memory")
    plain_flow(own).execute("src", {"values": [1]}, store=other)
    assert own.list_jobs() == []
    assert len(other.list_jobs()) == 1


def test_loaded_job_equals_the_job_in_memory(make_store: Callable[..., Store], kind: str) -> None:
    """load() gives back the whole JobState: pending, states, history, errors, skips, tracker."""
    store = make_store(kind)
    flow = plain_flow(store)
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flaky.set_error_handler(ErrorHandler(ErrorStrategy.SKIP))
    chain(flow, ("flaky", flaky))
    flow.connect("relay", "out", "flaky", "in")
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert job.errors and job.skipped and job.get_execution_history()
    assert comparable(store.load(job.job_id)) == comparable(job)


def test_retention_bounds_what_is_stored_and_loaded(
    make_store: Callable[..., Store], kind: str
) -> None:
    """With a short retention, the loaded job keeps the same latest entries as in memory."""
    store = make_store(kind, durability="activation")
    flow = Flow(flow_id="short", retention=3, store=store)
    linear_flow(flow)
    job = flow.execute("src", {"values": list(range(300))})
    loaded = store.load(job.job_id)
    assert loaded.history_dropped == job.history_dropped > 0
    assert comparable(loaded) == comparable(job)


def test_loaded_job_shares_nothing_with_the_stored_one(
    make_store: Callable[..., Store], kind: str
) -> None:
    """Changing a loaded JobState does not change what the store holds."""
    store = make_store(kind)
    job = plain_flow(store).execute("src", {"values": [1]})
    store.load(job.job_id).routine_states["sink"]["stats"]["calls"] = 99
    assert store.load(job.job_id).routine_states["sink"]["stats"]["calls"] == 1


def test_pending_order_survives_even_when_not_in_seq_order(
    make_store: Callable[..., Store], kind: str
) -> None:
    """A pending queue out of seq order comes back in the same order."""
    store = make_store(kind)
    job = JobState(flow_id="f")
    job.pending = deque(Message(seq, "r", "in", {"value": seq}) for seq in (5, 2, 9, 1))
    job.next_seq = 10
    store.begin(job)
    store.end(job)
    assert [m.seq for m in store.load(job.job_id).pending] == [5, 2, 9, 1]


def test_message_data_that_is_not_json_stops_the_job_with_a_clear_error(
    make_store: Callable[..., Store], kind: str
) -> None:
    """Unstorable data fails the job at its step, naming routine and event; last commit stays."""
    store = make_store(kind, durability="activation")
    flow = Flow(flow_id="bad", store=store)
    chain(flow, ("emits", Emits()), ("sink", Collect()))
    job = flow.execute("emits", {"value": 1, "bad": True})
    assert job.status == JobStatus.FAILED and job.error is not None
    assert "Routine 'emits' emitted 'out'" in job.error.message
    (summary,) = store.list_jobs()
    assert summary.status == JobStatus.FAILED
    assert store.load(summary.job_id).routine_states["emits"]["activations"] == 0


# -- durability ---------------------------------------------------------------------


def test_activation_durability_commits_each_step_before_the_next(
    make_store: Callable[..., Store], kind: str
) -> None:
    """With durability='activation' a handler sees every earlier call committed."""
    flow, peek = peek_flow(make_store(kind, durability="activation"))
    flow.execute("src", {"values": [1, 2, 3, 4]})
    assert peek.seen == [0, 1, 2, 3]


def test_grouped_durability_commits_every_group_max_steps(
    make_store: Callable[..., Store], kind: str
) -> None:
    """A group is committed when it holds group_max steps (and not before, given time)."""
    flow, peek = peek_flow(make_store(kind, group_max=3, group_seconds=3600))
    flow.execute("src", {"values": [1, 2, 3, 4, 5, 6, 7]})
    # Steps: src, then peek x7; groups of 3 commit after peek 2 and after peek 5.
    assert peek.seen == [0, 0, 2, 2, 2, 5, 5]


def test_grouped_durability_commits_an_old_group_at_the_next_step(
    make_store: Callable[..., Store], kind: str
) -> None:
    """A group open for group_seconds is committed at its next step."""
    flow, peek = peek_flow(make_store(kind, group_max=1000, group_seconds=0))
    flow.execute("src", {"values": [1, 2, 3, 4, 5]})
    # A group opens at one step and, already old enough, commits at the next.
    assert peek.seen == [0, 1, 1, 3, 3]


def test_a_message_made_and_consumed_in_one_group_is_never_written(
    make_store: Callable[..., Store],
) -> None:
    """Grouped commits cancel out a message produced and delivered between two commits."""
    batches: list[_records.Batch] = []

    class Spy(MemoryStore):
        def write_batch(self, batch: _records.Batch) -> None:
            batches.append(batch)
            super().write_batch(batch)

    store = Spy(group_max=2, group_seconds=3600)
    plain_flow(store).execute("src", {"values": [7]})
    grouped = [b for b in batches if not b.replace]
    written = [row[1] for b in grouped for _, row in _segment_rows(b)]
    # src made message 1, double consumed it in the same group: never written.
    assert grouped and 1 not in written and written == [2]


def _segment_rows(batch: _records.Batch) -> list[tuple[int, list[Any]]]:
    return [(first, row) for first, _, text in batch.segments for row in json.loads(text)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"durability": "sometimes"}, "durability must be"),
        ({"group_max": 0}, "group_max must be"),
        ({"group_max": True}, "group_max must be"),
        ({"group_seconds": -1}, "group_seconds must be"),
    ],
)
def test_bad_durability_settings_are_refused(options: dict[str, Any], message: str) -> None:
    """Unknown modes and impossible group bounds raise StoreUsageError (a ValueError)."""
    with pytest.raises(StoreUsageError, match=message) as caught:
        MemoryStore(**options)
    assert isinstance(caught.value, ValueError)


# -- what is recorded: pause, cancel, failure, crash ------------------------------


def test_paused_job_resumes_from_the_store_after_a_restart(tmp_path: Path) -> None:
    """A job paused on one store object resumes from another opened on the same file."""
    path = tmp_path / "jobs.db"
    with SQLiteStore(path) as store:
        job = halting_flow(at=2).execute("src", {"values": [1, 2, 3, 4]}, store=store)
    assert job.status == JobStatus.PAUSED
    with SQLiteStore(path) as store:
        (summary,) = store.list_jobs(status="paused")
        # halt 3 and 4, and sink 1 and 2 wait (breadth first, the sink has not run yet).
        assert (summary.reason, summary.pending) == ("paused on cue", 4)
        flow = halting_flow(at=None)  # type: ignore[arg-type]
        resumed = flow.resume(store.load(summary.job_id), store=store)
        assert resumed.status == JobStatus.COMPLETED
        assert store.list_jobs()[0].status == JobStatus.COMPLETED
    assert resumed.routine_states["sink"]["stats"]["calls"] == 4
    assert flow.get_routine("sink").items == [{"value": v} for v in (1, 2, 3, 4)]  # type: ignore[union-attr]


def test_cancelled_job_is_recorded_as_cancelled(
    make_store: Callable[..., Store], kind: str
) -> None:
    """Cancelling a job is recorded with its reason."""
    store = make_store(kind)
    halting_flow(at=1, cancel=True).execute("src", {"values": [1, 2]}, store=store)
    (summary,) = store.list_jobs()
    assert (summary.status, summary.reason) == (JobStatus.CANCELLED, "cancelled on cue")


def test_failed_job_is_recorded_and_resumes_from_the_store(
    make_store: Callable[..., Store], kind: str
) -> None:
    """A STOP failure is stored with its error; resuming the loaded job retries the message."""
    store = make_store(kind)
    flow = Flow(flow_id="fails")
    chain(flow, ("src", Source()), ("flaky", Flaky()), ("sink", Collect()))
    failed = flow.execute("src", {"values": [1, 2]}, store=store)
    stored = store.load(failed.job_id)
    assert stored.status == JobStatus.FAILED
    assert stored.error is not None and stored.error.error_type == "ValueError"
    done = flow.resume(stored, store=store)
    assert done.status == JobStatus.COMPLETED
    assert done.routine_states["sink"]["stats"]["calls"] == 2
    assert store.list_jobs(status="completed")[0].job_id == failed.job_id


def test_running_job_is_visible_as_running_from_another_connection(
    tmp_path: Path, released_gates: list[Gate]
) -> None:
    """While a job runs, a second store on the file sees it running with its commits."""
    path = tmp_path / "jobs.db"
    gate = Gate()
    released_gates.append(gate)
    flow = Flow(flow_id="gated")
    chain(flow, ("src", Source()), ("gate", gate), ("sink", Collect()))
    with SQLiteStore(path, durability="activation") as store:
        worker = threading.Thread(
            target=flow.execute, args=("src", {"values": [1, 2]}), kwargs={"store": store}
        )
        worker.start()
        try:
            assert gate.entered.wait(10)
            with SQLiteStore(path) as observer:
                (summary,) = observer.list_jobs()
                seen = observer.load(summary.job_id)
        finally:
            gate.release.set()
            worker.join(10)
    assert summary.status == JobStatus.RUNNING
    assert [m.data for m in seen.pending] == [{"value": 1}, {"value": 2}]


# -- every commit is a state that resumes exactly -------------------------------------


class Snapshots(MemoryStore):
    """A memory store that keeps what it holds after every grouped commit."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.snapshots: list[JobState] = []

    def write_batch(self, batch: _records.Batch) -> None:
        super().write_batch(batch)
        if not batch.replace:
            self.snapshots.append(self.load(batch.job_id))


def rich_flow() -> Flow:
    """Fan-out to two relays, a join, and a sink whose slot appends all it gets."""
    flow = Flow(flow_id="rich")
    chain(flow, ("src", Source()), ("double", Double()), ("a", Relay()), ("join", Join()))
    chain(flow, ("b", Relay()), ("sink", AppendCollect()))
    flow.connect("double", "out", "b", "in")
    flow.connect("b", "out", "join", "in")
    flow.connect("join", "out", "sink", "in")
    return flow


def outcome(job: JobState) -> dict[str, Any]:
    """What must not depend on crashes: statuses, counts, stats, merge state, messages."""
    return {
        "status": str(job.status),
        "routine_states": job.routine_states,
        "slot_states": job.slot_states,
        "next_seq": job.next_seq,
        "history_total": job.history_total,
        "pending": len(job.pending),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.integers(-50, 50), min_size=1, max_size=6), group=st.integers(1, 4))
def test_every_commit_resumes_to_the_uninterrupted_result(values: list[int], group: int) -> None:
    """Resuming what the store holds after any commit ends exactly like an uninterrupted run."""
    expected = outcome(rich_flow().execute("src", {"values": values}))
    store = Snapshots(group_max=group, group_seconds=3600)
    rich_flow().execute("src", {"values": values}, store=store)
    assert store.snapshots
    for snapshot in store.snapshots:
        assert snapshot.status == JobStatus.RUNNING
        assert outcome(rich_flow().resume(snapshot)) == expected


def test_every_commit_of_a_threaded_job_resumes_to_the_same_counts() -> None:
    """With the thread executor too, each commit resumes to the counts of a whole run."""

    def threaded() -> Flow:
        flow = Flow(flow_id="threaded", executor="thread", max_workers=4)
        chain(flow, ("src", Source()), ("double", Double()), ("relay", Relay()))
        chain(flow, ("sink", AppendCollect()))
        flow.connect("relay", "out", "sink", "in")
        for routine in flow.routines.values():
            routine.max_concurrency = 4
        return flow

    values = list(range(12))
    store = Snapshots(group_max=3, group_seconds=3600)
    threaded().execute("src", {"values": values}, store=store)
    assert store.snapshots
    for snapshot in store.snapshots:
        done = threaded().resume(snapshot)
        assert {rid: s["activations"] for rid, s in done.routine_states.items()} == {
            "src": 1,
            "double": 12,
            "relay": 12,
            "sink": 12,
        }
        assert sorted(done.slot_states["sink.in"]["value"]) == [2 * v for v in values]


# -- reading and housekeeping ---------------------------------------------------------


def test_list_jobs_filters_by_flow_and_status(make_store: Callable[..., Store], kind: str) -> None:
    """list_jobs(flow_id=..., status=...) keeps the matching jobs, oldest first."""
    store = make_store(kind)
    first = plain_flow(store, "one").execute("src", {"values": [1]})
    second = plain_flow(store, "two").execute("src", {"values": [1]})
    paused = halting_flow(at=1).execute("src", {"values": [1, 2]}, store=store)
    assert [s.job_id for s in store.list_jobs()] == [first.job_id, second.job_id, paused.job_id]
    assert [s.job_id for s in store.list_jobs(flow_id="two")] == [second.job_id]
    assert [s.job_id for s in store.list_jobs(status="paused")] == [paused.job_id]
    assert len(store.list_jobs(status=["paused", "completed"])) == 3
    assert store.list_jobs(flow_id="one", status=JobStatus.PAUSED) == []


def test_list_jobs_refuses_an_unknown_status(make_store: Callable[..., Store], kind: str) -> None:
    """An unknown status raises StoreUsageError listing the real ones."""
    with pytest.raises(StoreUsageError, match=r"'finished'.*'completed'"):
        make_store(kind).list_jobs(status="finished")


def test_load_of_an_unknown_job_raises_job_not_found(
    make_store: Callable[..., Store], kind: str
) -> None:
    """load() of an id the store lacks raises JobNotFoundError, also a KeyError."""
    with pytest.raises(KeyError, match=r"no job 'nope'.*list_jobs") as caught:
        make_store(kind).load("nope")
    assert isinstance(caught.value, JobNotFoundError)
    assert caught.value.job_id == "nope"


def test_load_takes_a_string_id(make_store: Callable[..., Store], kind: str) -> None:
    """load() with something other than a string id raises TypeError."""
    with pytest.raises(TypeError, match="job_id must be a non-empty string"):
        make_store(kind).load(42)  # type: ignore[arg-type]


def test_delete_forgets_the_job(make_store: Callable[..., Store], kind: str) -> None:
    """delete() removes the job; deleting it again raises JobNotFoundError."""
    store = make_store(kind)
    job = plain_flow(store).execute("src", {"values": [1]})
    store.delete(job.job_id)
    assert store.list_jobs() == []
    with pytest.raises(JobNotFoundError):
        store.load(job.job_id)
    with pytest.raises(JobNotFoundError, match="Cannot delete job"):
        store.delete(job.job_id)


def test_prune_drops_finished_jobs_older_than_the_age(
    make_store: Callable[..., Store], kind: str
) -> None:
    """prune() deletes completed, failed and cancelled jobs older than given; keeps the rest."""
    store = make_store(kind)
    plain_flow(store).execute("src", {"values": [1]})
    halting_flow(at=1, cancel=True).execute("src", {"values": [1]}, store=store)
    paused = halting_flow(at=1).execute("src", {"values": [1, 2]}, store=store)
    assert store.prune(older_than=datetime.timedelta(hours=1)) == 0
    assert store.prune(older_than=0) == 2
    assert [s.job_id for s in store.list_jobs()] == [paused.job_id]
    assert store.prune(0, statuses=["paused"]) == 1
    assert store.list_jobs() == []


@pytest.mark.parametrize(
    ("older_than", "error"),
    [(-1, StoreUsageError), (datetime.timedelta(seconds=-1), StoreUsageError), ("1d", TypeError)],
)
def test_prune_refuses_a_bad_age(older_than: Any, error: type[Exception]) -> None:
    """A negative age, or one that is not seconds or a timedelta, is refused."""
    with pytest.raises(error, match="older_than"):
        MemoryStore().prune(older_than)


def test_running_job_cannot_be_deleted_or_begun_twice(
    make_store: Callable[..., Store], kind: str
) -> None:
    """While a job runs against a store, delete() and a second begin() raise JobStateError."""
    store = make_store(kind)
    job = JobState(flow_id="f")
    store.begin(job)
    with pytest.raises(JobStateError, match="already running"):
        store.begin(job)
    with pytest.raises(JobStateError, match="Cannot delete"):
        store.delete(job.job_id)
    with pytest.raises(JobStateError, match="still run"):
        store.close()
    store.end(job)
    store.delete(job.job_id)


def test_ending_a_copy_of_a_running_job_leaves_the_store_alone(
    make_store: Callable[..., Store], kind: str
) -> None:
    """end() with another JobState of a running job's id does not overwrite it."""
    store = make_store(kind)
    running = JobState(flow_id="f", status=JobStatus.RUNNING)
    store.begin(running)
    copy = JobState.from_dict(running.serialize())
    copy.status = JobStatus.COMPLETED
    store.end(copy)
    (summary,) = store.list_jobs()
    assert summary.status == JobStatus.RUNNING
    store.end(running)


def test_save_stores_a_job_whole(make_store: Callable[..., Store], kind: str) -> None:
    """save() stores a JobState that ran elsewhere, and replaces it when saved again."""
    store = make_store(kind)
    job = plain_flow().execute("src", {"values": [1, 2]})
    store.save(job)
    assert comparable(store.load(job.job_id)) == comparable(job)
    job.reason = "archived"
    store.save(job)
    assert store.list_jobs()[0].reason == "archived"


def test_save_refuses_a_job_running_against_the_store(
    make_store: Callable[..., Store], kind: str
) -> None:
    """save() of a job the store is journaling raises JobStateError."""
    store = make_store(kind)
    job = JobState(flow_id="f", status=JobStatus.RUNNING)
    store.begin(job)
    with pytest.raises(JobStateError, match="Cannot save job"):
        store.save(job)
    store.end(job)


def test_closed_store_refuses_to_be_used(make_store: Callable[..., Store], kind: str) -> None:
    """After close() (twice is fine) every call raises StoreClosedError."""
    store = make_store(kind)
    store.close()
    store.close()
    with pytest.raises(StoreClosedError, match="closed"):
        store.list_jobs()
    with pytest.raises(StoreClosedError):
        plain_flow(store).execute("src", {"values": [1]})


def test_a_store_is_a_context_manager(tmp_path: Path) -> None:
    """Leaving the with-block closes the store."""
    with SQLiteStore(tmp_path / "jobs.db") as store:
        assert store.list_jobs() == []
    with pytest.raises(StoreClosedError):
        store.list_jobs()


def test_store_implements_the_journal_protocol() -> None:
    """A store can be given wherever the scheduler takes a Journal."""
    journal: Journal = MemoryStore()
    assert callable(journal.begin) and callable(journal.step) and callable(journal.end)


class HeldWrite:
    """A write transaction of the store's own connection, held open until released."""

    def __init__(self, store: SQLiteStore) -> None:
        self.holding, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=store._transact, args=(self.hold,), kwargs={"write": True}
        )

    def hold(self, conn: sqlite3.Connection) -> None:
        """The transaction's work: wait to be released."""
        self.holding.set()
        self.release.wait(30)

    def __enter__(self) -> HeldWrite:
        self.thread.start()
        assert self.holding.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(30)


def test_reads_go_on_while_a_commit_of_the_same_store_is_under_way(tmp_path: Path) -> None:
    """list_jobs() and load_brief() answer while the store's own write transaction is open."""
    store = SQLiteStore(tmp_path / "jobs.db")
    store.save(JobState(flow_id="f", job_id="j"))
    read = threading.Event()

    def reads() -> None:
        if store.list_jobs()[0].job_id == store.load_brief("j").job.job_id == "j":
            read.set()

    with HeldWrite(store):
        threading.Thread(target=reads, daemon=True).start()
        read_while_held = read.wait(30)
    store.close()
    assert read_while_held


def test_a_closed_store_leaves_no_side_reader_open(tmp_path: Path) -> None:
    """close() closes the connections that reads beside a write were made on."""
    store = SQLiteStore(tmp_path / "jobs.db")
    with HeldWrite(store):
        store.list_jobs()
    readers = list(store._side._idle) if store._side is not None else []
    store.close()
    assert readers
    for conn in readers:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_the_backend_interface_is_public_and_documented() -> None:
    """Every abstract method of Store (the backend interface) is public and documented."""
    names = sorted(Store.__abstractmethods__)
    assert names and not [n for n in names if n.startswith("_")]
    for name in names:
        doc = inspect.getdoc(getattr(Store, name)) or ""
        assert len(doc.split()) >= 8, f"Store.{name} needs a docstring saying what it must do"
    assert "write_batch" in names and "claim_queued" in names


# -- flow definitions -------------------------------------------------------------------


def test_saved_flow_loads_back(make_store: Callable[..., Store], kind: str) -> None:
    """save_flow() then load_flow() rebuilds the flow: routines, config, connections."""
    store = make_store(kind)
    flow = plain_flow()
    flow.get_routine("double").set_config(factor=3)  # type: ignore[union-attr]
    store.save_flow(flow)
    loaded = store.load_flow("plain")
    assert loaded.serialize() == flow.serialize()


def test_begin_with_the_flow_saves_its_definition(
    make_store: Callable[..., Store], kind: str
) -> None:
    """A job begun with its flow leaves the flow's definition in the store."""
    store = make_store(kind)
    flow = plain_flow()
    job = JobState(flow_id="plain")
    store.begin(job, flow)
    store.end(job)
    assert store.load_flow("plain").serialize() == flow.serialize()


@pytest.mark.skipif(
    "flow" not in inspect.signature(Journal.begin).parameters,
    reason="the scheduler does not pass the flow to Journal.begin yet",
)
def test_a_job_saves_its_flows_definition_when_it_starts(
    make_store: Callable[..., Store], kind: str
) -> None:
    """Running a job against a store leaves its flow's definition, as it started, there."""
    store = make_store(kind)
    flow = plain_flow(store)
    started = flow.serialize()
    flow.execute("src", {"values": [1]})
    assert store.load_flow("plain").serialize() == started


def test_load_flow_of_an_unknown_flow_raises_flow_not_found(
    make_store: Callable[..., Store], kind: str
) -> None:
    """load_flow() of a flow never saved raises FlowNotFoundError, also a KeyError."""
    with pytest.raises(KeyError, match="no saved flow 'ghost'") as caught:
        make_store(kind).load_flow("ghost")
    assert isinstance(caught.value, FlowNotFoundError)


def test_save_flow_takes_a_flow(make_store: Callable[..., Store], kind: str) -> None:
    """save_flow() of anything else raises TypeError."""
    with pytest.raises(TypeError, match="takes a Flow"):
        make_store(kind).save_flow("plain")  # type: ignore[arg-type]


# -- the SQLite file -----------------------------------------------------------------


def test_new_file_is_marked_as_a_flowforge_store(tmp_path: Path) -> None:
    """A new store carries the application id, the schema version and a meta table."""
    path = tmp_path / "jobs.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA application_id").fetchone()[0] == sqlite.APPLICATION_ID
        assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite.SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(db.execute("SELECT key, value FROM meta"))
    finally:
        db.close()
    assert meta["format"] == "flowforge/store"


def test_jobs_survive_closing_and_reopening(tmp_path: Path) -> None:
    """A store opened again on the same file has the same jobs."""
    path = tmp_path / "jobs.db"
    with SQLiteStore(path) as store:
        job = plain_flow(store).execute("src", {"values": [1, 2]})
    with SQLiteStore(path) as store:
        assert comparable(store.load(job.job_id)) == comparable(job)


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    """A text file raises NotAStoreError and keeps its bytes."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 20)
    with pytest.raises(NotAStoreError, match="not an SQLite database") as caught:
        SQLiteStore(path)
    assert isinstance(caught.value, ValueError)
    assert path.read_text() == "shopping list\n" * 20


def test_another_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    """An SQLite database of another application raises NotAStoreError naming its tables."""
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (name TEXT)")
    db.commit()
    db.close()
    before = _bytes(path)
    with pytest.raises(NotAStoreError, match=r"not a FlowForge store.*customers"):
        SQLiteStore(path)
    assert _bytes(path) == before


def test_a_store_from_a_newer_flowforge_is_refused(tmp_path: Path) -> None:
    """A store whose schema is newer raises StoreVersionError with both versions."""
    path = tmp_path / "jobs.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {sqlite.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreVersionError, match="newer than this FlowForge") as caught:
        SQLiteStore(path)
    assert (caught.value.found, caught.value.supported) == (
        sqlite.SCHEMA_VERSION + 1,
        sqlite.SCHEMA_VERSION,
    )


def test_a_truncated_store_is_refused_untouched(tmp_path: Path) -> None:
    """A store cut short raises CorruptStoreError and is not rewritten."""
    path = tmp_path / "jobs.db"
    with SQLiteStore(path) as store:
        plain_flow(store).execute("src", {"values": list(range(200))})
    data = _bytes(path)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptStoreError, match="truncated"):
        SQLiteStore(path)
    assert _bytes(path) == data[: len(data) // 2]


def test_a_store_with_damaged_pages_raises_corrupt_store(tmp_path: Path) -> None:
    """Garbage written over a store's pages raises CorruptStoreError, not a crash."""
    path = tmp_path / "jobs.db"
    with SQLiteStore(path) as store:
        job = plain_flow(store).execute("src", {"values": list(range(200))})
    data = bytearray(_bytes(path))
    data[4096:] = bytes(range(256)) * ((len(data) - 4096) // 256) + bytes(len(data) % 256)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="damaged"), SQLiteStore(path) as store:
        store.load(job.job_id)


def test_a_store_without_its_meta_table_is_corrupt(tmp_path: Path) -> None:
    """A file marked as a store but missing its meta table raises CorruptStoreError."""
    path = tmp_path / "jobs.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE meta")
    db.close()
    with pytest.raises(CorruptStoreError, match="meta table"):
        SQLiteStore(path)


def test_a_directory_or_missing_directory_cannot_be_a_store(tmp_path: Path) -> None:
    """A directory, or a file in a missing directory, raises StoreAccessError (an OSError)."""
    with pytest.raises(StoreAccessError, match="is a directory"):
        SQLiteStore(tmp_path)
    with pytest.raises(OSError, match="directory exists"):
        SQLiteStore(tmp_path / "missing" / "jobs.db")


def test_an_older_schema_is_migrated_forward_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a store of an older schema runs the migrations and keeps its jobs."""
    path = tmp_path / "jobs.db"
    with SQLiteStore(path) as store:
        job = plain_flow(store).execute("src", {"values": [1]})
    version = sqlite.SCHEMA_VERSION
    monkeypatch.setattr(sqlite, "SCHEMA_VERSION", version + 1)
    monkeypatch.setitem(
        sqlite.MIGRATIONS, version, lambda db: db.execute("ALTER TABLE jobs ADD COLUMN note TEXT")
    )
    with SQLiteStore(path) as store:
        assert store.load(job.job_id).status == JobStatus.COMPLETED
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == version + 1
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(version + 1),
        )
        assert "note" in [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    finally:
        db.close()


def test_a_version_2_store_gains_leases_and_the_queue_when_opened(tmp_path: Path) -> None:
    """A store written before leases (schema 2) is migrated: leases and the queue work."""
    path = tmp_path / "jobs.db"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in sqlite._SCHEMA[: -len(sqlite._LEASES)]:
        db.execute(statement)
    db.execute(f"PRAGMA application_id = {sqlite.APPLICATION_ID}")
    db.execute("PRAGMA user_version = 2")
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("format", sqlite.FORMAT), ("schema_version", "2")]
    )
    db.close()
    with SQLiteStore(path) as store:
        job = JobState(flow_id="f", status=JobStatus.RUNNING)
        store.begin(job)
        assert store.lease(job.job_id).owner == store.owner  # type: ignore[union-attr]
        store.end(job)
        queued = plain_flow().submit({"values": [1]}, entry_routine_id="src", store=store)
        assert store.claim().job_id == queued.job_id  # type: ignore[union-attr]
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite.SCHEMA_VERSION == 3
    finally:
        db.close()


def test_a_store_locked_too_long_raises_store_busy(tmp_path: Path) -> None:
    """A write that waits longer than timeout for a lock raises StoreBusyError (a TimeoutError)."""
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path, timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TimeoutError, match="stayed locked") as caught:
            plain_flow(store).execute("src", {"values": [1]})
        assert isinstance(caught.value, StoreBusyError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_a_store_waits_for_a_lock_held_briefly(tmp_path: Path) -> None:
    """Commits wait for another connection's transaction to end, then go through."""
    path = tmp_path / "jobs.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with SQLiteStore(path, durability="activation") as store:
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.2, holder.execute, args=("ROLLBACK",))
        release.start()
        job = plain_flow(store).execute("src", {"values": [1, 2, 3]})
        release.join()
        assert store.load(job.job_id).status == JobStatus.COMPLETED
    holder.close()


def test_store_errors_share_one_root() -> None:
    """Every store error is a StoreError and a FlowForgeError."""
    for error in (
        CorruptStoreError,
        FlowNotFoundError,
        JobNotFoundError,
        NotAStoreError,
        StoreAccessError,
        StoreBusyError,
        StoreClosedError,
        StoreUsageError,
        StoreVersionError,
    ):
        assert issubclass(error, StoreError) and issubclass(error, FlowForgeError)


# -- sharing a store -------------------------------------------------------------------


def test_threads_running_jobs_against_one_store_lose_nothing(tmp_path: Path) -> None:
    """Jobs run from several threads at once, on one flow and one store, all land whole."""
    flow = Flow(flow_id="shared")
    chain(flow, ("src", Source()), ("double", Double()), ("sink", Collect()))
    jobs: list[JobState] = []
    with SQLiteStore(tmp_path / "jobs.db", durability="activation") as store:

        def run() -> None:
            for _ in range(3):
                jobs.append(flow.execute("src", {"values": list(range(20))}, store=store))

        threads = [threading.Thread(target=run) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        summaries = store.list_jobs(status="completed")
        loaded = [store.load(job.job_id) for job in jobs]
    assert len(jobs) == len(summaries) == 18
    assert all(job.routine_states["sink"]["activations"] == 20 for job in loaded)
    assert all(comparable(a) == comparable(b) for a, b in zip(loaded, jobs, strict=True))


_WORKER = """
import sys
from flowforge import Flow
from flowforge.store import SQLiteStore
from flowforge.testing import Collect, Double, Source

path, name = sys.argv[1], sys.argv[2]
with SQLiteStore(path, durability="activation") as store:
    for _ in range(4):
        flow = Flow(flow_id=name)
        flow.add_routine(Source(), "src")
        flow.add_routine(Double(), "double")
        flow.add_routine(Collect(), "sink")
        flow.connect("src", "out", "double", "in")
        flow.connect("double", "out", "sink", "in")
        flow.execute("src", {"values": list(range(25))}, store=store)
"""


def test_two_processes_sharing_one_file_lose_nothing(tmp_path: Path) -> None:
    """Two processes writing jobs to one SQLite file at once both keep every job."""
    path = str(tmp_path / "jobs.db")
    SQLiteStore(path).close()
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, path, name], stderr=subprocess.PIPE)
        for name in ("left", "right")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=50)
        assert worker.returncode == 0, err.decode()
    with SQLiteStore(path) as store:
        for name in ("left", "right"):
            summaries = store.list_jobs(flow_id=name)
            assert [s.status for s in summaries] == [JobStatus.COMPLETED] * 4
            for summary in summaries:
                job = store.load(summary.job_id)
                assert job.routine_states["sink"]["stats"] == {"calls": 25}
                assert job.routine_states["double"]["activations"] == 25


def test_the_example_crashes_and_resumes(tmp_path: Path) -> None:
    """examples/durable_job.py exits 0 and its second worker finishes the job."""
    example = Path(__file__).resolve().parent.parent / "examples" / "durable_job.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "worker 2 resumed the job: completed" in done.stdout.splitlines()
    assert "order(s) that ran twice, charged once: [6]" in done.stdout.splitlines()
