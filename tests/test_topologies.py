"""A topology catalogue: the same assertions over many flow shapes, on both executors.

Each case builds a flow, starts it at ``src`` with some values, and states the
expected status, what each sink collected (in the sequential executor's
order) and how many handler calls each routine made (retry attempts
included). Every case runs on the sequential and on the thread executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
from conftest import Countdown, calls, no_retry_delay

from flowforge import ErrorStrategy, Flow
from flowforge.testing import Collect, Double, Flaky, Join, Relay, Source


@attrs.frozen
class Case:
    """One topology: how to build it and what running it must give."""

    build: Callable[[Flow], None]
    params: dict[str, Any]
    outputs: dict[str, list[dict[str, Any]]]
    calls: dict[str, int]
    status: str = "completed"
    entry: str = "src"


def add(flow: Flow, **routines: Any) -> None:
    """Add routines by id."""
    for rid, routine in routines.items():
        flow.add_routine(routine, rid)


def wire(flow: Flow, *edges: str) -> None:
    """Connect ``"a.out -> b.in"`` edges."""
    for edge in edges:
        source, target = (side.strip() for side in edge.split("->"))
        flow.connect(*source.split("."), *target.split("."))


def flaky(fail_times: int, strategy: ErrorStrategy, **options: Any) -> Flaky:
    """A Flaky failing ``fail_times`` calls under ``strategy`` (no retry delay)."""
    routine = Flaky()
    routine.set_config(fail_times=fail_times)
    routine.set_error_handler(no_retry_delay(strategy, **options))
    return routine


def linear(flow: Flow) -> None:
    """src -> d1 -> d2 -> sink."""
    add(flow, src=Source(), d1=Double(), d2=Double(), sink=Collect())
    wire(flow, "src.out -> d1.in", "d1.out -> d2.in", "d2.out -> sink.in")


def fan_out(flow: Flow) -> None:
    """src -> double -> sink_a; src -> relay -> sink_b."""
    add(flow, src=Source(), double=Double(), relay=Relay(), sink_a=Collect(), sink_b=Collect())
    wire(
        flow,
        "src.out -> double.in",
        "src.out -> relay.in",
        "double.out -> sink_a.in",
        "relay.out -> sink_b.in",
    )


def fan_in(flow: Flow) -> None:
    """src -> double -> sink; src -> relay -> sink (one override slot hears both)."""
    add(flow, src=Source(), double=Double(), relay=Relay(), sink=Collect())
    wire(
        flow,
        "src.out -> double.in",
        "src.out -> relay.in",
        "double.out -> sink.in",
        "relay.out -> sink.in",
    )


def diamond(flow: Flow) -> None:
    """src -> double, relay -> join -> sink, names kept apart by mappings."""
    add(flow, src=Source(), double=Double(), relay=Relay(), join=Join(), sink=Collect())
    wire(flow, "src.out -> double.in", "src.out -> relay.in", "join.out -> sink.in")
    flow.connect("double", "out", "join", "in", {"value": "doubled"})
    flow.connect("relay", "out", "join", "in", {"value": "original"})


def guarded_loop(flow: Flow) -> None:
    """src -> count; count.again -> count (until 0); count.done -> sink."""
    add(flow, src=Source(), count=Countdown(), sink=Collect())
    flow.connect("src", "out", "count", "in", {"value": "n"})
    wire(flow, "count.again -> count.in", "count.done -> sink.in")


def error_mid_flow_continue(flow: Flow) -> None:
    """src -> double -> flaky (first call fails, CONTINUE) -> sink."""
    add(flow, src=Source(), double=Double(), flaky=flaky(1, ErrorStrategy.CONTINUE), sink=Collect())
    wire(flow, "src.out -> double.in", "double.out -> flaky.in", "flaky.out -> sink.in")


def error_mid_flow_skip(flow: Flow) -> None:
    """src -> double -> flaky (first call fails, SKIP) -> sink."""
    add(flow, src=Source(), double=Double(), flaky=flaky(1, ErrorStrategy.SKIP), sink=Collect())
    wire(flow, "src.out -> double.in", "double.out -> flaky.in", "flaky.out -> sink.in")


def error_mid_flow_stop(flow: Flow) -> None:
    """src -> double -> flaky (always fails, STOP) -> sink."""
    add(flow, src=Source(), double=Double(), flaky=flaky(-1, ErrorStrategy.STOP), sink=Collect())
    wire(flow, "src.out -> double.in", "double.out -> flaky.in", "flaky.out -> sink.in")


def retry(flow: Flow) -> None:
    """src -> flaky (first two calls fail, RETRY up to 3) -> sink."""
    add(flow, src=Source(), flaky=flaky(2, ErrorStrategy.RETRY, max_retries=3), sink=Collect())
    wire(flow, "src.out -> flaky.in", "flaky.out -> sink.in")


def retry_exhausted(flow: Flow) -> None:
    """src -> flaky (always fails, RETRY up to 2) -> sink."""
    add(flow, src=Source(), flaky=flaky(-1, ErrorStrategy.RETRY, max_retries=2), sink=Collect())
    wire(flow, "src.out -> flaky.in", "flaky.out -> sink.in")


def values(*items: Any, name: str = "value") -> list[dict[str, Any]]:
    """``[{name: item}, ...]``."""
    return [{name: item} for item in items]


CASES = {
    "linear": Case(
        linear,
        {"values": [1, 2, 3]},
        {"sink": values(4, 8, 12)},
        {"src": 1, "d1": 3, "d2": 3, "sink": 3},
    ),
    "fan-out": Case(
        fan_out,
        {"values": [1, 2]},
        {"sink_a": values(2, 4), "sink_b": values(1, 2)},
        {"src": 1, "double": 2, "relay": 2, "sink_a": 2, "sink_b": 2},
    ),
    "fan-in": Case(
        fan_in,
        {"values": [1, 2]},
        {"sink": values(2, 1, 4, 2)},
        {"src": 1, "double": 2, "relay": 2, "sink": 4},
    ),
    "diamond": Case(
        diamond,
        {"values": [1, 2, 3]},
        {"sink": [{"doubled": 2 * v, "original": v} for v in (1, 2, 3)]},
        {"src": 1, "double": 3, "relay": 3, "join": 3, "sink": 3},
    ),
    "guarded loop": Case(
        guarded_loop,
        {"values": [5]},
        {"sink": values(0, name="n")},
        {"src": 1, "count": 6, "sink": 1},
    ),
    "error mid-flow (continue)": Case(
        error_mid_flow_continue,
        {"values": [1, 2, 3]},
        {"sink": values(4, 6)},
        {"src": 1, "double": 3, "flaky": 3, "sink": 2},
    ),
    "error mid-flow (skip)": Case(
        error_mid_flow_skip,
        {"values": [1, 2, 3]},
        {"sink": values(4, 6)},
        {"src": 1, "double": 3, "flaky": 3, "sink": 2},
    ),
    "error mid-flow (stop)": Case(
        error_mid_flow_stop,
        {"values": [1]},
        {"sink": []},
        {"src": 1, "double": 1, "flaky": 1, "sink": 0},
        status="failed",
    ),
    "retry": Case(
        retry, {"values": [1, 2]}, {"sink": values(1, 2)}, {"src": 1, "flaky": 4, "sink": 2}
    ),
    "retry exhausted": Case(
        retry_exhausted,
        {"values": [1]},
        {"sink": []},
        {"src": 1, "flaky": 3, "sink": 0},
        status="failed",
    ),
}


def ordered(items: list[dict[str, Any]]) -> list[str]:
    """Items as a sorted list of reprs (a multiset, for the thread executor)."""
    return sorted(map(repr, items))


@pytest.mark.parametrize("name", list(CASES))
def test_topology(name: str, executor: str) -> None:
    """The case's status, collected outputs and per-routine call counts hold."""
    case = CASES[name]
    flow = Flow(executor=executor, max_workers=4)
    case.build(flow)
    job = flow.execute(case.entry, case.params)
    assert job.status == case.status, job.errors
    for sink_id, expected in case.outputs.items():
        got = flow.get_routine(sink_id).items  # type: ignore[union-attr]
        assert ordered(got) == ordered(expected), sink_id
        if executor == "sequential":
            assert got == expected, sink_id
    assert {rid: calls(job, rid) for rid in case.calls} == case.calls
    assert set(case.calls) == set(flow.routines)
    for rid in flow.routines:
        perf = job.tracker.get_routine_performance(rid)
        assert job.get_routine_state(rid)["activations"] == perf["success_count"]  # type: ignore[index]
    assert bool(job.pending) == (case.status == "failed")


def _record(job: Any, flow: Flow) -> dict[str, Any]:
    """What a sequential job did, without times, ids and tracebacks."""
    return {
        "status": str(job.status),
        "routines": job.routine_states,
        "history": [(r.routine_id, r.event_name, r.data) for r in job.get_execution_history()],
        "flow": [(e.source, e.event, e.target, e.slot) for e in job.tracker.get_event_flow()],
        "errors": [(e.routine_id, e.error_type, e.strategy, e.attempts) for e in job.errors],
        "pending": [(m.routine_id, m.slot, m.data) for m in job.pending],
        "calls": {rid: calls(job, rid) for rid in flow.routines},
        "sinks": {rid: list(r.items) for rid, r in flow.routines.items() if isinstance(r, Collect)},
    }


@pytest.mark.parametrize("name", list(CASES))
def test_the_lane_and_the_general_path_record_the_same_job(name: str) -> None:
    """A job run by the sequential lane records exactly what the general path records."""
    from flowforge.signals import routine_started

    def build() -> Flow:
        flow = Flow()
        CASES[name].build(flow)
        return flow

    lane_flow = build()
    lane = _record(lane_flow.execute("src", CASES[name].params), lane_flow)
    general_flow = build()
    seen: list[str] = []

    def listen(sender: Any, **kw: Any) -> None:
        seen.append(kw["routine_id"])

    routine_started.connect(listen)  # a receiver sends every call the general way
    try:
        general = _record(general_flow.execute("src", CASES[name].params), general_flow)
    finally:
        routine_started.disconnect(listen)
    assert seen  # the general path really ran
    assert lane == general
