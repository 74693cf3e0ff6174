"""Events: declared parameters, emitting, many-to-many delivery, disconnecting."""

from __future__ import annotations

from typing import Any

import pytest

from flowforge import EmitError, Flow, Routine
from flowforge.testing import Collect


class Emitter(Routine):
    """Declares ``out(value)`` and ``any`` (any parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out", ["value"])
        self.define_event("any")


class Sink(Routine):
    """Keeps what its ``in`` slot receives."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[dict[str, Any]] = []
        self.define_slot("in", handler=lambda **data: self.got.append(data))


def test_params_are_a_tuple_and_none_means_any() -> None:
    """Declared params are kept as a tuple; None declares any parameters."""
    routine = Emitter()
    assert routine.get_event("out").params == ("value",)  # type: ignore[union-attr]
    assert routine.get_event("any").params is None  # type: ignore[union-attr]


def test_event_emit_is_routine_emit() -> None:
    """event.emit(**data) emits from the owning routine."""
    routine, sink = Emitter(), Sink()
    event = routine.get_event("out")
    assert event is not None
    event.connect(sink.get_slot("in"))  # type: ignore[arg-type]
    event.emit(value=1)
    assert sink.got == [{"value": 1}]


def test_event_emit_checks_declared_params() -> None:
    """event.emit with an undeclared parameter raises EmitError."""
    event = Emitter().get_event("out")
    assert event is not None
    with pytest.raises(EmitError):
        event.emit(other=1)


def test_one_event_reaches_many_slots_and_one_slot_hears_many_events() -> None:
    """Connections are many-to-many."""
    first, second = Emitter(), Emitter()
    left, right = Sink(), Sink()
    for source in (first, second):
        for sink in (left, right):
            source.get_event("out").connect(sink.get_slot("in"))  # type: ignore[union-attr,arg-type]
    first.emit("out", value=1)
    second.emit("out", value=2)
    assert left.got == right.got == [{"value": 1}, {"value": 2}]


def test_connections_are_a_copy_oldest_first() -> None:
    """Event.connections lists leaving connections, oldest first, as a copy."""
    routine, first, second = Emitter(), Sink(), Sink()
    event = routine.get_event("out")
    assert event is not None
    a = event.connect(first.get_slot("in"))  # type: ignore[arg-type]
    b = event.connect(second.get_slot("in"))  # type: ignore[arg-type]
    connections = event.connections
    assert connections == [a, b]
    connections.clear()
    assert event.connections == [a, b]


def test_event_disconnect_only_removes_wires_to_that_slot() -> None:
    """event.disconnect(slot) leaves the event's other connections in place."""
    routine, first, second = Emitter(), Sink(), Sink()
    event = routine.get_event("out")
    assert event is not None
    event.connect(first.get_slot("in"))  # type: ignore[arg-type]
    event.connect(second.get_slot("in"))  # type: ignore[arg-type]
    event.disconnect(first.get_slot("in"))  # type: ignore[arg-type]
    routine.emit("out", value=1)
    assert first.got == []
    assert second.got == [{"value": 1}]


def test_emitted_events_are_recorded_in_the_job_history() -> None:
    """Inside a job, every emitted event is in the history with its data."""

    class Twice(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.go)
            self.define_event("out", ["value"])

        def go(self, value: int) -> None:
            self.emit("out", value=value)
            self.emit("out", value=value + 1)

    flow = Flow()
    flow.add_routine(Twice(), "twice")
    flow.add_routine(Collect(), "sink")
    flow.connect("twice", "out", "sink", "in")
    job = flow.execute("twice", {"value": 1})
    history = job.get_execution_history("twice")
    assert [(r.routine_id, r.event_name, r.data) for r in history] == [
        ("twice", "out", {"value": 1}),
        ("twice", "out", {"value": 2}),
    ]


def test_event_nobody_consumes_is_recorded_and_dropped() -> None:
    """Emitting an unconnected event inside a job is fine and recorded."""
    flow = Flow()

    class Lonely(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=lambda value: self.emit("out", value=value))
            self.define_event("out", ["value"])

    flow.add_routine(Lonely(), "lonely")
    job = flow.execute("lonely", {"value": 1})
    assert job.status == "completed"
    assert [r.data for r in job.get_execution_history()] == [{"value": 1}]
