"""Flow.validate(): every problem at once, each with where it is and a hint."""

from __future__ import annotations

from typing import Any

import pytest

from flowforge import Flow, Problem, Routine, ValidationError
from flowforge.testing import Collect, Join, Relay, Source


class TwoSlots(Routine):
    """Two slots and no events."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("a", handler=lambda **d: None)
        self.define_slot("b", handler=lambda **d: None)


def clean_flow() -> Flow:
    """``src -> sink``, nothing wrong."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    flow.connect("src", "out", "sink", "in")
    return flow


def where(problems: list[Problem], severity: str) -> list[str]:
    """The ``where`` of each problem of that severity."""
    return [p.where for p in problems if p.severity == severity]


def test_a_clean_flow_has_no_problems() -> None:
    """A fully wired, reachable flow validates clean."""
    assert clean_flow().validate("src") == []


def test_join_without_sources_is_an_error() -> None:
    """A join slot nothing connects to would never fire: an error."""
    flow = clean_flow()
    flow.add_routine(Join(), "join")
    flow.connect("join", "out", "sink", "in")
    problems = flow.validate("src")
    assert where(problems, "error") == ["join.in"]
    (problem,) = [p for p in problems if p.where == "join.in"]
    assert "never fires" in problem.message
    assert "flow.connect" in problem.hint


def test_unknown_entry_is_an_error_listing_routines() -> None:
    """An entry that is not in the flow is an error whose hint lists the routines."""
    problems = clean_flow().validate("nope")
    assert where(problems, "error") == ["nope"]
    assert "'sink', 'src'" in problems[0].hint


def test_event_nobody_consumes_is_a_warning() -> None:
    """An unconnected event is a warning naming routine.event."""
    flow = clean_flow()
    flow.add_routine(Relay(), "relay")
    flow.connect("src", "out", "relay", "in")
    assert "relay.out" in where(flow.validate("src"), "warning")


def test_unconnected_slot_of_a_multi_slot_routine_is_a_warning() -> None:
    """A slot nothing is connected to (other than the entry's) is a warning."""
    flow = clean_flow()
    flow.add_routine(TwoSlots(), "two")
    flow.connect("src", "out", "two", "a")
    assert where(flow.validate("src"), "warning") == ["two.b"]


def test_unreachable_routine_is_a_warning() -> None:
    """A routine no connection leads to from the entry is a warning."""
    flow = clean_flow()
    flow.add_routine(Collect(), "orphan")
    problems = flow.validate("src")
    assert where(problems, "warning") == ["orphan"]
    assert "'src'" in problems[0].message


def test_every_problem_is_reported_at_once() -> None:
    """validate() lists all problems together."""
    flow = clean_flow()
    flow.add_routine(Join(), "join")
    flow.add_routine(Collect(), "orphan")
    problems = flow.validate("src")
    assert sorted(where(problems, "error")) == ["join.in"]
    assert sorted(where(problems, "warning")) == ["join", "join.out", "orphan"]


def test_every_problem_has_a_hint() -> None:
    """Each problem has a non-empty message and hint, and prints them both."""
    flow = clean_flow()
    flow.add_routine(Join(), "join")
    for problem in flow.validate("src"):
        assert problem.message and problem.hint
        assert problem.hint in str(problem) and problem.severity in str(problem)


def test_strict_raises_validation_error_with_the_problems() -> None:
    """validate(strict=True) raises ValidationError carrying every problem."""
    flow = clean_flow()
    flow.add_routine(Join(), "join")
    with pytest.raises(ValidationError) as info:
        flow.validate("src", strict=True)
    assert [p.where for p in info.value.problems if p.severity == "error"] == ["join.in"]
    assert "join.in" in str(info.value)


def test_strict_passes_with_warnings_only() -> None:
    """Warnings alone do not make validate(strict=True) raise."""
    flow = clean_flow()
    flow.add_routine(Collect(), "orphan")
    assert where(flow.validate("src", strict=True), "warning") == ["orphan"]


def test_validate_uses_the_flows_default_entry() -> None:
    """Without an entry argument, the flow's entry is used for reachability."""
    flow = clean_flow()
    flow.add_routine(Collect(), "orphan")
    flow.entry = {"routine_id": "src", "slot": None, "params": {}}
    assert where(flow.validate(), "warning") == ["orphan"]


def test_join_fed_by_its_own_output_is_an_error() -> None:
    """A join waiting for a routine downstream of itself can never fire: an error says so."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Join(), "join")
    flow.add_routine(Relay(), "again")
    flow.connect("src", "out", "join", "in")
    flow.connect("join", "out", "again", "in")
    flow.connect("again", "out", "join", "in")
    problems = flow.validate("src")
    assert "join.in" in where(problems, "error")
    message = next(p.message for p in problems if p.where == "join.in")
    assert "waits for 'again'" in message


class Pair(Routine):
    """Emits ``out(number, text)`` when called."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=lambda: self.emit("out", number=1, text="a"))
        self.define_event("out", ["number", "text"])


class Takes(Routine):
    """A slot whose handler is given."""

    def __init__(self, handler: Any) -> None:
        super().__init__()
        self.define_slot("in", handler=handler)


def wired_to(handler: Any, mapping: dict[str, str] | None = None) -> Flow:
    """``pair.out -> take.in`` with ``handler`` on the slot."""
    flow = Flow()
    flow.add_routine(Pair(), "pair")
    flow.add_routine(Takes(handler), "take")
    flow.connect("pair", "out", "take", "in", mapping)
    return flow


def test_handler_the_event_cannot_fill_is_an_error() -> None:
    """Event (number, text) into handler (num, txt): validate says which names and how to map."""

    def handler(num: int, txt: str) -> None:
        pass

    problems = [p for p in wired_to(handler).validate("pair") if p.severity == "error"]
    assert [p.where for p in problems] == ["take.in"]
    assert "needs 'num', 'txt'" in problems[0].message
    assert "param_mapping={'number': 'num', 'text': 'txt'}" in problems[0].hint


def test_a_mapping_that_fills_the_handler_clears_the_error() -> None:
    """The same wire mapped onto the handler's names has no problem."""

    def handler(num: int, txt: str) -> None:
        pass

    flow = wired_to(handler, {"number": "num", "text": "txt"})
    assert where(flow.validate("pair"), "error") == []


@pytest.mark.parametrize(
    "handler",
    [
        lambda data: None,
        lambda number, txt="": None,
        lambda **kwargs: None,
        lambda number, **kwargs: None,
    ],
)
def test_handlers_the_event_can_fill_have_no_error(handler: Any) -> None:
    """Single-parameter, defaulted and **kwargs handlers are filled by the rules of the contract."""
    assert where(wired_to(handler).validate("pair"), "error") == []


def test_kwargs_handler_with_a_required_name_the_event_lacks_is_an_error() -> None:
    """A **kwargs handler still needs its named required parameters."""

    def handler(count: int, **rest: Any) -> None:
        pass

    assert where(wired_to(handler).validate("pair"), "error") == ["take.in"]


def test_join_handler_is_checked_against_all_its_sources() -> None:
    """A join's handler may take names from different sources."""

    class Both(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.both, merge_strategy="join")

        def both(self, left: int, right: int) -> None:
            pass

    flow = Flow()
    flow.add_routine(Source(), "a")
    flow.add_routine(Source(), "b")
    flow.add_routine(Both(), "both")
    flow.connect("a", "out", "both", "in", {"value": "left"})
    flow.connect("b", "out", "both", "in", {"value": "right"})
    assert where(flow.validate("a"), "error") == []


def test_join_cycle_names_the_loop() -> None:
    """The join-on-a-loop error spells the loop out."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Join(), "join")
    flow.add_routine(Relay(), "again")
    flow.connect("src", "out", "join", "in")
    flow.connect("join", "out", "again", "in")
    flow.connect("again", "out", "join", "in")
    message = next(p.message for p in flow.validate("src") if p.where == "join.in")
    assert "(the loop join -> again -> join)" in message
