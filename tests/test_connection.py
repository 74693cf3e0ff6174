"""Connections: param_mapping, delivering by hand, disconnecting from either end."""

from __future__ import annotations

from typing import Any

import pytest

from flowforge import Connection, DefinitionError, Flow, Routine
from flowforge.testing import Collect, Source


class Emitter(Routine):
    """Emits ``out(**data)`` on request."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out")


class Sink(Routine):
    """Keeps what its ``in`` slot receives."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[dict[str, Any]] = []
        self.define_slot("in", handler=lambda **data: self.got.append(data))


def wire(param_mapping: dict[str, str] | None = None) -> tuple[Emitter, Sink, Connection]:
    """An emitter connected to a sink."""
    source, sink = Emitter(), Sink()
    connection = Connection(
        source.get_event("out"),
        sink.get_slot("in"),
        param_mapping,  # type: ignore[arg-type]
    )
    return source, sink, connection


def test_param_mapping_renames_and_passes_the_rest_through() -> None:
    """Mapped names are renamed; unmapped names pass through unchanged."""
    source, sink, _ = wire({"a": "alpha"})
    source.emit("out", a=1, b=2)
    assert sink.got == [{"alpha": 1, "b": 2}]


def test_no_mapping_delivers_data_as_emitted() -> None:
    """Without a mapping the slot receives the emitted names."""
    source, sink, _ = wire()
    source.emit("out", a=1)
    assert sink.got == [{"a": 1}]


def test_map_returns_a_new_dict() -> None:
    """Connection.map renames into a new dict and leaves the input alone."""
    _, _, connection = wire({"a": "b"})
    data = {"a": 1}
    assert connection.map(data) == {"b": 1}
    assert data == {"a": 1}


def test_activate_delivers_by_hand_through_the_mapping() -> None:
    """connection.activate(data) delivers to the slot, renamed by the mapping."""
    _, sink, connection = wire({"x": "y"})
    connection.activate({"x": 5})
    assert sink.got == [{"y": 5}]


def test_disconnect_removes_it_from_both_ends() -> None:
    """connection.disconnect() stops delivery and detaches from event and slot."""
    source, sink, connection = wire()
    connection.disconnect()
    source.emit("out", a=1)
    assert sink.got == []
    assert not connection.connected
    assert source.get_event("out").connections == []  # type: ignore[union-attr]
    assert sink.get_slot("in").connections == []  # type: ignore[union-attr]


def test_event_disconnect_removes_the_connection() -> None:
    """event.disconnect(slot) does what connection.disconnect() does."""
    source, sink, connection = wire()
    source.get_event("out").disconnect(sink.get_slot("in"))  # type: ignore[union-attr,arg-type]
    source.emit("out", a=1)
    assert sink.got == []
    assert not connection.connected


def test_slot_disconnect_removes_the_connection() -> None:
    """slot.disconnect(event) does what connection.disconnect() does."""
    source, sink, connection = wire()
    sink.get_slot("in").disconnect(source.get_event("out"))  # type: ignore[union-attr,arg-type]
    source.emit("out", a=1)
    assert sink.got == []
    assert not connection.connected


def test_mapping_must_map_names_to_names() -> None:
    """A param_mapping with non-string entries is a TypeError."""
    with pytest.raises(TypeError, match="str -> str"):
        wire({"a": 1})  # type: ignore[dict-item]


def test_key_names_source_event_target_and_slot() -> None:
    """A flow connection's key is 'source.event->target.slot'."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    connection = flow.connect("src", "out", "sink", "in")
    assert connection.key == "src.out->sink.in"
    assert "src.out->sink.in" in repr(connection)


def test_connection_made_before_add_routine_uses_the_flow_ids() -> None:
    """Wiring routines first and adding them to a flow afterwards routes by flow ids."""
    source, sink = Source(), Collect()
    Connection(source.get_event("out"), sink.get_slot("in"))  # type: ignore[arg-type]
    flow = Flow()
    flow.add_routine(source, "src")
    flow.add_routine(sink, "sink")
    job = flow.execute("src", {"values": [1]})
    assert job.status == "completed"
    assert sink.items == [{"value": 1}]
    assert [c.key for c in flow.connections] == ["src.out->sink.in"]


def test_param_mapping_applies_inside_a_job(executor: str) -> None:
    """Inside a job, the mapping renames what reaches the slot."""
    flow = Flow(executor=executor)
    flow.add_routine(Source(), "src")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("src", "out", "sink", "in", {"value": "number"})
    flow.execute("src", {"values": [3]})
    assert sink.items == [{"number": 3}]


class Pair(Routine):
    """Declares ``out(number, text)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out", ["number", "text"])


def test_mapping_two_names_onto_one_is_refused() -> None:
    """param_mapping {'a': 'x', 'b': 'x'} would lose a value: refused when connecting."""
    source, sink = Emitter(), Sink()
    with pytest.raises(DefinitionError, match="all as 'x'"):
        Connection(source.get_event("out"), sink.get_slot("in"), {"a": "x", "b": "x"})  # type: ignore[arg-type]
    assert sink.get_slot("in").connections == []  # type: ignore[union-attr]


def test_mapping_onto_a_name_that_passes_through_is_refused() -> None:
    """Renaming 'number' to 'text' while the event also carries 'text' would lose a value."""
    with pytest.raises(DefinitionError, match="'number', 'text' all as 'text'"):
        Connection(Pair().get_event("out"), Sink().get_slot("in"), {"number": "text"})  # type: ignore[arg-type]


def test_mapping_a_name_the_event_does_not_declare_is_refused() -> None:
    """A mapping key that is not one of the event's declared params is refused, listing them."""
    with pytest.raises(DefinitionError, match=r"'numbr'.*It carries: 'number', 'text'"):
        Connection(Pair().get_event("out"), Sink().get_slot("in"), {"numbr": "n"})  # type: ignore[arg-type]


def test_mapping_of_an_any_params_event_may_name_anything() -> None:
    """An event declared with params=None accepts any mapping key."""
    source, sink, _ = wire({"whatever": "renamed"})
    source.emit("out", whatever=1)
    assert sink.got == [{"renamed": 1}]


def test_the_same_wire_twice_is_refused() -> None:
    """The same event, slot and mapping again raises: every delivery would arrive twice."""
    source, sink, _ = wire({"a": "b"})
    with pytest.raises(DefinitionError, match="already connected"):
        Connection(source.get_event("out"), sink.get_slot("in"), {"a": "b"})  # type: ignore[arg-type]
    source.emit("out", a=1)
    assert sink.got == [{"b": 1}]


def test_the_same_event_with_another_mapping_is_a_second_wire() -> None:
    """One event may reach one slot twice under different mappings."""
    source, sink, _ = wire({"a": "b"})
    Connection(source.get_event("out"), sink.get_slot("in"), {"a": "c"})  # type: ignore[arg-type]
    source.emit("out", a=1)
    assert sink.got == [{"b": 1}, {"c": 1}]


def test_flow_connect_refuses_the_same_wire_twice() -> None:
    """flow.connect() of an existing wire raises and the flow keeps one."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    flow.connect("src", "out", "sink", "in")
    with pytest.raises(DefinitionError, match=r"src\.out is already connected to sink\.in"):
        flow.connect("src", "out", "sink", "in")
    assert len(flow.connections) == 1


def test_disconnect_removes_it_from_the_flow() -> None:
    """connection.disconnect() takes it out of flow.connections."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    connection = flow.connect("src", "out", "sink", "in")
    connection.disconnect()
    assert flow.connections == []


def test_two_wires_from_one_event_to_one_slot_have_distinct_keys() -> None:
    """A second wire of the same event to the same slot (another mapping) gets '#2'."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    first = flow.connect("src", "out", "sink", "in", {"value": "a"})
    second = flow.connect("src", "out", "sink", "in", {"value": "b"})
    assert (first.key, second.key) == ("src.out->sink.in", "src.out->sink.in#2")


def test_key_outside_a_flow_uses_class_names_and_the_wire_number() -> None:
    """Outside a flow a key names the classes and counts the wires made to the slot."""
    _, _, connection = wire()
    assert connection.key == "Emitter.out->Sink.in#1"
    assert connection.target_id == "Sink"


def test_a_hand_made_wire_to_a_routine_outside_the_flow_replans_the_flow() -> None:
    """Connecting a flow's routine to one in no flow drops the flow's cached plan."""
    flow = Flow()
    source = Emitter()
    flow.add_routine(source, "src")
    plan = flow._plan()
    Connection(source.get_event("out"), Sink().get_slot("in"))  # type: ignore[arg-type]
    assert flow._plan() is not plan
