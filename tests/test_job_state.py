"""JobState: status, routine state, history, errors, saving to JSON and YAML."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import pytest
import yaml
from conftest import chain, linear_flow

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    ExecutionRecord,
    Flow,
    JobState,
    JobStatus,
    RoutineRun,
    SerializationError,
)
from flowforge.job_state import ErrorInfo, Message, SkippedWork
from flowforge.testing import Flaky


def json_round_trip(job: JobState) -> JobState:
    """``job`` through JSON text and back."""
    return JobState.from_dict(json.loads(json.dumps(job.serialize())))


def yaml_round_trip(job: JobState) -> JobState:
    """``job`` through YAML text and back."""
    return JobState.from_dict(yaml.safe_load(yaml.safe_dump(job.serialize())))


def finished_job(retention: int = 1000) -> JobState:
    """A completed job with history, an error and a skip."""
    flow = Flow(retention=retention)
    sink = linear_flow(flow)
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flaky.set_error_handler(ErrorHandler(ErrorStrategy.SKIP))
    chain(flow, ("flaky", flaky))
    flow.connect("relay", "out", "flaky", "in")
    assert sink is flow.get_routine("sink")
    return flow.execute("src", {"values": [1, 2]})


def comparable(job: JobState) -> dict[str, Any]:
    """What a round trip must keep, timestamps included."""
    data = job.serialize()
    return json.loads(json.dumps(data))


# -- status ------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(JobStatus))
def test_status_compares_equal_to_its_string_and_prints_bare(status: JobStatus) -> None:
    """Each status equals its string and str()/print give the bare word."""
    assert status == status.value
    assert str(status) == status.value
    assert f"{status}" == status.value


def test_status_values_are_the_documented_seven() -> None:
    """The statuses are pending, queued, running, paused, completed, failed, cancelled."""
    assert [s.value for s in JobStatus] == [
        "pending",
        "queued",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
    ]


def test_finished_is_true_for_terminal_statuses() -> None:
    """completed, failed and cancelled are finished; the others are not."""
    assert {s for s in JobStatus if s.finished} == {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


def test_new_job_state_is_pending_with_ids() -> None:
    """A new JobState is pending, has a job_id and the given flow_id."""
    job = JobState(flow_id="f")
    assert job.status == "pending"
    assert job.flow_id == "f"
    assert job.job_id and job.job_id != JobState().job_id
    assert job.created_at > 0
    assert job.started_at is None and job.finished_at is None


def test_job_ids_differ_in_every_digit_and_a_forked_child_draws_its_own() -> None:
    """Ids are 32 hex digits, spread over all digits, and a fork does not repeat them."""
    ids = [JobState().job_id for _ in range(2000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[:4] for i in ids}) > 1000  # a short prefix names a job
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(JobState().job_id for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    parent = {JobState().job_id for _ in range(50)}
    assert len(child) == 50
    assert not child & parent


def test_status_given_as_a_string_becomes_a_job_status() -> None:
    """JobState(status='paused') stores JobStatus.PAUSED."""
    assert JobState(status="paused").status is JobStatus.PAUSED  # type: ignore[arg-type]


def test_finished_job_has_times() -> None:
    """A finished job has started_at <= finished_at."""
    job = finished_job()
    assert job.started_at is not None and job.finished_at is not None
    assert job.created_at <= job.started_at <= job.finished_at


# -- routine state -----------------------------------------------------------------


def test_update_routine_state_merges_and_get_returns_it() -> None:
    """update_routine_state merges keys; get_routine_state returns the dict."""
    job = JobState()
    job.update_routine_state("r", {"a": 1})
    job.update_routine_state("r", {"b": 2})
    assert job.get_routine_state("r") == {"a": 1, "b": 2}


def test_get_routine_state_of_an_unknown_routine_is_none() -> None:
    """A routine with no state gives None."""
    assert JobState().get_routine_state("nope") is None


def test_engine_keeps_status_activations_and_stats_per_routine() -> None:
    """After a job each routine's state has status, activations and stats."""
    job = finished_job()
    state = job.get_routine_state("double")
    assert state == {"status": "completed", "activations": 2, "stats": {"calls": 2}}
    flaky = job.get_routine_state("flaky")
    assert flaky is not None
    assert (flaky["status"], flaky["skipped"], flaky["failures"]) == ("skipped", 2, 2)


# -- history --------------------------------------------------------------------


def test_record_execution_adds_a_history_record() -> None:
    """record_execution adds an ExecutionRecord with the given fields."""
    job = JobState()
    job.record_execution("r", "out", {"x": 1})
    (record,) = job.get_execution_history()
    assert isinstance(record, ExecutionRecord)
    assert (record.routine_id, record.event_name, record.data) == ("r", "out", {"x": 1})
    assert record.timestamp > 0


def test_get_execution_history_filters_by_routine() -> None:
    """get_execution_history(routine_id) keeps only that routine's records, in order."""
    job = JobState()
    job.record_execution("a", "out", {"n": 1})
    job.record_execution("b", "out", {"n": 2})
    job.record_execution("a", "out", {"n": 3})
    assert [r.data["n"] for r in job.get_execution_history("a")] == [1, 3]
    assert [r.data["n"] for r in job.get_execution_history()] == [1, 2, 3]


def test_retention_bounds_history_and_counts_what_was_dropped() -> None:
    """Only the latest `retention` records are kept; history_dropped counts the rest."""
    job = JobState(retention=3)
    for n in range(5):
        job.record_execution("r", "out", {"n": n})
    assert [r.data["n"] for r in job.get_execution_history()] == [2, 3, 4]
    assert job.history_dropped == 2


def test_errors_and_skips_are_recorded() -> None:
    """A job's handler failures and skipped work are in errors and skipped."""
    job = finished_job()
    assert [(e.routine_id, e.strategy) for e in job.errors] == [("flaky", "skip")] * 2
    assert [s.routine_id for s in job.skipped] == ["flaky", "flaky"]
    assert job.errors_total == 2 and job.skipped_total == 2


# -- saving ----------------------------------------------------------------------


@pytest.mark.parametrize("round_trip", [json_round_trip, yaml_round_trip])
def test_finished_job_survives_a_round_trip(round_trip: Any) -> None:
    """serialize -> JSON/YAML -> from_dict keeps everything."""
    job = finished_job()
    again = round_trip(job)
    assert comparable(again) == comparable(job)
    assert again.status is JobStatus.COMPLETED
    assert again.get_execution_history() == job.get_execution_history()
    assert again.errors == job.errors
    assert again.skipped == job.skipped


@pytest.mark.parametrize("round_trip", [json_round_trip, yaml_round_trip])
def test_failed_job_keeps_its_pending_messages_and_error(round_trip: Any) -> None:
    """A failed job's pending messages and error survive a round trip."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flow.add_routine(flaky, "flaky")
    job = flow.execute("flaky", {"x": 1})
    again = round_trip(job)
    assert again.status == "failed"
    assert list(again.pending) == list(job.pending)
    assert again.error == job.error


def test_round_trip_keeps_retention_and_dropped_counts() -> None:
    """Retention and the dropped counts survive a round trip."""
    job = JobState(retention=2)
    for n in range(4):
        job.record_execution("r", "out", {"n": n})
    again = json_round_trip(job)
    assert again.retention == 2
    assert again.history_dropped == 2
    again.record_execution("r", "out", {"n": 4})
    assert [r.data["n"] for r in again.get_execution_history()] == [3, 4]


def test_errors_and_skips_keep_retention_and_compare_by_entries() -> None:
    """Errors and skips are kept up to retention, loaded or recorded, and jobs holding
    the same ones compare equal (a job without any equals a fresh one)."""
    job = JobState(job_id="j", created_at=1.0, retention=2)
    twin = JobState(job_id="j", created_at=1.0, retention=2)
    assert job == twin
    for n in range(3):
        info = ErrorInfo("r", "in", "ValueError", str(n), "", "continue", 1)
        job.record_error(info)
        twin.record_error(info)
        job.record_skip(SkippedWork("r", "in", f"skip {n}", (), 1.0))
        twin.record_skip(SkippedWork("r", "in", f"skip {n}", (), 1.0))
    assert job == twin
    assert [e.message for e in job.errors] == ["1", "2"]
    again = json_round_trip(job)
    assert [e.message for e in again.errors] == ["1", "2"]
    assert again.errors_since(2) == job.errors_since(2) == job.errors[1:]
    again.record_error(ErrorInfo("r", "in", "ValueError", "3", "", "continue", 1))
    again.record_skip(SkippedWork("r", "in", "skip 3", (), 1.0))
    assert [e.message for e in again.errors] == ["2", "3"]
    assert [s.reason for s in again.skipped] == ["skip 2", "skip 3"]
    assert json_round_trip(JobState()).errors == []


def test_deserialize_fills_an_empty_job_state() -> None:
    """JobState().deserialize(data) fills it and returns it."""
    job = finished_job()
    empty = JobState()
    assert empty.deserialize(job.serialize()) is empty
    assert comparable(empty) == comparable(job)


def test_serialized_job_is_marked_with_format_and_version() -> None:
    """serialize() names the format and version."""
    data = JobState().serialize()
    assert (data["format"], data["version"]) == ("flowforge/job", 3)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "flowforge/flow"}, "not a FlowForge job"),
        ({"version": 4}, "newer"),
        ({"status": "sleeping"}, "sleeping"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_from_dict_refuses_bad_data_with_a_clear_error(change: dict[str, Any], match: str) -> None:
    """Bad saved jobs raise SerializationError saying what is wrong."""
    data = JobState().serialize()
    data.update(change)
    with pytest.raises(SerializationError, match=match):
        JobState.from_dict(data)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"pending": [{"seq": 1}]}, "pending"),
        ({"routine_states": []}, "routine_states"),
        ({"next_seq": "abc"}, "next_seq"),
        ({"retention": 0}, "retention"),
        ({"history": [[1]]}, "history"),
        ({"error": {"routine_id": "x"}}, "error"),
        ({"tracker": {"routines": {"a": {"calls": 1}}}}, "tracker"),
    ],
)
def test_from_dict_says_which_field_is_bad(change: dict[str, Any], where: str) -> None:
    """A corrupted saved job raises SerializationError naming the bad field."""
    data = JobState().serialize()
    data.update(change)
    with pytest.raises(SerializationError, match=rf"\b{where}(?![A-Za-z_])"):
        JobState.from_dict(data)


def test_from_dict_refuses_a_non_mapping() -> None:
    """A saved job must be a mapping."""
    with pytest.raises(SerializationError, match="mapping"):
        JobState.from_dict([1, 2])  # type: ignore[arg-type]


def test_summary_mentions_id_status_and_pending() -> None:
    """summary() is one line with the job id, status and pending count."""
    job = JobState(flow_id="f")
    line = job.summary()
    assert job.job_id in line and "pending" in line and "\n" not in line


# -- the typed model -------------------------------------------------------------------


def test_each_routine_has_a_typed_run() -> None:
    """job.runs holds a RoutineRun per routine with its counts and this job's counters."""
    job = finished_job()
    run = job.runs["flaky"]
    assert isinstance(run, RoutineRun)
    assert (run.status, run.activations, run.failures, run.skipped) == ("skipped", 0, 2, 2)
    assert job.runs["double"].stats == {"calls": 2}


def test_user_keys_survive_a_run_and_a_round_trip_apart_from_the_engines() -> None:
    """Keys set with update_routine_state are kept beside the engine's, and round-trip."""
    job = JobState()
    job.update_routine_state("double", {"cursor": 10, "seen": ["a"]})
    flow = Flow()
    linear_flow(flow)
    flow.execute("src", {"values": [1]}, job_state=job)
    for loaded in (json_round_trip(job), yaml_round_trip(job)):
        state = loaded.get_routine_state("double")
        assert state == {
            "status": "completed",
            "activations": 1,
            "stats": {"calls": 1},
            "cursor": 10,
            "seen": ["a"],
        }


def test_update_routine_state_checks_the_engines_keys() -> None:
    """An engine key set by hand must have the engine's type; the error names it."""
    job = JobState()
    with pytest.raises(SerializationError, match=r"activations"):
        job.update_routine_state("r", {"activations": "abc"})
    job.update_routine_state("r", {"activations": 3, "note": "x"})
    assert job.runs["r"].activations == 3
    assert job.get_routine_state("r") == {
        "status": "pending",
        "activations": 3,
        "stats": {},
        "note": "x",
    }


def test_get_routine_state_is_a_copy() -> None:
    """Changing the dict get_routine_state returned does not change the job."""
    job = finished_job()
    state = job.get_routine_state("double")
    assert state is not None
    state["stats"]["calls"] = 99
    state["activations"] = 99
    assert job.get_routine_state("double") == {
        "status": "completed",
        "activations": 2,
        "stats": {"calls": 2},
    }


def test_a_version_1_document_still_loads() -> None:
    """A version 1 job (flat routine_states dicts) loads into runs and user state."""
    data = JobState(flow_id="f").serialize()
    data["version"] = 1
    del data["routines"]
    data["routine_states"] = {
        "double": {"status": "completed", "activations": 2, "stats": {"calls": 2}, "note": 1},
        "mine": {"cursor": 3},
    }
    job = JobState.from_dict(data)
    assert job.runs["double"] == RoutineRun("completed", 2, stats={"calls": 2})  # type: ignore[arg-type]
    assert "mine" not in job.runs
    assert job.get_routine_state("double") == {
        "status": "completed",
        "activations": 2,
        "stats": {"calls": 2},
        "note": 1,
    }
    assert job.get_routine_state("mine") == {"cursor": 3}
    assert job.serialize()["version"] == 3


def test_a_version_2_document_still_loads() -> None:
    """A version 2 job (from before task runs were saved) loads, with no task runs."""
    data = JobState(flow_id="f").serialize()
    data["version"] = 2
    del data["task_runs"]
    job = JobState.from_dict(data)
    assert job.task_runs == {} and job.outputs == {}
    assert job.serialize()["version"] == 3


def test_task_runs_round_trip_through_serialize_and_from_parts() -> None:
    """Task runs are saved under task_runs and rebuilt by from_dict and from_parts alike."""
    from flowforge import TaskRun

    job = JobState(flow_id="f")
    job.set_task_run("load", TaskRun("succeeded", None, {"rows": [1, 2]}))
    job.set_task_run("mail", TaskRun("skipped", "upstream 'load' skipped"))
    data = job.serialize()
    assert data["task_runs"]["load"] == {
        "status": "succeeded",
        "reason": None,
        "result": {"rows": [1, 2]},
    }
    assert "task_runs" not in job.header_data()
    parts = JobState.from_parts(
        job.header_data(),
        entry=None,
        pending=[],
        routines={},
        slot_states={},
        history=[],
        errors=[],
        skipped=[],
        event_flow=[],
        task_runs={name: job.task_data(name) for name in job.task_runs},
    )
    for loaded in (JobState.from_dict(data), parts):
        assert loaded.output("load") == {"rows": [1, 2]}
        assert loaded.task_status("mail") == "skipped"


def test_a_version_1_document_with_a_bad_engine_key_says_where() -> None:
    """A version 1 routine state whose activations is not an int is refused at load."""
    data = JobState().serialize()
    data["version"] = 1
    del data["routines"]
    data["routine_states"] = {"r": {"status": "completed", "activations": "abc", "stats": {}}}
    with pytest.raises(SerializationError, match=r"routine_states\.r.*activations"):
        JobState.from_dict(data)


def test_from_dict_lists_every_impossible_value() -> None:
    """Empty job_id, negative counters, repeated and too-high seqs: all reported at once."""
    job = JobState(flow_id="f")
    job.queue("r", "in", {"value": 1})
    job.queue("r", "in", {"value": 2})
    data = job.serialize()
    data["pending"].append(dict(data["pending"][0]))
    data["job_id"] = ""
    data["next_seq"] = 1
    data["errors_total"] = -1
    data["routines"] = {"r": {"run": {"activations": -2}}}
    with pytest.raises(SerializationError) as caught:
        JobState.from_dict(data)
    message = str(caught.value)
    for part in ("activations", "job_id", "errors_total", "pending twice", "next_seq"):
        assert part in message


def test_from_dict_refuses_activations_that_are_not_an_int() -> None:
    """activations: 'abc' is refused when the job is loaded, not after a handler ran."""
    data = finished_job().serialize()
    data["routines"]["double"]["run"]["activations"] = "abc"
    with pytest.raises(SerializationError, match=r"routines\.double\.run\.activations"):
        JobState.from_dict(data)


# -- serialize() errors ---------------------------------------------------------------------


def test_serialize_names_the_pending_message_holding_unencodable_data() -> None:
    """A datetime in a pending message: SerializationError naming message, routine, slot, key."""
    job = JobState()
    job.queue("sink", "in", {"when": datetime.datetime(2024, 1, 1)})
    with pytest.raises(
        SerializationError, match=r"pending message 0 to 'sink\.in'.*'when'.*datetime"
    ):
        job.serialize()


def test_serialize_names_the_history_entry_holding_unencodable_data() -> None:
    """A set in the history: the error names routine and event."""
    job = JobState()
    job.record_execution("src", "out", {"value": {1, 2}})
    with pytest.raises(SerializationError, match=r"routine 'src' event 'out'.*'value'.*set"):
        job.serialize()


def test_serialize_names_the_routine_whose_stats_or_state_is_unencodable() -> None:
    """Bad stats or user state: the error names the routine and the key."""
    job = JobState()
    job.update_routine_state("r", {"stats": {"last": object()}})
    with pytest.raises(SerializationError, match=r"stats of routine 'r', key \['last'\]"):
        job.serialize()
    job = JobState()
    job.update_routine_state("r", {"cursor": object()})
    with pytest.raises(SerializationError, match=r"state of routine 'r', key \['cursor'\]"):
        job.serialize()


# -- public readings --------------------------------------------------------------------


def test_history_since_gives_only_entries_after_a_total() -> None:
    """history_since(n) and errors_since(n) give the kept entries after the first n."""
    job = JobState(retention=3)
    for i in range(5):
        job.record_execution("r", "out", {"i": i})
    assert [row[2]["i"] for row in job.history_since(3)] == [3, 4]
    assert [row[2]["i"] for row in job.history_since(0)] == [2, 3, 4]
    assert job.history_since(5) == []
    assert job.errors_since(0) == []


def test_elapsed_adds_up_over_runs_and_includes_a_running_one() -> None:
    """tracker.elapsed counts a run while it goes on, and keeps it after stop_run."""
    job = finished_job()
    first = job.tracker.elapsed
    assert first > 0
    job.tracker.start_run()
    running = job.tracker.elapsed
    assert running >= first
    assert JobState.from_dict(job.serialize()).tracker.elapsed >= first
    job.tracker.stop_run()
    assert job.tracker.elapsed >= running


class _Route:
    """A stand-in connection: where an emit goes, with an optional renaming."""

    def __init__(self, target: str, slot: str, mapping: dict[str, str] | None = None) -> None:
        self.target_id, self.slot_name, self.param_mapping = target, slot, mapping
        self.key = f"a.out->{target}.{slot}"


def test_record_emits_records_what_record_emit_would_one_emit_at_a_time() -> None:
    """A whole call's emits recorded at once match recording them one by one."""
    routes = {"out": [_Route("b", "in"), _Route("c", "in", {"x": "y"})], "done": []}
    emits = [("out", {"x": 1}), ("done", {}), ("out", {"x": 2})]
    batched, single = JobState(flow_id="f"), JobState(flow_id="f")
    batched.record_emits("a", emits, routes, 5.0)
    for name, data in emits:
        single.record_emit("a", name, data, routes[name], 5.0)
    for job in (batched, single):
        assert [(m.seq, m.routine_id, m.data, m.source) for m in job.pending] == [
            (0, "b", {"x": 1}, "a.out->b.in"),
            (1, "c", {"y": 1}, "a.out->c.in"),
            (2, "b", {"x": 2}, "a.out->b.in"),
            (3, "c", {"y": 2}, "a.out->c.in"),
        ]
        assert job.next_seq == 4
        assert [(r.event, r.target) for r in job.tracker.get_event_flow()] == [
            ("out", "b"),
            ("out", "c"),
            ("out", "b"),
            ("out", "c"),
        ]
        assert len(job.get_execution_history()) == 3


def _recorded(job: JobState) -> tuple[Any, ...]:
    run = job.runs["a"]
    return (
        [(m.seq, m.routine_id, m.data, m.source) for m in job.pending],
        [(r.event, r.target, r.slot) for r in job.tracker.get_event_flow()],
        [(r.event_name, r.data) for r in job.get_execution_history()],
        (run.status, run.activations, run.stats),
        job.tracker.get_routine_performance("a"),
    )


def test_commit_call_records_what_the_separate_steps_would() -> None:
    """commit_call counts the call, its counters and its emits as the separate methods do."""
    routes = {"out": [_Route("b", "in"), _Route("c", "in", {"x": "y"})], "done": []}
    emits = [("out", {"x": 1}), ("done", {})]
    batched, separate = JobState(flow_id="f"), JobState(flow_id="f")
    for job in (batched, separate):
        job.add_routines(["a"])
    produced: list[Any] = []
    batched.commit_call("a", 0.5, {}, {"n": 2}, emits, routes, produced)
    separate.tracker.record_call("a", True, 0.5)
    separate.record_success(separate.runs["a"], {}, {"n": 2})
    separate.record_emits("a", emits, routes, 5.0)
    assert _recorded(batched) == _recorded(separate)
    assert [m.routine_id for m in produced] == ["b", "c"]
    assert _recorded(batched)[3] == ("completed", 1, {"n": 2})


def test_a_new_job_gives_each_routine_a_fresh_run_of_its_own() -> None:
    """add_routines on a new job makes what RoutineRun() makes, one object per routine."""
    job = JobState(flow_id="f")
    job.add_routines(["a", "b"])
    assert job.runs == {"a": RoutineRun(), "b": RoutineRun()}
    assert job.runs["a"] is not job.runs["b"]
    assert job.runs["a"].stats is not job.runs["b"].stats
    assert job.runs["a"].as_dict() == {"status": "pending", "activations": 0, "stats": {}}
    job.runs["a"].stats["mine"] = 1  # an edit of one run's dict shows nowhere else
    assert job.runs["b"].stats == {} and RoutineRun().stats == {}


def test_stats_changes_are_what_this_run_changed_from_where_it_began() -> None:
    """stats_changes lists, per routine whose counters changed since add_routines,
    the dict the run began with and the one it has now; a new run starts afresh."""
    job = JobState(flow_id="f")
    job.add_routines(["a", "b", "c"])
    job.commit_call("a", 0.1, {}, {"n": 2}, [], {})
    first = job.runs["a"].stats
    job.commit_call("a", 0.1, first, {"n": 5}, [], {})
    job.commit_call("b", 0.1, {}, {}, [], {})  # a call that changed nothing
    job.update_routine_state("c", {"stats": {"seen": "x"}})
    assert job.stats_changes() == [("a", {}, {"n": 5}), ("c", {}, {"seen": "x"})]
    job.add_routines(["a", "b", "c"])  # the job runs again (a resume)
    assert job.stats_changes() == []
    job.commit_call("a", 0.1, job.runs["a"].stats, {"n": 6}, [], {})
    assert job.stats_changes() == [("a", {"n": 5}, {"n": 6})]


def test_queued_messages_are_whole_messages() -> None:
    """commit_call and record_emits make their messages without Message.__init__: each
    equals the message made the usual way, every field set."""
    routes = {"out": [_Route("b", "in"), _Route("c", "in", {"x": "y"})]}
    for record in ("commit_call", "record_emits"):
        job = JobState(flow_id="f")
        job.add_routines(["a"])
        if record == "commit_call":
            job.commit_call("a", 0.1, {}, None, [("out", {"x": 1})], routes)
        else:
            job.record_emits("a", [("out", {"x": 1})], routes, 5.0)
        assert list(job.pending) == [
            Message(0, "b", "in", {"x": 1}, "a.out->b.in"),
            Message(1, "c", "in", {"y": 1}, "a.out->c.in"),
        ]


def test_record_success_counts_a_run_that_is_not_the_jobs() -> None:
    """A RoutineRun the job does not hold is still counted; the job's totals stay as they are."""
    job = JobState(flow_id="f")
    job.add_routines(["a"])
    loose = RoutineRun()
    job.record_success(loose, {}, {"n": 1})
    assert (loose.activations, loose.stats) == (1, {"n": 1})
    assert job.stats_changes() == [] and job.runs["a"].stats == {}
