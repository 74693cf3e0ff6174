"""Flows: building, connecting, executing, error handlers, resume rules, async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import AsyncDouble, chain, linear_flow

from flowforge import (
    Connection,
    DefinitionError,
    DefinitionTypeError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStateError,
    JobStatus,
    Routine,
    UnknownNameError,
)
from flowforge.store import MemoryStore
from flowforge.testing import Collect, Double, Flaky, Join, Relay, Source


class TwoSlots(Routine):
    """Two slots, ``a`` and ``b``, each relaying to ``out``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("a", handler=lambda **d: self.emit("out", slot="a", **d))
        self.define_slot("b", handler=lambda **d: self.emit("out", slot="b", **d))
        self.define_event("out")


class Starter(Routine):
    """Overrides __call__ to emit twice."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out", ["value"])

    def __call__(self, **params: Any) -> None:
        """Start by emitting 1 and 2."""
        self.emit("out", value=1)
        self.emit("out", value=2)


# -- building ----------------------------------------------------------------------


def test_flow_id_is_generated_when_omitted() -> None:
    """Flow() gets a unique id; an explicit one is kept."""
    assert Flow().flow_id != Flow().flow_id
    assert Flow(flow_id="mine").flow_id == "mine"


def test_add_routine_returns_the_id_and_get_routine_finds_it() -> None:
    """add_routine returns the id; get_routine returns the routine or None."""
    flow = Flow()
    routine = Relay()
    assert flow.add_routine(routine, "relay") == "relay"
    assert flow.get_routine("relay") is routine
    assert flow.get_routine("nope") is None


def test_add_routine_makes_an_id_from_the_class_name() -> None:
    """Without an id, one is made from the class name, numbered."""
    flow = Flow()
    assert flow.add_routine(Relay()) == "relay_1"
    assert flow.add_routine(Relay()) == "relay_2"


def test_duplicate_routine_id_is_an_error() -> None:
    """Adding a second routine under a used id raises DefinitionError."""
    flow = Flow()
    flow.add_routine(Relay(), "r")
    with pytest.raises(DefinitionError, match="already has a routine 'r'"):
        flow.add_routine(Relay(), "r")


@pytest.mark.parametrize("rid", ["a.b", "1abc", "has space", "", "a\n", "out ", "a->b"])
def test_invalid_routine_ids_are_refused(rid: str) -> None:
    """Ids with dots, spaces or a leading digit are refused."""
    flow = Flow()
    with pytest.raises(DefinitionError, match="not valid"):
        flow.add_routine(Relay(), rid)


def test_a_routine_belongs_to_one_flow() -> None:
    """Adding a routine that is already in a flow raises DefinitionError."""
    routine = Relay()
    Flow().add_routine(routine, "r")
    with pytest.raises(DefinitionError, match="already in a flow as 'r'"):
        Flow().add_routine(routine, "r")


def test_add_routine_takes_only_routines() -> None:
    """add_routine with a non-Routine raises TypeError."""
    with pytest.raises(TypeError, match="Routine instance"):
        Flow().add_routine(object())  # type: ignore[arg-type]


def test_routine_that_skipped_super_init_is_reported() -> None:
    """A subclass that forgot super().__init__() gets a clear error."""

    class Forgetful(Routine):
        def __init__(self) -> None:
            pass

    with pytest.raises(DefinitionError, match=r"super\(\).__init__\(\)"):
        Flow().add_routine(Forgetful())


def test_routines_is_a_read_only_view_in_insertion_order() -> None:
    """flow.routines maps ids to routines in order and cannot be assigned to."""
    flow = Flow()
    flow.add_routine(Relay(), "b")
    flow.add_routine(Relay(), "a")
    assert list(flow.routines) == ["b", "a"]
    with pytest.raises(TypeError):
        flow.routines["c"] = Relay()  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (("nope", "out", "sink", "in"), "'sink', 'src'"),
        (("src", "nope", "sink", "in"), "'out'"),
        (("src", "out", "sink", "nope"), "'in'"),
        (("src", "out", "nope", "in"), "'sink', 'src'"),
    ],
)
def test_connect_unknown_names_lists_the_names_that_exist(
    args: tuple[str, str, str, str], listed: str
) -> None:
    """connect() with an unknown routine, event or slot lists what does exist."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    with pytest.raises(UnknownNameError) as info:
        flow.connect(*args)
    assert "'nope'" in str(info.value)
    assert listed in str(info.value)
    assert info.value.name == "nope"


def test_a_long_chain_keeps_few_objects_for_the_garbage_collector() -> None:
    """Each routine of a chain, with its slot, event and wire, keeps at most 8 tracked objects."""
    import gc

    def build(length: int) -> Flow:
        flow = Flow(flow_id="chain")
        for i in range(length):
            flow.add_routine(Relay(), f"r{i}")
        for i in range(1, length):
            flow.connect(f"r{i - 1}", "out", f"r{i}", "in")
        return flow

    build(2)
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        flow = build(500)
        kept = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert len(flow.routines) == 500
    assert kept <= 8 * 500 + 20  # and the flow's own few


def test_connections_lists_every_connection_in_the_order_made() -> None:
    """flow.connections lists connections oldest first."""
    flow = Flow()
    sink = linear_flow(flow)
    assert sink is flow.get_routine("sink")
    assert [c.key for c in flow.connections] == [
        "src.out->double.in",
        "double.out->relay.in",
        "relay.out->sink.in",
    ]


def test_connections_is_the_flows_own_list_in_the_order_made() -> None:
    """flow.connections is kept by the flow: a copy of its list, updated on connect/disconnect."""
    flow = Flow()
    linear_flow(flow)
    first = flow.connections
    first.clear()
    assert len(flow.connections) == 3
    flow.connections[0].disconnect()
    assert [c.key for c in flow.connections] == ["double.out->relay.in", "relay.out->sink.in"]


def test_connection_made_by_hand_between_flow_routines_joins_the_list() -> None:
    """A Connection built directly between two routines of a flow is one of its connections."""
    flow = Flow()
    source, sink = Source(), Collect()
    flow.add_routine(source, "src")
    flow.add_routine(sink, "sink")
    wire = Connection(source.get_event("out"), sink.get_slot("in"))  # type: ignore[arg-type]
    assert flow.connections == [wire]


def test_connections_of_a_slot_keep_the_slots_order_when_wired_before_adding() -> None:
    """Wires made before add_routine are listed in the order their slot received them."""
    left, right, join = Relay(), Relay(), Collect()
    slot = join.get_slot("in")
    assert slot is not None
    Connection(right.get_event("out"), slot)  # type: ignore[arg-type]
    Connection(left.get_event("out"), slot)  # type: ignore[arg-type]
    flow = Flow()
    flow.add_routine(join, "join")
    flow.add_routine(left, "left")
    flow.add_routine(right, "right")
    assert [c.key for c in flow.connections] == ["right.out->join.in", "left.out->join.in"]


def test_connection_between_two_flows_is_refused() -> None:
    """A Connection from a routine of one flow into a routine of another raises."""
    a, b = Flow(flow_id="a"), Flow(flow_id="b")
    source, sink = Source(), Collect()
    a.add_routine(source, "src")
    b.add_routine(sink, "sink")
    with pytest.raises(DefinitionError, match="routines of one flow"):
        Connection(source.get_event("out"), sink.get_slot("in"))  # type: ignore[arg-type]
    assert a.connections == [] and b.connections == []


def test_adding_a_routine_wired_into_another_flow_is_refused() -> None:
    """add_routine refuses a routine connected to a routine that is in another flow."""
    source, sink = Source(), Collect()
    Connection(source.get_event("out"), sink.get_slot("in"))  # type: ignore[arg-type]
    Flow(flow_id="a").add_routine(source, "src")
    other = Flow(flow_id="b")
    with pytest.raises(DefinitionError, match="of flow 'a'"):
        other.add_routine(sink, "sink")
    assert dict(other.routines) == {}
    assert sink.routine_id is None


def test_a_routine_wired_by_hand_to_a_flows_routine_joins_it_when_added() -> None:
    """A wire from a flow's routine to one in no flow becomes the flow's when that one is added."""
    flow = Flow()
    source, sink = Source(), Collect()
    flow.add_routine(source, "src")
    Connection(source.get_event("out"), sink.get_slot("in"))  # type: ignore[arg-type]
    assert flow.connections == []
    flow.add_routine(sink, "sink")
    assert [c.key for c in flow.connections] == ["src.out->sink.in"]
    flow.execute("src", {"values": [7]})
    assert sink.items == [{"value": 7}]


def test_a_routine_whose_wires_were_removed_is_added_without_them() -> None:
    """Wired and disconnected before add_routine: the flow gets no connection."""
    source, sink = Source(), Collect()
    Connection(source.get_event("out"), sink.get_slot("in")).disconnect()  # type: ignore[arg-type]
    flow = Flow()
    flow.add_routine(source, "src")
    flow.add_routine(sink, "sink")
    assert flow.connections == []


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"flow_id": 123}, DefinitionTypeError, "got int 123"),
        ({"flow_id": ""}, DefinitionError, "not valid"),
        ({"flow_id": "a b"}, DefinitionError, "not valid"),
        ({"retention": None}, DefinitionTypeError, "retention must be an int >= 1"),
        ({"retention": 1.5}, DefinitionTypeError, "retention must be an int >= 1"),
        ({"retention": 0}, DefinitionError, "retention must be an int >= 1"),
        ({"error_handler": "stop"}, DefinitionTypeError, "must be an ErrorHandler"),
        ({"store": "jobs.db"}, DefinitionTypeError, r"SQLiteStore\('jobs.db'\)"),
        ({"store": 3}, DefinitionTypeError, "must be a store"),
        ({"max_activations": -1}, DefinitionError, "max_activations must be an int >= 1"),
        ({"max_activations": "x"}, DefinitionTypeError, "max_activations must be an int"),
        ({"max_workers": 0}, DefinitionError, "max_workers must be an int >= 1"),
        ({"max_workers": 0, "executor": "thread"}, DefinitionError, "max_workers"),
    ],
)
def test_bad_flow_options_are_refused_when_the_flow_is_made(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Flow() checks each option at once: a wrong type or value raises, saying what to pass."""
    with pytest.raises(error, match=match):
        Flow(**options)


def test_bad_type_errors_are_also_type_errors() -> None:
    """A wrong option type is a TypeError as well as a FlowForge DefinitionError."""
    with pytest.raises(TypeError):
        Flow(retention="many")  # type: ignore[arg-type]


def test_max_activations_set_later_is_checked() -> None:
    """Assigning flow.max_activations checks the value too."""
    flow = Flow()
    with pytest.raises(DefinitionError):
        flow.max_activations = 0
    flow.max_activations = None
    assert flow.max_activations is None


def test_a_join_on_a_loop_refuses_to_start_naming_the_loop() -> None:
    """execute() raises before the job starts when a join waits for its own downstream."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Join(), "join")
    flow.add_routine(Relay(), "again")
    flow.connect("src", "out", "join", "in")
    flow.connect("join", "out", "again", "in")
    flow.connect("again", "out", "join", "in")
    with pytest.raises(DefinitionError, match="join -> again -> join"):
        flow.execute("src", {"values": [1]})
    assert flow.running_jobs == []
    assert flow.execution_tracker is None


def test_a_join_loop_check_follows_the_wiring() -> None:
    """Removing the wire that closes the loop lets the flow start again."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Join(), "join")
    flow.add_routine(Relay(), "again")
    flow.connect("src", "out", "join", "in")
    flow.connect("join", "out", "again", "in")
    back = flow.connect("again", "out", "join", "in")
    with pytest.raises(DefinitionError):
        flow.execute("src", {"values": [1]})
    back.disconnect()
    assert flow.execute("src", {"values": [1]}).status == "completed"


def test_set_error_handler_takes_only_error_handlers() -> None:
    """set_error_handler with anything else raises TypeError."""
    with pytest.raises(TypeError, match="ErrorHandler"):
        Flow().set_error_handler("continue")  # type: ignore[arg-type]


# -- executing -----------------------------------------------------------------------


def test_execute_runs_until_no_work_is_left(executor: str) -> None:
    """execute() returns a completed JobState once every message is handled."""
    flow = Flow(executor=executor)
    sink = linear_flow(flow)
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "completed"
    assert not job.pending
    assert sorted(i["value"] for i in sink.items) == [2, 4]


def test_execute_unknown_entry_raises_before_the_job_starts() -> None:
    """An unknown entry routine is misuse: it raises and lists the routines."""
    flow = Flow()
    flow.add_routine(Relay(), "relay")
    with pytest.raises(UnknownNameError, match="'relay'"):
        flow.execute("nope")


def test_multi_slot_entry_without_entry_slot_raises_before_the_job_starts() -> None:
    """A multi-slot entry routine needs entry_slot=, and says so."""
    flow = Flow()
    flow.add_routine(TwoSlots(), "two")
    with pytest.raises(DefinitionError, match="entry_slot"):
        flow.execute("two", {"x": 1})
    assert flow.execution_tracker is None


def test_entry_slot_picks_the_slot() -> None:
    """entry_slot= delivers the entry params to that slot."""
    flow = Flow()
    flow.add_routine(TwoSlots(), "two")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("two", "out", "sink", "in")
    flow.execute("two", {"x": 1}, entry_slot="b")
    assert sink.items == [{"slot": "b", "x": 1}]


def test_unknown_entry_slot_lists_the_slots() -> None:
    """An unknown entry_slot raises UnknownNameError listing the slots."""
    flow = Flow()
    flow.add_routine(TwoSlots(), "two")
    with pytest.raises(UnknownNameError, match="'a', 'b'"):
        flow.execute("two", {}, entry_slot="c")


def test_entry_params_must_be_a_mapping() -> None:
    """entry_params that is not a mapping raises TypeError."""
    flow = Flow()
    flow.add_routine(Relay(), "relay")
    with pytest.raises(TypeError, match="mapping"):
        flow.execute("relay", [1, 2])  # type: ignore[arg-type]


def test_overridden_call_starts_the_job_its_own_way() -> None:
    """A routine overriding __call__ starts the job by what it emits."""
    flow = Flow()
    flow.add_routine(Starter(), "start")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("start", "out", "sink", "in")
    job = flow.execute("start")
    assert job.status == "completed"
    assert sink.items == [{"value": 1}, {"value": 2}]


def test_handler_errors_do_not_propagate_out_of_execute() -> None:
    """A raising handler fails the job (STOP); execute() itself returns."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flow.add_routine(flaky, "flaky")
    job = flow.execute("flaky", {"x": 1})
    assert job.status == "failed"
    assert job.error is not None
    assert (job.error.routine_id, job.error.slot, job.error.error_type) == (
        "flaky",
        "in",
        "ValueError",
    )
    assert "flaky failure #1" in job.error.message
    assert "Traceback" in job.error.traceback


def test_missing_handler_parameter_at_run_time_is_a_handler_error() -> None:
    """A handler parameter missing at run time is recorded; the strategy applies."""
    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(Source(), "src")
    flow.add_routine(TwoArgs(), "two")
    flow.connect("src", "out", "two", "in")
    job = flow.execute("src", {"values": [1]})
    assert job.status == "completed"
    assert [e.error_type for e in job.errors] == ["HandlerParameterError"]
    assert "'a'" in job.errors[0].message


class TwoArgs(Routine):
    """A handler needing ``a`` and ``b``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=lambda a, b: None)


def test_routine_error_handler_wins_over_the_flows() -> None:
    """A routine's own ErrorHandler is used instead of the flow's."""
    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.STOP))
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flaky.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(flaky, "flaky")
    job = flow.execute("flaky", {"x": 1})
    assert job.status == "completed"
    assert job.errors[0].strategy == "continue"


def test_set_error_handler_after_a_job_applies_to_the_next_job() -> None:
    """Changing the flow's handler between jobs takes effect."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flow.add_routine(flaky, "flaky")
    assert flow.execute("flaky", {"x": 1}).status == "failed"
    flow.set_error_handler(ErrorHandler(ErrorStrategy.SKIP))
    assert flow.execute("flaky", {"x": 1}).status == "completed"


def test_policy_change_after_a_job_applies_to_the_next_job() -> None:
    """Changing a routine's policy between jobs takes effect."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flow.add_routine(flaky, "flaky")
    assert flow.execute("flaky", {"x": 1}).status == "failed"
    flaky.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    assert flow.execute("flaky", {"x": 1}).status == "completed"


def test_connection_made_after_a_job_is_used_by_the_next_job() -> None:
    """Wiring a flow between jobs takes effect."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.execute("src", {"values": [1]})
    flow.connect("src", "out", "sink", "in")
    flow.execute("src", {"values": [2]})
    assert sink.items == [{"value": 2}]


def test_execution_tracker_is_the_latest_jobs() -> None:
    """flow.execution_tracker is the tracker of the latest job."""
    flow = Flow()
    linear_flow(flow)
    first = flow.execute("src", {"values": [1]})
    second = flow.execute("src", {"values": [1]})
    assert flow.execution_tracker is second.tracker
    assert flow.execution_tracker is not first.tracker


def test_execute_with_a_chosen_job_state_uses_it() -> None:
    """execute(job_state=JobState(job_id=...)) runs in that JobState."""
    flow = Flow()
    linear_flow(flow)
    job = JobState(job_id="chosen")
    assert flow.execute("src", {"values": [1]}, job_state=job) is job
    assert job.job_id == "chosen"
    assert job.flow_id == flow.flow_id


def test_execute_refuses_a_job_state_that_already_ran() -> None:
    """execute() needs a fresh JobState and points at resume()."""
    flow = Flow()
    linear_flow(flow)
    job = flow.execute("src", {"values": [1]})
    with pytest.raises(JobStateError, match="resume"):
        flow.execute("src", {"values": [1]}, job_state=job)


def test_stats_carry_the_job_counters_back_to_the_routine() -> None:
    """After a job, routine.stats() shows the job's counters."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    double = Double()
    flow.add_routine(double, "double")
    flow.connect("src", "out", "double", "in")
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert double.stats() == {"calls": 3}
    assert job.get_routine_state("double")["stats"] == {"calls": 3}  # type: ignore[index]


# -- resume rules ----------------------------------------------------------------------


def test_resume_refuses_a_completed_job() -> None:
    """Only paused, interrupted or failed jobs can be resumed."""
    flow = Flow()
    linear_flow(flow)
    job = flow.execute("src", {"values": [1]})
    with pytest.raises(JobStateError, match="completed"):
        flow.resume(job)


def test_resume_refuses_another_flows_job() -> None:
    """A job resumes only in the flow it was started on."""
    flow, other = Flow(flow_id="one"), Flow(flow_id="two")
    linear_flow(flow)
    linear_flow(other)
    job = JobState(flow_id="one")
    with pytest.raises(JobStateError, match="'one'"):
        other.resume(job)


def test_resume_takes_a_job_state() -> None:
    """resume() with something else raises TypeError."""
    with pytest.raises(TypeError, match="JobState"):
        Flow().resume({"job_id": "x"})  # type: ignore[arg-type]


def test_resume_of_a_failed_job_retries_the_failed_message() -> None:
    """STOP puts the failed message back; resume() after a fix finishes the job."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=1)
    sink = Collect()
    chain(flow, ("src", Source()), ("flaky", flaky), ("sink", sink))
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "failed"
    assert job.pending[0].routine_id == "flaky"
    flow.resume(job)
    assert job.status == "completed"
    assert job.error is None
    assert sink.items == [{"value": 1}, {"value": 2}]


def test_pause_without_a_running_job_is_an_error() -> None:
    """flow.pause() with nothing running raises JobStateError."""
    flow = Flow()
    linear_flow(flow)
    with pytest.raises(JobStateError, match="0 running jobs"):
        flow.pause()


def test_cancel_of_a_job_that_is_not_running_is_an_error() -> None:
    """flow.cancel(job) of a finished job raises JobStateError."""
    flow = Flow()
    linear_flow(flow)
    job = flow.execute("src", {"values": [1]})
    with pytest.raises(JobStateError, match="not running"):
        flow.cancel(job)


# -- async ---------------------------------------------------------------------------------


def test_async_handlers_run_in_a_plain_execute(executor: str) -> None:
    """async def handlers run under execute(), on either executor."""
    flow = Flow(executor=executor)
    sink = Collect()
    chain(flow, ("src", Source()), ("double", AsyncDouble()), ("sink", sink))
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "completed"
    assert sorted(i["value"] for i in sink.items) == [2, 4]


def test_execute_async_runs_async_handlers_on_the_callers_loop() -> None:
    """await flow.execute_async() runs the job; async handlers use the caller's loop."""
    loops: list[asyncio.AbstractEventLoop] = []

    class LoopSpy(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.spy)

        async def spy(self, value: Any) -> None:
            loops.append(asyncio.get_running_loop())

    flow = Flow()
    flow.add_routine(LoopSpy(), "spy")

    async def main() -> tuple[JobState, asyncio.AbstractEventLoop]:
        return await flow.execute_async("spy", {"value": 1}), asyncio.get_running_loop()

    job, loop = asyncio.run(main())
    assert job.status == "completed"
    assert loops == [loop]


def test_disconnect_after_a_job_applies_to_the_next_job() -> None:
    """Removing a connection between jobs takes effect."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    sink = Collect()
    flow.add_routine(sink, "sink")
    connection = flow.connect("src", "out", "sink", "in")
    flow.execute("src", {"values": [1]})
    connection.disconnect()
    flow.execute("src", {"values": [2]})
    assert sink.items == [{"value": 1}]
    assert flow.connections == []


def test_resume_refuses_a_job_with_messages_for_routines_the_flow_lacks() -> None:
    """Resuming in a flow without a pending message's routine raises, naming it."""
    flow = Flow(flow_id="f")
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    chain(flow, ("src", Source()), ("flaky", flaky))
    job = flow.execute("src", {"values": [1]})
    other = Flow(flow_id="f")
    other.add_routine(Source(), "src")
    with pytest.raises(JobStateError, match=r"'flaky\.in'"):
        other.resume(job)


def test_failed_overridden_call_is_retried_on_resume() -> None:
    """An entry __call__ that fails leaves its entry message pending; resume reruns it once."""

    class StartOnce(Starter):
        broken = True

        def __call__(self, **params: Any) -> None:
            super().__call__(**params)
            if StartOnce.broken:
                raise RuntimeError("start failed")

    flow = Flow()
    flow.add_routine(StartOnce(), "start")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("start", "out", "sink", "in")
    job = flow.execute("start")
    assert job.status == "failed"
    assert job.error is not None and (job.error.routine_id, job.error.slot) == ("start", None)
    assert sink.items == []
    StartOnce.broken = False
    flow.resume(JobState.from_dict(job.serialize()))
    assert sink.items == [{"value": 1}, {"value": 2}]


def test_retention_set_later_is_checked() -> None:
    """Assigning flow.retention checks the value like Flow(retention=...)."""
    flow = Flow()
    with pytest.raises(DefinitionError, match="retention must be an int >= 1"):
        flow.retention = 0
    flow.retention = 5
    assert flow.retention == 5


def test_an_id_made_from_a_non_ascii_class_name_is_valid() -> None:
    """The id made from a class name is always a valid id."""

    class Données(Relay):
        """A class name with a non-ASCII letter."""

    assert Flow().add_routine(Données()) == "donn_es_1"


def test_submit_queues_a_job_at_the_flows_entry_with_the_given_params() -> None:
    """Flow.submit(params, store=) stores a queued job starting at the flow's entry."""
    flow = Flow(flow_id="queued")
    flow.add_routine(Source(), "src")
    flow.entry = {"routine_id": "src", "slot": "in", "params": {"values": [9]}}
    with MemoryStore() as store:
        job = flow.submit({"values": [1, 2]}, store=store)
        stored = store.load(job.job_id)
    assert stored.status == JobStatus.QUEUED
    assert stored.entry == {"routine_id": "src", "slot": "in", "params": {"values": [1, 2]}}
    assert [m.routine_id for m in stored.pending] == ["src"]


def test_submit_without_a_store_says_what_it_needs() -> None:
    """A flow with no store cannot queue a job; the error says to pass one."""
    flow = Flow(flow_id="queued")
    flow.add_routine(Source(), "src")
    with pytest.raises(TypeError, match="store=open_store"):
        flow.submit({"values": [1]}, entry_routine_id="src")


@pytest.mark.parametrize("rid", ["a-b", "_x", "Step-1_b"])
def test_routine_ids_with_dashes_are_valid(rid: str) -> None:
    """Ids of letters, digits, '_' and '-' (not first) are accepted as given."""
    flow = Flow()
    assert flow.add_routine(Relay(), rid) == rid
    assert flow.get_routine(rid) is not None


@pytest.mark.parametrize("rid", ["naïve", "é", "-a"])
def test_routine_ids_outside_the_name_rule_are_refused(rid: str) -> None:
    """Non-ASCII identifiers and a leading '-' are not valid routine ids."""
    with pytest.raises(DefinitionError, match="not valid"):
        Flow().add_routine(Relay(), rid)


def test_a_loop_wired_before_add_routine_is_listed_once() -> None:
    """A routine wired to itself before it is added gives the flow one connection."""
    loop = Relay()
    Connection(loop.get_event("out"), loop.get_slot("in"))  # type: ignore[arg-type]
    flow = Flow()
    flow.add_routine(loop, "loop")
    assert [c.key for c in flow.connections] == ["loop.out->loop.in"]


def test_a_disconnected_wire_leaves_the_flow_and_another_can_be_made() -> None:
    """After disconnect() the same wire can be made again and is listed once."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    flow.connect("src", "out", "sink", "in").disconnect()
    again = flow.connect("src", "out", "sink", "in")
    assert flow.connections == [again]


def test_connect_unknown_name_error_hides_the_lookup_behind_it() -> None:
    """The UnknownNameError of connect() shows no KeyError in its traceback."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    with pytest.raises(UnknownNameError) as info:
        flow.connect("src", "out", "nope", "in")
    assert info.value.__suppress_context__
    assert info.value.__cause__ is None
