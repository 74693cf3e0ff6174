"""Slots: merge strategies outside and inside a job, joins, wiring."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge import DefinitionError, ErrorHandler, ErrorStrategy, Flow, Routine
from flowforge.testing import Collect, Double, Join, Relay, Source


class Emitter(Routine):
    """Emits ``out(**data)`` on request (no slots)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out")


class Sink(Routine):
    """One slot ``in`` with the given merge strategy; keeps what the handler got."""

    def __init__(self, merge_strategy: Any = "override") -> None:
        super().__init__()
        self.got: list[dict[str, Any]] = []
        self.define_slot("in", handler=self.take, merge_strategy=merge_strategy)

    def take(self, **data: Any) -> None:
        """Record the data."""
        self.got.append(data)


def wired(merge_strategy: Any, sources: int = 1) -> tuple[list[Emitter], Sink]:
    """``sources`` emitters connected (in order) to one sink slot."""
    sink = Sink(merge_strategy)
    emitters = [Emitter() for _ in range(sources)]
    for emitter in emitters:
        emitter.get_event("out").connect(sink.get_slot("in"))  # type: ignore[union-attr,arg-type]
    return emitters, sink


def test_override_handles_each_delivery_on_its_own() -> None:
    """override: every delivery calls the handler with just that delivery."""
    (source,), sink = wired("override")
    source.emit("out", x=1)
    source.emit("out", x=2)
    assert sink.got == [{"x": 1}, {"x": 2}]


def test_append_gives_lists_of_everything_received_so_far() -> None:
    """append: each parameter becomes the list of all values so far."""
    (source,), sink = wired("append")
    source.emit("out", x=1)
    source.emit("out", x=2, y="b")
    assert sink.got == [{"x": [1]}, {"x": [1, 2], "y": ["b"]}]


def test_callable_merge_folds_deliveries() -> None:
    """A callable merge gets (accumulated, new); its result is handled and kept."""

    def total(acc: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        return {"sum": acc.get("sum", 0) + new["x"]}

    (source,), sink = wired(total)
    for x in (1, 2, 3):
        source.emit("out", x=x)
    assert sink.got == [{"sum": 1}, {"sum": 3}, {"sum": 6}]


def test_callable_merge_must_return_a_dict() -> None:
    """A merge function returning a non-dict raises TypeError naming it."""

    def broken(acc: dict[str, Any], new: dict[str, Any]) -> Any:
        return [new]

    (source,), _ = wired(broken)
    with pytest.raises(TypeError, match=r"broken.*must return a dict, got list"):
        source.emit("out", x=1)


def test_unknown_merge_strategy_is_refused_with_the_choices() -> None:
    """An unknown strategy name raises DefinitionError listing the valid ones."""
    with pytest.raises(DefinitionError, match="'override', 'append', 'join'"):
        Sink("merge-please")


def test_join_waits_for_every_source_then_fires_once() -> None:
    """join: the handler runs once, after every connected source delivered."""
    (first, second), sink = wired("join", sources=2)
    first.emit("out", a=1)
    assert sink.got == []
    second.emit("out", b=2)
    assert sink.got == [{"a": 1, "b": 2}]


def test_join_turns_shared_names_into_lists_in_connection_order() -> None:
    """join: a name sent by several sources arrives as a list, in connection order."""
    (first, second), sink = wired("join", sources=2)
    second.emit("out", value="second")
    first.emit("out", value="first")
    assert sink.got == [{"value": ["first", "second"]}]


def test_join_queues_each_source_so_streams_pair_item_by_item() -> None:
    """join: two deliveries from one source pair with the other source's two, in order."""
    (first, second), sink = wired("join", sources=2)
    first.emit("out", a=1)
    first.emit("out", a=2)
    second.emit("out", b=10)
    second.emit("out", b=20)
    assert sink.got == [{"a": 1, "b": 10}, {"a": 2, "b": 20}]


def test_is_join_is_true_only_for_join_slots() -> None:
    """Slot.is_join tells join slots apart."""
    assert Sink("join").get_slot("in").is_join  # type: ignore[union-attr]
    assert not Sink("append").get_slot("in").is_join  # type: ignore[union-attr]


def test_slot_without_handler_accepts_deliveries() -> None:
    """A slot with no handler takes deliveries and does nothing."""
    routine = Emitter()
    slot = routine.define_slot("quiet")
    slot.receive({"x": 1})
    assert slot.handler is None


def test_slot_connections_are_a_copy_in_connection_order() -> None:
    """Slot.connections lists arriving connections oldest first, as a copy."""
    (first, second), sink = wired("override", sources=2)
    slot = sink.get_slot("in")
    assert slot is not None
    connections = slot.connections
    assert [c.event.routine for c in connections] == [first, second]
    connections.clear()
    assert len(slot.connections) == 2


def test_slot_disconnect_removes_every_connection_from_that_event() -> None:
    """slot.disconnect(event) removes every wire from it; emits no longer arrive."""
    (source,), sink = wired("override")
    event = source.get_event("out")
    slot = sink.get_slot("in")
    assert event is not None and slot is not None
    event.connect(slot, {"x": "y"})
    slot.disconnect(event)
    source.emit("out", x=1)
    assert sink.got == []
    assert slot.connections == []


def test_a_slot_rewired_after_losing_its_only_wire_keeps_order() -> None:
    """Wires into a slot stay in the order made through removing and adding them."""
    (first, second, third), sink = wired("override", sources=3)
    slot = sink.get_slot("in")
    assert slot is not None
    for emitter in (first, second):
        emitter.get_event("out").disconnect(slot)  # type: ignore[union-attr]
    assert [c.event.routine for c in slot.connections] == [third]
    third.get_event("out").disconnect(slot)  # type: ignore[union-attr]
    assert slot.connections == []
    for emitter in (second, first):
        emitter.get_event("out").connect(slot)  # type: ignore[union-attr]
    assert [c.event.routine for c in slot.connections] == [second, first]
    first.emit("out", n=1)
    assert sink.got == [{"n": 1}]


def test_a_method_handler_is_its_routines_own_bound_method() -> None:
    """slot.handler of a method handler equals the method and calls it on its routine."""
    sink = Sink()
    slot = sink.get_slot("in")
    assert slot is not None and slot.handler is not None
    assert slot.handler == sink.take
    slot.handler(n=2)
    assert sink.got == [{"n": 2}]


def test_slots_of_one_method_share_one_invoker_function() -> None:
    """Every instance's slot calls its method through one shared function, bound per slot."""
    first, second = Sink(), Sink()
    invokers = [r.get_slot("in").invoke for r in (first, second)]  # type: ignore[union-attr]
    assert invokers[0].__func__ is invokers[1].__func__  # type: ignore[union-attr]
    invokers[1]({"n": 3})  # type: ignore[misc]
    assert (first.got, second.got) == ([], [{"n": 3}])


# -- inside a job --------------------------------------------------------------


def test_append_in_a_job_accumulates_per_job(executor: str) -> None:
    """append inside a job: lists grow with each delivery, and restart each job."""
    flow = Flow(executor=executor)
    flow.add_routine(Source(), "src")
    sink = Collect(merge_strategy="append")
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "sink", "in")
    flow.execute("src", {"values": [1, 2, 3]})
    assert sink.items == [{"value": [1]}, {"value": [1, 2]}, {"value": [1, 2, 3]}]
    flow.execute("src", {"values": [9]})
    assert sink.items[-1] == {"value": [9]}


def test_append_state_lives_in_the_job_state() -> None:
    """A job's merge state is in its JobState.slot_states, not on the slot."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(merge_strategy="append"), "sink")
    flow.connect("src", "out", "sink", "in")
    job = flow.execute("src", {"values": [1, 2]})
    assert job.slot_states == {"sink.in": {"value": [1, 2]}}


def test_join_in_a_job_pairs_two_branches(executor: str) -> None:
    """A join inside a job gets one item from each branch, names as lists."""
    flow = Flow(executor=executor)
    flow.add_routine(Source(), "src")
    flow.add_routine(Double(), "double")
    flow.add_routine(Relay(), "relay")
    flow.add_routine(Join(), "join")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "double", "in")
    flow.connect("src", "out", "relay", "in")
    flow.connect("double", "out", "join", "in")
    flow.connect("relay", "out", "join", "in")
    flow.connect("join", "out", "sink", "in")
    job = flow.execute("src", {"values": [5]})
    assert job.status == "completed"
    assert sink.items == [{"value": [10, 5]}]


def test_join_in_a_job_pairs_streams_in_order(executor: str) -> None:
    """Joined streams pair item by item, in order, on either executor."""
    flow = Flow(executor=executor, max_workers=4)
    flow.add_routine(Source(), "src")
    slow = Relay()
    fast = Relay()
    fast.max_concurrency = 4
    flow.add_routine(slow, "left")
    flow.add_routine(fast, "right")
    flow.add_routine(Join(), "join")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "left", "in", {"value": "left"})
    flow.connect("src", "out", "right", "in", {"value": "right"})
    flow.connect("left", "out", "join", "in")
    flow.connect("right", "out", "join", "in")
    flow.connect("join", "out", "sink", "in")
    values = list(range(20))
    job = flow.execute("src", {"values": values})
    assert job.status == "completed"
    assert sorted(item["left"] for item in sink.items) == values
    assert all(item["left"] == item["right"] for item in sink.items)


def test_two_wires_from_one_event_into_a_join_are_two_sources(executor: str) -> None:
    """One event wired twice into a join (different mappings) pairs the two wires."""
    flow = Flow(executor=executor)
    flow.add_routine(Source(), "src")
    flow.add_routine(Join(), "join")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "join", "in", {"value": "x"})
    flow.connect("src", "out", "join", "in", {"value": "y"})
    flow.connect("join", "out", "sink", "in")
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "completed"
    assert sorted(map(repr, sink.items)) == sorted(map(repr, [{"x": 1, "y": 1}, {"x": 2, "y": 2}]))


def test_a_raising_merge_function_is_a_recorded_error_and_loses_nothing(executor: str) -> None:
    """A merge function that raises inside a job is recorded; execute() does not raise."""

    def explode_on_two(acc: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        if new["value"] == 2:
            raise RuntimeError("merge failed")
        return new

    flow = Flow(executor=executor, error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(Source(), "src")
    sink = Collect(merge_strategy=explode_on_two)
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "sink", "in")
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert job.status == "completed"
    assert sorted(i["value"] for i in sink.items) == [1, 3]
    assert [(e.routine_id, e.error_type) for e in job.errors] == [("sink", "RuntimeError")]


def test_a_slot_invoker_closes_over_nothing() -> None:
    """The invoker binds what it needs as defaults: no closure cells per routine."""

    class Handlers(Routine):
        def one(self, value: int) -> None: ...
        def two(self, a: int, b: int = 0) -> None: ...
        def anything(self, **data: Any) -> None: ...
        def keyword(self, *, value: int) -> None: ...

    routine = Handlers()
    for name in ("one", "two", "anything", "keyword"):
        invoke = routine.define_slot(name, handler=getattr(routine, name)).invoke
        assert getattr(invoke, "__closure__", None) is None, name


def test_merge_join_that_fires_leaves_the_state_it_is_given() -> None:
    """The delivery that completes a round returns a new state and leaves the
    committed one as it was (a failed call keeps it); one that cannot complete
    it adds to the state in place, which the scheduler commits at once."""
    from flowforge.slot import join_queues, merge_join

    sources = ("a", "b")
    state = {"a": [{"x": 1}, {"x": 2}]}
    fired, after = merge_join(state, {"y": 3}, "b", sources)
    assert fired == {"x": 1, "y": 3}
    assert join_queues(after) == {"a": [{"x": 2}]}
    assert state == {"a": [{"x": 1}, {"x": 2}]}
    waiting, later = merge_join(after, {"x": 4}, "a", sources)
    assert waiting is None and join_queues(later) == {"a": [{"x": 2}, {"x": 4}]}
    assert later is after


def test_merge_join_completes_exactly_when_every_source_has_an_item() -> None:
    """In place or not, a join fires exactly when each source has an item,
    pairing items in arrival order per source, whatever order sources deliver in."""
    from flowforge.slot import join_queues, merge_join

    sources = ("a", "b", "c")
    state: Any = None
    rounds = []
    for source, x in [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("c", 5), ("c", 6), ("b", 7)]:
        fired, state = merge_join(state, {source: x}, source, sources)
        if fired is not None:
            rounds.append(fired)
    assert rounds == [{"a": 1, "b": 3, "c": 5}, {"a": 2, "b": 7, "c": 6}]
    assert join_queues(state) == {"a": [{"a": 4}]}


@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.integers(min_value=0, max_value=n - 1), max_size=40)
        )
    )
)
@settings(max_examples=200, deadline=None)
def test_merge_join_pairs_items_per_source_in_arrival_order(case: tuple[int, list[int]]) -> None:
    """Whatever the order of deliveries, a join fires once per complete round
    with each source's oldest item, and a firing delivery leaves the old state intact."""
    from flowforge.slot import join_queues, merge_join

    width, order = case
    sources = tuple(f"s{i}" for i in range(width))
    queues: dict[str, list[int]] = {s: [] for s in sources}
    state: Any = None
    for n, index in enumerate(order):
        source = sources[index]
        before = copy.deepcopy(state)
        fired, new_state = merge_join(state, {source: n}, source, sources)
        queues[source].append(n)
        if all(queues.values()):
            assert fired == {s: queues[s].pop(0) for s in sources}
            assert (None if state is None else state) == before
        else:
            assert fired is None
        assert join_queues(new_state) == {s: [{s: n} for n in q] for s, q in queues.items() if q}
        state = new_state


def test_a_join_with_one_source_far_ahead_keeps_its_state_small() -> None:
    """One source 1,000 items ahead: each round takes one item without copying the
    backlog, and what the state holds stays within twice what waits (plus a little)."""
    from flowforge.slot import COMPACT_AFTER, join_queues, merge_join

    sources = ("a", "b")
    state: Any = None
    for n in range(1000):
        _, state = merge_join(state, {"a": n}, "a", sources)
    for n in range(1000):
        fired, state = merge_join(state, {"b": n}, "b", sources)
        assert fired == {"a": n, "b": n}
        waiting = len(join_queues(state).get("a", []))
        assert waiting == 999 - n
        assert len(state.get("a", [])) <= 2 * waiting + COMPACT_AFTER + 1
    assert not state
