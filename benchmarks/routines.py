"""The routines the workloads run, each with its plain-Python counterpart.

A FlowForge routine here does as little as possible (add one, pass a value
on), so the measured time is the engine's. Its plain counterpart does the
same work with a direct method call and nothing else.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from flowforge import Flow, Routine

# -- FlowForge routines -------------------------------------------------------


class Step(Routine):
    """Emits ``out(value=value + 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.step)
        self.define_event("out", ["value"])

    def step(self, value: int) -> None:
        """Add one and pass it on."""
        self.emit("out", value=value + 1)


class Emit(Routine):
    """Emits ``out(value=i)`` for each ``i`` in ``range(count)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.start)
        self.define_event("out", ["value"])

    def start(self, count: int) -> None:
        """Emit ``count`` items."""
        for i in range(count):
            self.emit("out", value=i)


class Relay(Routine):
    """Emits ``out(value=value)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Pass the value on."""
        self.emit("out", value=value)


class Gather(Routine):
    """A join slot; keeps the combined values of the latest round."""

    def __init__(self) -> None:
        super().__init__()
        self.last: Any = None
        self.define_slot("in", handler=self.gather, merge_strategy="join")

    def gather(self, value: Any) -> None:
        """Keep what the join combined."""
        self.last = value


def chain_flow(length: int) -> Flow:
    """A flow of ``length`` :class:`Step` routines, ``s0 -> s1 -> ...``."""
    flow = Flow(flow_id=f"chain-{length}")
    ids = [flow.add_routine(Step(), f"s{i}") for i in range(length)]
    for source, target in pairwise(ids):
        flow.connect(source, "out", target, "in")
    return flow


def stream_flow(relays: int) -> Flow:
    """An :class:`Emit` source followed by ``relays`` :class:`Relay` routines."""
    flow = Flow(flow_id="stream")
    ids = [flow.add_routine(Emit(), "source")]
    ids += [flow.add_routine(Relay(), f"r{i}") for i in range(relays)]
    for source, target in pairwise(ids):
        flow.connect(source, "out", target, "in")
    return flow


def fan_out_flow(width: int) -> Flow:
    """A :class:`Relay` fanned out to ``width`` :class:`Step` routines, joined."""
    flow = Flow(flow_id=f"fan-out-{width}")
    flow.add_routine(Relay(), "source")
    flow.add_routine(Gather(), "join")
    for i in range(width):
        flow.add_routine(Step(), f"w{i}")
        flow.connect("source", "out", f"w{i}", "in")
        flow.connect(f"w{i}", "out", "join", "in")
    return flow


# -- plain-Python counterparts ------------------------------------------------


class PlainStep:
    """Returns ``value + 1``."""

    __slots__ = ()

    def step(self, value: int) -> int:
        """Add one."""
        return value + 1


class PlainRelay:
    """Returns its value."""

    __slots__ = ()

    def relay(self, value: Any) -> Any:
        """Pass the value on."""
        return value


class PlainGather:
    """Keeps the values of the latest round."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: Any = None

    def gather(self, value: Any) -> None:
        """Keep the combined values."""
        self.last = value


def joined_streams_flow() -> Flow:
    """Two :class:`Emit` sources fed by one ``start`` :class:`Relay`, joined pair by pair."""
    flow = Flow(flow_id="joined-streams")
    flow.add_routine(Relay(), "start")
    flow.add_routine(Gather(), "join")
    for rid in ("a", "b"):
        flow.add_routine(Emit(), rid)
        flow.connect("start", "out", rid, "in", param_mapping={"value": "count"})
        flow.connect(rid, "out", "join", "in")
    return flow


def run_plain_joined(join: PlainGather, count: int) -> None:
    """Pair two ranges item by item and hand each pair to the join."""
    for pair in zip(range(count), range(count), strict=True):
        join.gather(list(pair))


def run_plain_chain(steps: list[PlainStep], value: int) -> int:
    """Pass ``value`` through every step, one direct call each."""
    for step in steps:
        value = step.step(value)
    return value


def run_plain_stream(relays: list[PlainRelay], count: int) -> None:
    """Send ``count`` items through every relay, one direct call per hop."""
    for i in range(count):
        value: Any = i
        for relay in relays:
            value = relay.relay(value)


def run_plain_fan_out(workers: list[PlainStep], join: PlainGather, value: int) -> None:
    """Call every worker with ``value``, then the join with their results."""
    join.gather([worker.step(value) for worker in workers])
