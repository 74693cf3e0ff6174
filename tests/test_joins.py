"""A join downstream of a routine that may fail: every (strategy x outcome) pair.

``src`` feeds ``a`` (always succeeds) and ``b`` (a Flaky under test); both feed
the join ``j``, which feeds ``sink``. The documented rule: the join fires once
every source delivered; at quiescence a join still missing a source fires
with partial data only if every missing source failed under CONTINUE;
otherwise its round is dropped and recorded as skipped. STOP (and RETRY once
exhausted) fails the job; resuming after a fix fires the join once.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from conftest import calls, no_retry_delay

from flowforge import ErrorStrategy, Flow, JobState, Routine
from flowforge.testing import Collect, Double, Flaky, Join, Relay, Source

pytestmark = pytest.mark.timeout(20)

MAX_RETRIES = 2
#: How many calls of ``b`` fail for each upstream outcome.
OUTCOMES = {
    "success": 0,
    "failure": -1,
    "retry-then-success": 1,
    "retry-exhausted": MAX_RETRIES + 1,
}
FULL = [{"value": [2, 1]}]
PARTIAL = [{"value": 2}]


@attrs.frozen
class Expected:
    """What the job must end as."""

    status: str
    outputs: list[dict[str, Any]]
    join_calls: int


def expected(strategy: ErrorStrategy, outcome: str) -> Expected:
    """The documented result for a strategy and an upstream outcome."""
    if outcome == "success":
        return Expected("completed", FULL, 1)
    if strategy is ErrorStrategy.RETRY:
        if outcome == "retry-then-success":
            return Expected("completed", FULL, 1)
        return Expected("failed", [], 0)
    if strategy is ErrorStrategy.CONTINUE:
        return Expected("completed", PARTIAL, 1)
    if strategy is ErrorStrategy.SKIP:
        return Expected("completed", [], 0)
    return Expected("failed", [], 0)


def build(strategy: ErrorStrategy, fail_times: int, executor: str) -> tuple[Flow, Flaky, Collect]:
    """``src -> a, b -> j -> sink`` with ``b`` failing ``fail_times`` calls."""
    flow = Flow(executor=executor, max_workers=4)
    flaky = Flaky()
    flaky.set_config(fail_times=fail_times)
    flaky.set_error_handler(no_retry_delay(strategy, max_retries=MAX_RETRIES))
    sink = Collect()
    for rid, routine in [
        ("src", Source()),
        ("a", Double()),
        ("b", flaky),
        ("j", Join()),
        ("sink", sink),
    ]:
        flow.add_routine(routine, rid)
    for source, target in [("src", "a"), ("src", "b"), ("a", "j"), ("b", "j"), ("j", "sink")]:
        flow.connect(source, "out", target, "in")
    return flow, flaky, sink


@pytest.mark.parametrize("outcome", list(OUTCOMES))
@pytest.mark.parametrize("strategy", list(ErrorStrategy))
def test_join_after_upstream_outcome(strategy: ErrorStrategy, outcome: str, executor: str) -> None:
    """The join fires at most once, as the documented rule says, and never hangs."""
    flow, _, sink = build(strategy, OUTCOMES[outcome], executor)
    want = expected(strategy, outcome)
    job = flow.execute("src", {"values": [1]})
    assert job.status == want.status, job.errors
    assert sink.items == want.outputs
    assert calls(job, "j") == want.join_calls
    if want.status == "completed":
        assert not job.pending
        assert job.slot_states.get("j.in") in (None, {})


FAILING = [(s, o) for s in ErrorStrategy for o in OUTCOMES if expected(s, o).status == "failed"]


@pytest.mark.parametrize(("strategy", "outcome"), FAILING)
def test_resumed_join_fires_exactly_once(
    strategy: ErrorStrategy, outcome: str, executor: str
) -> None:
    """A failed job resumed after the upstream is fixed fires the join once, with full data."""
    flow, flaky, sink = build(strategy, OUTCOMES[outcome], executor)
    job = flow.execute("src", {"values": [1]})
    assert job.status == "failed"
    flaky.set_config(fail_times=0)
    flow.resume(job)
    assert job.status == "completed"
    assert sink.items == FULL
    assert calls(job, "j") == 1
    assert calls(job, "a") == 1


@pytest.mark.parametrize("strategy", [ErrorStrategy.SKIP, ErrorStrategy.CONTINUE])
def test_skipped_or_partial_join_is_recorded(strategy: ErrorStrategy, executor: str) -> None:
    """A dropped join round is in job.skipped with its missing source; a partial one is not."""
    flow, _, _ = build(strategy, -1, executor)
    job = flow.execute("src", {"values": [1]})
    joins = [s for s in job.skipped if s.routine_id == "j"]
    if strategy is ErrorStrategy.SKIP:
        assert [s.missing for s in joins] == [("b.out->j.in",)]
        assert job.get_routine_state("j")["skipped"] == 1  # type: ignore[index]
    else:
        assert joins == []


def cascade(strategy: ErrorStrategy, executor: str) -> tuple[Flow, Collect]:
    """``a, b -> j1``; ``j1, c -> j2 -> sink``; ``b`` always fails under ``strategy``."""
    flow = Flow(executor=executor, max_workers=4)
    flaky = Flaky()
    flaky.set_config(fail_times=-1)
    flaky.set_error_handler(no_retry_delay(strategy))
    sink = Collect()
    for rid, routine in [
        ("src", Source()),
        ("a", Double()),
        ("b", flaky),
        ("c", Relay()),
        ("j1", Join()),
        ("j2", Join()),
        ("sink", sink),
    ]:
        flow.add_routine(routine, rid)
    for source, target in [
        ("src", "a"),
        ("src", "b"),
        ("src", "c"),
        ("a", "j1"),
        ("b", "j1"),
        ("j1", "j2"),
        ("c", "j2"),
        ("j2", "sink"),
    ]:
        flow.connect(source, "out", target, "in")
    return flow, sink


def test_a_dropped_join_counts_as_skipped_further_down(executor: str) -> None:
    """SKIP upstream: the first join is dropped, so the join below it is dropped too."""
    flow, sink = cascade(ErrorStrategy.SKIP, executor)
    job = flow.execute("src", {"values": [1]})
    assert job.status == "completed"
    assert sink.items == []
    assert sorted(s.routine_id for s in job.skipped) == ["b", "j1", "j2"]
    assert calls(job, "j1") == calls(job, "j2") == 0


def test_a_partial_join_feeds_the_join_below_it(executor: str) -> None:
    """CONTINUE upstream: the first join fires partially, the one below fires whole."""
    flow, sink = cascade(ErrorStrategy.CONTINUE, executor)
    job = flow.execute("src", {"values": [1]})
    assert job.status == "completed"
    assert sink.items == [{"value": [2, 1]}]
    assert calls(job, "j1") == calls(job, "j2") == 1


def test_join_waiting_at_a_pause_survives_a_round_trip(executor: str) -> None:
    """A join holding one source's data across a failed run fires once after resume."""
    flow, flaky, sink = build(ErrorStrategy.STOP, -1, executor)
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "failed"
    again = JobState.from_dict(job.serialize())
    flaky.set_config(fail_times=0)
    flow.resume(again)
    assert again.status == "completed"
    assert sorted(map(repr, sink.items)) == sorted(
        map(repr, [{"value": [2, 1]}, {"value": [4, 2]}])
    )
    assert calls(again, "j") == 2


class FlakyJoin(Routine):
    """A join slot ``in`` whose ``fail_at``-th call (config, default 1) fails once;
    other calls emit ``out(**combined)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.define_slot("in", handler=self.joined, merge_strategy="join")
        self.define_event("out")

    def joined(self, **data: Any) -> None:
        """Fail once on cue, else pass the combined data on."""
        self.calls += 1
        if self.calls == self.get_config("fail_at", 1):
            raise ValueError("join failed once")
        self.emit("out", **data)


def test_a_wide_join_that_fails_keeps_every_delivery_of_its_round(executor: str) -> None:
    """A 60-source join whose call fails under STOP keeps its whole round;
    resumed, it fires once with every source's value, and nothing else."""
    width = 60
    flow = Flow(executor=executor, max_workers=4)
    sink = Collect()
    flow.add_routine(Relay(), "src")
    flow.add_routine(FlakyJoin(), "j")
    flow.add_routine(sink, "sink")
    for i in range(width):
        flow.add_routine(Relay(), f"r{i}")
        flow.connect("src", "out", f"r{i}", "in")
        flow.connect(f"r{i}", "out", "j", "in", param_mapping={"value": f"v{i}"})
    flow.connect("j", "out", "sink", "in")
    job = flow.execute("src", {"value": 7})
    assert job.status == "failed"
    assert len(job.slot_states["j.in"]) == width - 1  # the last delivery is pending again
    flow.resume(job)
    assert job.status == "completed"
    assert sink.items == [{f"v{i}": 7 for i in range(width)}]
    assert "j.in" not in job.slot_states


def test_long_streams_joined_pair_up_across_a_failure_and_a_round_trip(executor: str) -> None:
    """Two streams of 300 items joined pair up item by item, each pair once and in
    order, when the join fails under STOP after one stream is far ahead and the job
    is resumed from a JSON copy of its state."""
    flow = Flow(executor=executor, max_workers=4)
    flow.add_routine(Relay(), "start")
    join = FlakyJoin()
    join.set_config(fail_at=120)
    sink = Collect()
    for rid, routine in [("a", Source()), ("b", Source()), ("j", join), ("sink", sink)]:
        flow.add_routine(routine, rid)
    for name in ("a", "b"):
        flow.connect("start", "out", name, "in", param_mapping={"value": "values"})
        flow.connect(name, "out", "j", "in", param_mapping={"value": name})
    flow.connect("j", "out", "sink", "in")
    job = flow.execute("start", {"value": list(range(300))})
    assert job.status == "failed"
    again = JobState.from_dict(job.serialize())
    flow.resume(again)
    assert again.status == "completed"
    assert sink.items == [{"a": i, "b": i} for i in range(300)]
    assert "j.in" not in again.slot_states
