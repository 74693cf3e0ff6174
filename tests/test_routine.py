"""The Routine contract: declaring, emitting, calling handlers, stats, config, policy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowforge import (
    Connection,
    DefinitionError,
    EmitError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    HandlerParameterError,
    JobStateError,
    Policy,
    Routine,
)
from flowforge.testing import Collect, Relay, Source


class Emitter(Routine):
    """A routine with one declared event, ``out(value)``, and an any-params event."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out", ["value"])
        self.define_event("anything")


class Probe(Routine):
    """One slot whose handler is given; records what the handler received."""

    def __init__(self, handler: Any = None) -> None:
        super().__init__()
        self.received: list[Any] = []
        self.define_slot("in", handler=handler or self.take)

    def take(self, **data: Any) -> None:
        """Record everything."""
        self.received.append(data)


def deliver(handler: Any, data: dict[str, Any]) -> None:
    """Deliver ``data`` to a fresh one-slot routine whose handler is ``handler``."""
    Probe(handler).get_slot("in").receive(data)  # type: ignore[union-attr]


# -- declaring -----------------------------------------------------------------


def test_define_slot_returns_the_slot_found_by_get_slot() -> None:
    """define_slot returns the Slot that get_slot finds by name."""
    routine = Probe()
    assert routine.get_slot("in") is routine.slots["in"]
    assert routine.get_slot("in").name == "in"  # type: ignore[union-attr]


def test_define_event_records_its_params() -> None:
    """define_event keeps the declared parameter names in order."""
    routine = Emitter()
    assert routine.get_event("out").params == ("value",)  # type: ignore[union-attr]
    assert routine.get_event("anything").params is None  # type: ignore[union-attr]


def test_get_slot_and_get_event_return_none_for_unknown_names() -> None:
    """Unknown slot and event names give None, not an error."""
    routine = Emitter()
    assert routine.get_slot("nope") is None
    assert routine.get_event("nope") is None


def test_duplicate_slot_name_is_refused() -> None:
    """Declaring a second slot with the same name raises DefinitionError."""
    routine = Probe()
    with pytest.raises(DefinitionError, match="already has a slot named 'in'"):
        routine.define_slot("in")


def test_duplicate_event_name_is_refused() -> None:
    """Declaring a second event with the same name raises DefinitionError."""
    routine = Emitter()
    with pytest.raises(DefinitionError, match=r"already has an? event named 'out'"):
        routine.define_event("out")


@pytest.mark.parametrize("name", ["", "a.b", 3])
def test_bad_slot_names_are_refused(name: Any) -> None:
    """Slot names must be non-empty strings without a dot."""
    with pytest.raises(DefinitionError, match="non-empty string"):
        Probe().define_slot(name)


@pytest.mark.parametrize("name", ["a->b", "out ", "a\n", "x y"])
def test_names_that_break_saving_are_refused(name: str) -> None:
    """Slot and event names with arrows, spaces or line breaks are refused when declared."""
    with pytest.raises(DefinitionError, match="not valid"):
        Probe().define_slot(name)
    with pytest.raises(DefinitionError, match="not valid"):
        Emitter().define_event(name)


@pytest.mark.parametrize("name", ["naïve", "é", "名前"])
def test_non_ascii_names_are_refused(name: str) -> None:
    """Identifiers outside ASCII are not valid slot or event names."""
    with pytest.raises(DefinitionError, match="not valid"):
        Probe().define_slot(name)
    with pytest.raises(DefinitionError, match="not valid"):
        Emitter().define_event(name)


def test_names_with_a_dash_are_accepted() -> None:
    """A '-' after the first character is allowed in slot and event names."""
    routine = Emitter()
    routine.define_slot("in-2")
    routine.define_event("out-2")
    assert "in-2" in routine.slots and "out-2" in routine.events


def test_a_refused_name_is_refused_every_time() -> None:
    """Checking a name twice gives the same answer: a bad name is never taken as known."""
    for _ in range(2):
        with pytest.raises(DefinitionError, match="not valid"):
            Probe().define_slot("bad name")
        with pytest.raises(DefinitionError, match="not valid"):
            Emitter().define_event("bad name")


def test_a_known_name_given_as_a_str_subclass_is_accepted() -> None:
    """A str subclass equal to a valid name is checked in full and accepted."""

    class Name(str):
        pass

    routine = Emitter()
    routine.define_slot(Name("in"))
    routine.define_event(Name("done"))
    assert "in" in routine.slots and "done" in routine.events


def test_a_dashed_duplicate_name_is_refused() -> None:
    """A second slot named 'in-2' is refused like any duplicate."""
    routine = Probe()
    routine.define_slot("in-2")
    with pytest.raises(DefinitionError, match="already has a slot named 'in-2'"):
        routine.define_slot("in-2")


def test_duplicate_event_message_is_whole() -> None:
    """The duplicate-event error names the event and ends with the fix."""
    routine = Emitter()
    with pytest.raises(DefinitionError) as info:
        routine.define_event("out")
    assert str(info.value) == (
        "Routine 'Emitter' already has an event named 'out'; choose another name."
    )


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ([1, 2], TypeError, "parameter names must be strings, got int 1"),
        (["a b"], DefinitionError, "not a Python identifier"),
        (["a", "a"], DefinitionError, "'a' more than once"),
        (3, TypeError, "must be a list of names"),
    ],
)
def test_bad_event_params_are_refused(params: Any, error: type[Exception], match: str) -> None:
    """define_event checks params: a list of distinct identifiers, or None."""
    with pytest.raises(error, match=match):
        Emitter().define_event("e", params=params)


def test_a_params_list_seen_before_does_not_let_a_bad_one_through() -> None:
    """After ['value'] was accepted, ['value', 'value'] and [['value']] are still refused."""
    routine = Emitter()
    with pytest.raises(DefinitionError, match="'value' more than once"):
        routine.define_event("twice", ["value", "value"])
    with pytest.raises(TypeError, match="parameter names must be strings, got list"):
        routine.define_event("nested", [["value"]])


def test_a_string_spelling_a_known_params_list_is_still_refused() -> None:
    """Once ['a', 'b', 'c'] is known, params='abc' is still refused as a string."""
    routine = Emitter()
    routine.define_event("letters", ["a", "b", "c"])
    with pytest.raises(TypeError, match="must be a list of names"):
        routine.define_event("word", "abc")


def test_params_given_as_a_generator_are_checked_and_kept() -> None:
    """Any iterable of names is accepted, checked name by name."""
    event = Emitter().define_event("gen", (name for name in ["x", "y"]))
    assert event.params == ("x", "y")


def test_params_given_as_a_tuple_are_kept_in_order() -> None:
    """define_event accepts a tuple of names as well as a list."""
    event = Emitter().define_event("pair", ("b", "a"))
    assert event.params == ("b", "a")
    assert event.allowed == {"a", "b"}


def test_routines_declaring_the_same_params_share_one_tuple() -> None:
    """Two routines of one class hold one params tuple, not one each."""
    first, second = Emitter(), Emitter()
    params = [r.get_event("out").params for r in (first, second)]  # type: ignore[union-attr]
    assert params[0] == ("value",)
    assert params[0] is params[1]


def test_policy_error_handler_must_be_an_error_handler() -> None:
    """set_error_handler('stop') is refused when set, not when a handler fails."""
    with pytest.raises(TypeError, match="must be an ErrorHandler or None"):
        Relay().set_error_handler("stop")  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1, "5"])
def test_policy_timeout_must_be_a_finite_positive_number(timeout: Any) -> None:
    """A timeout of nan, inf, 0, a negative number or a string is refused."""
    with pytest.raises(DefinitionError, match="timeout must be a finite number > 0"):
        Relay().timeout = timeout


def test_event_params_given_as_a_string_is_refused() -> None:
    """params='value' (a string, not a list) is an error that shows the fix."""
    with pytest.raises(DefinitionError, match=r"\['value'\]"):
        Emitter().define_event("single", "value")


def test_handler_must_be_callable() -> None:
    """A non-callable handler is refused when the slot is defined."""
    with pytest.raises(DefinitionError, match="handler must be callable"):
        Probe().define_slot("other", handler=42)  # type: ignore[arg-type]


def test_routine_id_is_none_until_added_to_a_flow() -> None:
    """routine_id is None before add_routine and the id afterwards."""
    routine = Probe()
    assert routine.routine_id is None
    Flow().add_routine(routine, "probe")
    assert routine.routine_id == "probe"


# -- emitting ------------------------------------------------------------------


def test_emit_unknown_event_names_routine_event_and_allowed_events() -> None:
    """Emitting an undeclared event raises EmitError naming all three."""
    routine = Emitter()
    with pytest.raises(EmitError) as info:
        routine.emit("missing", value=1)
    message = str(info.value)
    assert "Emitter" in message and "'missing'" in message
    assert "'out'" in message and "'anything'" in message
    assert info.value.event == "missing"
    assert info.value.expected == ["anything", "out"]


def test_emit_undeclared_parameter_names_what_is_allowed() -> None:
    """Emitting a parameter the event does not declare raises EmitError."""
    routine = Emitter()
    with pytest.raises(EmitError) as info:
        routine.emit("out", value=1, extra=2)
    assert "'extra'" in str(info.value)
    assert "'value'" in str(info.value)
    assert info.value.expected == ["value"]


def test_emit_of_an_any_params_event_accepts_any_parameter() -> None:
    """An event declared with params=None accepts any parameters."""
    routine = Emitter()
    sink = Probe()
    Connection(routine.get_event("anything"), sink.get_slot("in"))  # type: ignore[arg-type]
    routine.emit("anything", a=1, b=2)
    assert sink.received == [{"a": 1, "b": 2}]


def test_emit_outside_a_job_delivers_at_once_to_every_connected_slot() -> None:
    """A routine is unit-testable without a Flow: emits reach connected slots."""
    routine = Emitter()
    first, second = Probe(), Probe()
    for sink in (first, second):
        Connection(routine.get_event("out"), sink.get_slot("in"))  # type: ignore[arg-type]
    routine.emit("out", value=7)
    assert first.received == [{"value": 7}]
    assert second.received == [{"value": 7}]


def test_emit_inside_a_failing_call_reaches_nobody() -> None:
    """A handler that emits and then raises emits nothing downstream."""

    class EmitThenFail(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.go)
            self.define_event("out", ["value"])

        def go(self, value: Any) -> None:
            self.emit("out", value=value)
            raise RuntimeError("boom")

    flow = Flow()
    flow.add_routine(EmitThenFail(), "fail")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("fail", "out", "sink", "in")
    flow.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    job = flow.execute("fail", {"value": 1})
    assert job.status == "completed"
    assert sink.items == []
    assert job.get_execution_history("fail") == []


# -- calling handlers ------------------------------------------------------------


def test_kwargs_handler_receives_every_parameter() -> None:
    """Rule 1: a **kwargs handler gets every delivered parameter."""
    seen: list[dict[str, Any]] = []
    deliver(lambda **data: seen.append(data), {"a": 1, "b": 2})
    assert seen == [{"a": 1, "b": 2}]


def test_named_handler_receives_only_the_names_it_declares() -> None:
    """Rule 2: a handler with named parameters gets those it names."""
    seen: list[tuple[Any, Any]] = []
    deliver(lambda a, b: seen.append((a, b)), {"a": 1, "b": 2, "c": 3})
    assert seen == [(1, 2)]


def test_named_handler_missing_required_parameter_says_routine_slot_and_parameter() -> None:
    """Rule 2: a missing required parameter is a HandlerParameterError with details."""
    with pytest.raises(HandlerParameterError) as info:
        deliver(lambda a, b: None, {"a": 1, "c": 3})
    error = info.value
    assert (error.routine_id, error.slot, error.parameter) == ("Probe", "in", "b")
    assert error.delivered == ["a", "c"]
    assert "'b'" in str(error) and "'a', 'c'" in str(error)


def test_named_handler_defaults_fill_missing_optional_parameters() -> None:
    """Rule 2: an optional parameter that is not delivered keeps its default."""
    seen: list[tuple[Any, Any]] = []

    def handler(a: Any, b: Any = "default") -> None:
        seen.append((a, b))

    deliver(handler, {"a": 1})
    assert seen == [(1, "default")]


def test_single_parameter_handler_gets_the_named_value() -> None:
    """Rule 3: a one-parameter handler whose name is delivered gets that value."""
    seen: list[Any] = []
    deliver(lambda data: seen.append(data), {"data": 5, "other": 6})
    assert seen == [5]


def test_single_parameter_handler_gets_the_only_value_under_another_name() -> None:
    """Rule 3: one unnamed delivered value goes to the single parameter."""
    seen: list[Any] = []
    deliver(lambda data: seen.append(data), {"result": "x"})
    assert seen == ["x"]


def test_single_parameter_handler_gets_the_whole_dict_for_several_other_values() -> None:
    """Rule 3: several delivered values, none named, arrive as the whole dict."""
    seen: list[Any] = []
    deliver(lambda data: seen.append(data), {"a": 1, "b": 2})
    assert seen == [{"a": 1, "b": 2}]


def test_single_required_parameter_with_empty_delivery_is_a_parameter_error() -> None:
    """Rule 3: an empty delivery to a required parameter is the error of rule 2."""
    with pytest.raises(HandlerParameterError, match="'data'"):
        deliver(lambda data: None, {})


def test_handler_without_parameters_is_called_without_arguments() -> None:
    """A handler taking nothing is called with nothing, whatever is delivered."""
    seen: list[str] = []
    deliver(lambda: seen.append("called"), {"a": 1})
    assert seen == ["called"]


def test_keyword_only_single_parameter_gets_the_only_value() -> None:
    """Rule 3 also holds for a keyword-only parameter."""
    seen: list[Any] = []

    def handler(*, data: Any) -> None:
        seen.append(data)

    deliver(handler, {"result": 9})
    assert seen == [9]


def test_async_handler_runs_when_unit_tested_without_a_flow() -> None:
    """Rule 4: an async def handler runs to completion outside a flow."""
    seen: list[Any] = []

    async def handler(value: Any) -> None:
        await asyncio.sleep(0)
        seen.append(value)

    deliver(handler, {"value": 3})
    assert seen == [3]


def test_bound_method_handler_is_called_with_named_parameters() -> None:
    """Rule 4: bound methods are handlers like functions."""

    class Adder(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0
            self.define_slot("in", handler=self.add)

        def add(self, a: int, b: int) -> None:
            self.total += a + b

    adder = Adder()
    adder.get_slot("in").receive({"a": 2, "b": 3})  # type: ignore[union-attr]
    assert adder.total == 5


def test_how_to_call_is_worked_out_once_when_the_slot_is_defined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rule 5: the signature is inspected at definition, not on each delivery."""
    import inspect

    inspected = 0
    original = inspect.signature

    def counting(fn: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        nonlocal inspected
        inspected += 1
        return original(fn, *args, **kwargs)

    routine = Probe(lambda value: None)
    slot = routine.get_slot("in")
    assert slot is not None
    monkeypatch.setattr(inspect, "signature", counting)
    for value in range(5):
        slot.receive({"value": value})
    assert inspected == 0


def test_method_handlers_are_inspected_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many instances of one routine class inspect their handler method's signature once."""
    import inspect

    class Twice(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []
            self.define_slot("in", handler=self.take)

        def take(self, number: int) -> None:
            self.seen.append(number * 2)

    inspected: list[Any] = []
    original = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda fn, **kw: inspected.append(fn) or original(fn))
    routines = [Twice() for _ in range(3)]
    for i, routine in enumerate(routines):
        routine.get_slot("in").receive({"value": i})  # type: ignore[union-attr]
    assert len(inspected) == 1
    assert [r.seen for r in routines] == [[0], [2], [4]]


def test_async_method_handlers_stay_async_for_every_instance() -> None:
    """The per-function cache says async for an async method on every instance."""

    class Later(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.take)

        async def take(self, value: Any) -> None:
            await asyncio.sleep(0)

    assert [Later().get_slot("in").is_async for _ in range(2)] == [True, True]  # type: ignore[union-attr]


def test_routines_of_two_classes_built_in_turn_call_their_own_handlers() -> None:
    """Alternating classes never reuse another method's way of calling."""

    class One(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[Any] = []
            self.define_slot("in", handler=self.take)

        def take(self, value: Any) -> None:
            self.got.append(value)

    class Two(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[Any] = []
            self.define_slot("in", handler=self.take)

        async def take(self, a: Any, b: Any = 0) -> None:
            self.got.append(a + b)

    built = [One(), Two(), One(), Two()]
    for routine in built:
        routine.get_slot("in").receive({"a": 1, "b": 2})  # type: ignore[union-attr]
    assert [r.got for r in built] == [[{"a": 1, "b": 2}], [3], [{"a": 1, "b": 2}], [3]]
    assert [r.get_slot("in").is_async for r in built] == [False, True, False, True]  # type: ignore[union-attr]


def test_what_is_learnt_about_a_handler_method_does_not_keep_its_class_alive() -> None:
    """The per-function cache holds methods weakly: a class that goes away is freed."""
    import gc
    import weakref

    def make() -> weakref.ref[Any]:
        class Gone(Routine):
            def __init__(self) -> None:
                super().__init__()
                self.define_slot("in", handler=self.take)

            def take(self, value: Any) -> None:
                pass

        Gone()
        return weakref.ref(Gone)

    gone = make()
    gc.collect()
    assert gone() is None


# -- calling the routine -------------------------------------------------------------


def test_calling_a_routine_delivers_to_its_only_slot() -> None:
    """routine(**params) delivers params to the only slot."""
    routine = Probe()
    routine(a=1)
    assert routine.received == [{"a": 1}]


def test_calling_a_routine_with_several_slots_asks_for_the_slot() -> None:
    """routine(**params) with several slots raises and says how to fix it."""
    routine = Probe()
    routine.define_slot("other", handler=lambda **d: None)
    with pytest.raises(DefinitionError, match="entry_slot"):
        routine(a=1)


# -- stats and config ------------------------------------------------------------


def test_stats_returns_a_copy_of_the_users_counters() -> None:
    """stats() is a copy: changing it does not change the routine's counters."""
    routine = Probe()
    routine._stats["n"] = 1
    copy = routine.stats()
    copy["n"] = 99
    assert routine.stats() == {"n": 1}


def test_stats_hold_only_what_the_user_put_there() -> None:
    """After a job, stats() shows only the user's own counters."""
    flow = Flow()
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.execute("sink", {"value": 1})
    assert sink.stats() == {"calls": 1}


def test_failed_call_changes_no_counter() -> None:
    """A handler that bumps a counter and then raises leaves stats unchanged."""

    class CountThenFail(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.go)

        def go(self, value: Any) -> None:
            self._stats["n"] = self._stats.get("n", 0) + 1
            if value < 0:
                raise ValueError("negative")

    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    routine = CountThenFail()
    flow.add_routine(routine, "r")
    job = flow.execute("r", {"value": -1})
    assert job.status == "completed"
    assert routine.stats() == {}
    assert job.get_routine_state("r")["stats"] == {}  # type: ignore[index]


def test_set_config_and_get_config() -> None:
    """set_config stores values; get_config reads them with a default."""
    routine = Probe()
    routine.set_config(limit=3, name="x")
    assert routine.get_config("limit") == 3
    assert routine.get_config("missing", "fallback") == "fallback"
    assert routine.config == {"limit": 3, "name": "x"}


def test_config_and_stats_are_each_routines_own() -> None:
    """Setting one routine's config or counters leaves another's empty."""
    first, second = Probe(), Probe()
    first.config["limit"] = 1
    first._stats["n"] = 2
    assert (second.config, second.stats()) == ({}, {})
    assert (first.get_config("limit"), first.stats()) == (1, {"n": 2})


def test_config_and_stats_survive_a_pickle_round_trip() -> None:
    """A pickled routine keeps its config and counters; an unset one stays empty and its own."""
    import pickle

    used, unused = Probe(), Probe()
    used.set_config(limit=3)
    used._stats = {"n": 1}
    copies = [pickle.loads(pickle.dumps(r)) for r in (used, unused)]
    assert [(c.config, c.stats()) for c in copies] == [({"limit": 3}, {"n": 1}), ({}, {})]
    copies[1].set_config(k=1)
    assert (unused.config, Probe().config) == ({}, {})


# -- policy ----------------------------------------------------------------------


def test_default_policy() -> None:
    """A new routine runs one call at a time, with no timeout, cap or own handler."""
    routine = Probe()
    assert routine.policy == Policy()
    assert (routine.max_concurrency, routine.timeout, routine.max_activations) == (1, None, None)
    assert routine.error_handler is None


def test_policy_properties_write_through_set_policy() -> None:
    """Setting max_concurrency, timeout and max_activations updates the policy."""
    routine = Probe()
    routine.max_concurrency = 4
    routine.timeout = 2.5
    routine.max_activations = 10
    assert routine.policy == Policy(max_concurrency=4, timeout=2.5, max_activations=10)


def test_set_error_handler_gives_the_routine_its_own_handler() -> None:
    """set_error_handler stores the handler in the routine's policy."""
    routine = Probe()
    handler = ErrorHandler(ErrorStrategy.SKIP)
    routine.set_error_handler(handler)
    assert routine.error_handler is handler


def test_set_policy_with_an_unknown_field_lists_the_fields() -> None:
    """set_policy(bogus=...) raises TypeError listing the real fields."""
    with pytest.raises(TypeError, match="'max_concurrency'"):
        Probe().set_policy(bogus=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrency", 0),
        ("max_concurrency", True),
        ("timeout", -1),
        ("timeout", 0),
        ("max_activations", 0),
    ],
)
def test_bad_policy_values_are_refused(field: str, value: Any) -> None:
    """Non-positive concurrency, timeout and cap values raise ValueError."""
    with pytest.raises(ValueError, match=field):
        Probe().set_policy(**{field: value})


class SelfPausing(Routine):
    """Relays ``value``; calls pause_job or cancel_job (config ``action``) on value 2."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Act on cue, then pass the value on."""
        if value == 2:
            getattr(self, self.get_config("action"))(reason="asked by the handler")
        self.emit("out", value=value)


@pytest.mark.parametrize(
    ("action", "status"), [("pause_job", "paused"), ("cancel_job", "cancelled")]
)
def test_handler_can_pause_or_cancel_its_own_job(action: str, status: str, executor: str) -> None:
    """pause_job()/cancel_job() in a handler end the job paused/cancelled; its emit counts."""
    flow = Flow(executor=executor)
    routine = SelfPausing()
    routine.set_config(action=action)
    sink = Collect()
    flow.add_routine(Source(), "src")
    flow.add_routine(routine, "r")
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "r", "in")
    flow.connect("r", "out", "sink", "in")
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert job.status == status
    assert job.reason == "asked by the handler"
    emitted = [r.data["value"] for r in job.get_execution_history("r")]
    assert 2 in emitted and 3 not in emitted


@pytest.mark.parametrize("action", ["pause_job", "cancel_job"])
def test_pause_job_outside_a_handler_is_an_error(action: str) -> None:
    """pause_job()/cancel_job() outside the routine's own handler raise JobStateError."""
    with pytest.raises(JobStateError, match="inside this routine's handler"):
        getattr(Probe(), action)()


def test_max_activations_must_be_a_whole_number() -> None:
    """A fractional cap is refused: calls are counted in whole numbers."""
    routine = Relay()
    with pytest.raises(ValueError, match="max_activations"):
        routine.max_activations = 2.5  # type: ignore[assignment]
