"""The scheduler: order, long chains and loops, caps, concurrency, timeouts, pause, cancel."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from conftest import (
    AsyncGate,
    Countdown,
    Forever,
    Gate,
    Pauser,
    Rendezvous,
    Tagger,
    calls,
    chain,
    linear_flow,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStateError,
    JobStatus,
    Routine,
    current_activation,
)
from flowforge.testing import Collect, Double, Flaky, Relay, Sleep, Source

# -- order -------------------------------------------------------------------------


def tagged_tree(log: list[tuple[str, Any]]) -> Flow:
    """``src -> a, b``; ``a -> c``; ``b -> d``, every routine a Tagger on ``log``."""
    flow = Flow()
    flow.add_routine(Source(), "src")
    for rid in "abcd":
        tagger = Tagger()
        tagger.log = log
        flow.add_routine(tagger, rid)
    for source, target in [("src", "a"), ("src", "b"), ("a", "c"), ("b", "d")]:
        flow.connect(source, "out", target, "in")
    return flow


def test_sequential_order_is_fifo_breadth_first() -> None:
    """Messages run first in, first out: emit order, then connection order."""
    log: list[tuple[str, Any]] = []
    tagged_tree(log).execute("src", {"values": [1, 2]})
    assert log == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 1), ("d", 1), ("c", 2), ("d", 2)]


def test_sequential_order_is_the_same_every_run() -> None:
    """Two runs of the same job call handlers in the same order."""
    first: list[tuple[str, Any]] = []
    second: list[tuple[str, Any]] = []
    tagged_tree(first).execute("src", {"values": [3, 1, 2]})
    tagged_tree(second).execute("src", {"values": [3, 1, 2]})
    assert first == second


def test_thread_executor_keeps_arrival_order_for_a_one_at_a_time_routine() -> None:
    """With max_concurrency 1, a routine handles its messages in the order they arrived."""
    log: list[tuple[str, Any]] = []
    flow = Flow(executor="thread", max_workers=4)
    tagger = Tagger()
    tagger.log = log
    chain(flow, ("src", Source()), ("tag", tagger))
    values = list(range(10))
    job = flow.execute("src", {"values": values})
    assert job.status == "completed"
    assert [value for _, value in log] == values


@st.composite
def layered_dags(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[int]]:
    """A random DAG of Relays: (size, edges i -> j with i < j, entry values)."""
    size = draw(st.integers(2, 7))
    edges = draw(
        st.lists(
            st.tuples(st.integers(0, size - 2), st.integers(1, size - 1)).filter(
                lambda e: e[0] < e[1]
            ),
            max_size=10,
            unique=True,
        )
    )
    values = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=4))
    return size, edges, values


def run_dag(dag: tuple[int, list[tuple[int, int]], list[int]], executor: str) -> JobState:
    """Build and run ``dag`` with a Source into node 0 and a Collect after every node."""
    size, edges, values = dag
    flow = Flow(executor=executor, max_workers=3)
    flow.add_routine(Source(), "src")
    flow.add_routine(Collect(), "sink")
    for node in range(size):
        flow.add_routine(Relay(), f"n{node}")
        flow.connect(f"n{node}", "out", "sink", "in", {"value": f"from_n{node}"})
    flow.connect("src", "out", "n0", "in")
    for source, target in edges:
        flow.connect(f"n{source}", "out", f"n{target}", "in")
    return flow.execute("src", {"values": values})


def expected_calls(dag: tuple[int, list[tuple[int, int]], list[int]]) -> dict[str, int]:
    """Each node is called once per path from node 0, times the number of values."""
    size, edges, values = dag
    paths = [1] + [0] * (size - 1)
    for node in range(size):
        for source, target in sorted(edges):
            if source == node:
                paths[target] += paths[node]
    return {f"n{node}": paths[node] * len(values) for node in range(size)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layered_dags())
def test_every_message_is_handled_exactly_once_on_both_executors(
    dag: tuple[int, list[tuple[int, int]], list[int]],
) -> None:
    """Call counts follow the number of paths, and both executors agree on the outputs."""
    sequential = run_dag(dag, "sequential")
    threaded = run_dag(dag, "thread")
    expected = expected_calls(dag)
    for job in (sequential, threaded):
        assert job.status == "completed"
        assert {rid: calls(job, rid) for rid in expected} == expected
    assert sorted(
        (r.routine_id, repr(r.data)) for r in sequential.get_execution_history()
    ) == sorted((r.routine_id, repr(r.data)) for r in threaded.get_execution_history())


# -- long chains and loops -------------------------------------------------------------


def test_ten_thousand_routine_chain_runs_without_recursion() -> None:
    """A chain of 10,000 routines completes: handlers never call each other."""
    flow = Flow()
    sink = Collect()
    chain(flow, ("src", Source()), *((f"r{i}", Relay()) for i in range(10_000)), ("sink", sink))
    job = flow.execute("src", {"values": [7]})
    assert job.status == "completed"
    assert sink.items == [{"value": 7}]
    assert job.get_routine_state("r9999")["activations"] == 1  # type: ignore[index]


def test_hundred_thousand_iteration_guarded_loop_completes() -> None:
    """A loop that runs 100,001 times ends by its guard, without a recursion error."""
    flow = Flow()
    flow.add_routine(Countdown(), "count")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("count", "again", "count", "in")
    flow.connect("count", "done", "sink", "in")
    job = flow.execute("count", {"n": 100_000})
    assert job.status == "completed"
    assert job.get_routine_state("count")["activations"] == 100_001  # type: ignore[index]
    assert sink.items == [{"n": 0}]


def test_runaway_loop_is_capped_with_an_error_naming_the_routine() -> None:
    """A loop with no guard stops at the flow's cap: ActivationLimitError naming it."""
    flow = Flow(max_activations=50)
    flow.add_routine(Forever(), "forever")
    flow.connect("forever", "again", "forever", "in")
    job = flow.execute("forever", {"n": 0})
    assert job.status == "failed"
    assert job.error is not None
    assert (job.error.error_type, job.error.routine_id) == ("ActivationLimitError", "forever")
    assert "'forever'" in job.error.message and "50" in job.error.message
    assert job.get_routine_state("forever")["activations"] == 50  # type: ignore[index]


def test_runaway_loop_through_two_routines_is_capped() -> None:
    """A two-routine cycle is a loop too: the cap applies to its routines."""
    flow = Flow(max_activations=20)
    flow.add_routine(Relay(), "ping")
    flow.add_routine(Relay(), "pong")
    flow.connect("ping", "out", "pong", "in")
    flow.connect("pong", "out", "ping", "in")
    job = flow.execute("ping", {"n": 0})
    assert job.status == "failed"
    assert job.error is not None and job.error.error_type == "ActivationLimitError"
    assert job.error.routine_id in {"ping", "pong"}


def test_routine_cap_applies_off_a_loop_too() -> None:
    """routine.max_activations caps that routine even when it is not on a loop."""
    flow = Flow()
    sink = Collect()
    sink.max_activations = 2
    chain(flow, ("src", Source()), ("sink", sink))
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert job.status == "failed"
    assert job.error is not None and job.error.routine_id == "sink"
    assert len(sink.items) == 2


def test_routines_off_loops_have_no_default_cap() -> None:
    """The flow's cap applies only to routines on a loop."""
    flow = Flow(max_activations=2)
    sink = Collect()
    chain(flow, ("src", Source()), ("sink", sink))
    job = flow.execute("src", {"values": [1, 2, 3, 4]})
    assert job.status == "completed"
    assert len(sink.items) == 4


# -- the thread executor ---------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
def test_max_concurrency_bounds_overlapping_calls(limit: int) -> None:
    """Sleep.peak, observed inside the handlers, never exceeds max_concurrency."""
    flow = Flow(executor="thread", max_workers=8)
    sleep = Sleep()
    sleep.set_config(seconds=0.02)
    sleep.max_concurrency = limit
    chain(flow, ("src", Source()), ("sleep", sleep))
    job = flow.execute("src", {"values": list(range(12))})
    assert job.status == "completed"
    assert 1 <= sleep.peak <= limit
    assert calls(job, "sleep") == 12


def test_max_concurrency_calls_do_run_together() -> None:
    """With max_concurrency 3, three calls are running at once (they meet at a barrier)."""
    flow = Flow(executor="thread", max_workers=4)
    meet = Rendezvous()
    meet.barrier = threading.Barrier(3)
    meet.max_concurrency = 3
    sink = Collect()
    chain(flow, ("src", Source()), ("meet", meet), ("sink", sink))
    job = flow.execute("src", {"values": [1, 2, 3, 4, 5, 6]})
    assert job.status == "completed", job.errors
    assert sorted(i["value"] for i in sink.items) == [1, 2, 3, 4, 5, 6]


def test_numeric_counters_of_concurrent_calls_add_up() -> None:
    """Counters changed by calls running at the same time are merged, not lost."""
    flow = Flow(executor="thread", max_workers=4)
    sink = Collect()
    sink.max_concurrency = 4
    chain(flow, ("src", Source()), ("sink", sink))
    job = flow.execute("src", {"values": list(range(40))})
    assert job.get_routine_state("sink")["stats"] == {"calls": 40}  # type: ignore[index]
    assert sink.stats() == {"calls": 40}


# -- timeouts ------------------------------------------------------------------------


def test_sync_handler_past_its_timeout_fails_with_a_timeout_error(
    released_gates: list[Gate],
    executor: str,
) -> None:
    """A blocking sync handler is failed with HandlerTimeoutError after its timeout."""
    flow = Flow(executor=executor)
    gate = Gate()
    released_gates.append(gate)
    gate.timeout = 0.05
    sink = Collect()
    chain(flow, ("gate", gate), ("sink", sink))
    job = flow.execute("gate", {"value": 1})
    assert job.status == "failed"
    assert job.error is not None
    assert (job.error.error_type, job.error.routine_id) == ("HandlerTimeoutError", "gate")
    assert "0.05" in job.error.message
    assert sink.items == []


def test_async_handler_past_its_timeout_fails_with_a_timeout_error(executor: str) -> None:
    """An async handler is cancelled and failed with HandlerTimeoutError."""
    flow = Flow(executor=executor)
    slow = AsyncGate()
    slow.timeout = 0.05
    sink = Collect()
    chain(flow, ("slow", slow), ("sink", sink))
    job = flow.execute("slow", {"value": 1})
    assert job.status == "failed"
    assert job.error is not None and job.error.error_type == "HandlerTimeoutError"
    assert sink.items == []


def test_timeout_is_handled_by_the_routines_strategy(released_gates: list[Gate]) -> None:
    """Under CONTINUE a timed-out call is recorded, emits nothing, and the job completes."""
    flow = Flow()
    gate = Gate()
    released_gates.append(gate)
    gate.timeout = 0.05
    gate.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    sink = Collect()
    chain(flow, ("gate", gate), ("sink", sink))
    job = flow.execute("gate", {"value": 1})
    gate.release.set()
    assert job.status == "completed"
    assert [e.error_type for e in job.errors] == ["HandlerTimeoutError"]
    assert sink.items == []


def test_fast_handler_within_its_timeout_succeeds() -> None:
    """A handler that finishes in time is unaffected by its timeout."""
    flow = Flow()
    sink = Collect()
    relay = Relay()
    relay.timeout = 5
    chain(flow, ("src", Source()), ("relay", relay), ("sink", sink))
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "completed"
    assert sink.items == [{"value": 1}, {"value": 2}]


# -- pause, resume, cancel -----------------------------------------------------------


def pausing_flow(executor: str, at: int) -> tuple[Flow, Collect]:
    """``src -> pauser -> sink``; the pauser pauses the job on value ``at``."""
    flow = Flow(executor=executor)
    pauser = Pauser()
    pauser.flow = flow
    pauser.set_config(at=at)
    sink = Collect()
    chain(flow, ("src", Source()), ("pauser", pauser), ("sink", sink))
    return flow, sink


def test_pause_from_a_handler_keeps_undelivered_work(executor: str) -> None:
    """flow.pause() in a handler: the job ends paused with work left in pending."""
    flow, sink = pausing_flow(executor, at=2)
    job = flow.execute("src", {"values": [1, 2, 3, 4]})
    assert job.status is JobStatus.PAUSED
    assert job.reason == "pause requested by a handler"
    assert job.pending
    assert len(sink.items) < 4


def test_resume_after_a_pause_finishes_without_loss_or_duplicates(executor: str) -> None:
    """resume() runs the rest: every value arrives exactly once."""
    flow, sink = pausing_flow(executor, at=2)
    job = flow.execute("src", {"values": [1, 2, 3, 4]})
    assert job.status is JobStatus.PAUSED
    flow.get_routine("pauser").set_config(at=None)  # type: ignore[union-attr]
    flow.resume(job)
    assert job.status is JobStatus.COMPLETED
    assert sorted(i["value"] for i in sink.items) == [1, 2, 3, 4]
    assert job.get_routine_state("pauser")["activations"] == 4  # type: ignore[index]


def run_in_thread(target: Any) -> tuple[threading.Thread, list[Any]]:
    """Start ``target()`` in a thread; its result lands in the returned list."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def gated_flow(executor: str, released: list[Gate]) -> tuple[Flow, Gate, Collect]:
    """``src -> gate -> sink``; the gate blocks each call until released."""
    flow = Flow(executor=executor)
    gate = Gate()
    released.append(gate)
    sink = Collect()
    chain(flow, ("src", Source()), ("gate", gate), ("sink", sink))
    return flow, gate, sink


def test_pause_from_another_thread_then_resume(
    executor: str,
    released_gates: list[Gate],
) -> None:
    """flow.pause(job) from another thread lets the running call finish, then resumes."""
    flow, gate, sink = gated_flow(executor, released_gates)
    job = JobState()
    thread, _ = run_in_thread(lambda: flow.execute("src", {"values": [1, 2, 3]}, job_state=job))
    assert gate.entered.wait(10)
    flow.pause(job, reason="operator")
    gate.release.set()
    thread.join(10)
    assert job.status is JobStatus.PAUSED and job.reason == "operator"
    assert job.get_routine_state("gate")["activations"] == 1  # type: ignore[index]
    flow.resume(job)
    assert job.status is JobStatus.COMPLETED
    assert sorted(i["value"] for i in sink.items) == [1, 2, 3]


def test_pause_without_a_job_acts_on_the_only_running_job(
    released_gates: list[Gate],
) -> None:
    """flow.pause() with no job pauses the flow's only running job."""
    flow, gate, _ = gated_flow("sequential", released_gates)
    thread, result = run_in_thread(lambda: flow.execute("src", {"values": [1, 2]}))
    assert gate.entered.wait(10)
    assert len(flow.running_jobs) == 1
    flow.pause()
    gate.release.set()
    thread.join(10)
    assert result[0].status is JobStatus.PAUSED
    assert flow.running_jobs == []


def test_cancel_from_another_thread_ends_the_job_cancelled(
    executor: str,
    released_gates: list[Gate],
) -> None:
    """flow.cancel(job) stops new work; the job ends cancelled and cannot resume."""
    flow, gate, sink = gated_flow(executor, released_gates)
    job = JobState()
    thread, _ = run_in_thread(lambda: flow.execute("src", {"values": [1, 2, 3]}, job_state=job))
    assert gate.entered.wait(10)
    flow.cancel(job, reason="no longer needed")
    gate.release.set()
    thread.join(10)
    assert job.status is JobStatus.CANCELLED and job.reason == "no longer needed"
    assert len(sink.items) <= 1
    with pytest.raises(JobStateError):
        flow.resume(job)


def test_cancel_during_retry_backoff_stops_waiting() -> None:
    """A cancel while a call waits to retry ends the job without waiting out the delay."""
    flow = Flow()
    gate_entered = threading.Event()

    class FailSlowly(Relay):
        def relay(self, **data: Any) -> None:
            gate_entered.set()
            raise ConnectionError("down")

    routine = FailSlowly()
    routine.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=3, retry_delay=30.0))
    chain(flow, ("r", routine))
    job = JobState()
    thread, _ = run_in_thread(lambda: flow.execute("r", {"x": 1}, job_state=job))
    assert gate_entered.wait(10)
    flow.cancel(job)
    thread.join(10)
    assert not thread.is_alive()
    assert job.status is JobStatus.CANCELLED


# -- jobs at the same time -----------------------------------------------------------


def test_concurrent_jobs_of_one_flow_do_not_mix(executor: str) -> None:
    """Jobs of one flow run from several threads keep their own messages and states."""
    flow = Flow(executor=executor, max_workers=2)
    sleep = Sleep()
    sleep.set_config(seconds=0.005)
    chain(flow, ("src", Source()), ("sleep", sleep), ("relay", Relay()), ("sink", Collect()))
    inputs = {n: [n * 100 + i for i in range(5)] for n in range(4)}
    jobs: dict[int, JobState] = {}
    barrier = threading.Barrier(len(inputs))

    def work(n: int) -> None:
        barrier.wait(10)
        jobs[n] = flow.execute("src", {"values": inputs[n]})

    threads = [threading.Thread(target=work, args=(n,)) for n in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len({job.job_id for job in jobs.values()}) == len(inputs)
    for n, job in jobs.items():
        assert job.status == "completed"
        relayed = [r.data["value"] for r in job.get_execution_history("relay")]
        assert sorted(relayed) == inputs[n]
        assert job.get_routine_state("sink")["activations"] == 5  # type: ignore[index]
        assert calls(job, "sleep") == 5
    assert len(flow.get_routine("sink").items) == 20  # type: ignore[union-attr]


# -- activation ids ------------------------------------------------------------------


def test_activation_id_is_stable_across_a_failed_run_and_its_resume() -> None:
    """The retried call after a STOP and resume has the same activation id."""
    seen: list[str] = []

    class FailOnce(Relay):
        def relay(self, **data: Any) -> None:
            info = current_activation()
            assert info is not None
            seen.append(info.activation_id)
            if len(seen) == 1:
                raise ValueError("first time")
            super().relay(**data)

    flow = Flow()
    chain(flow, ("src", Source()), ("r", FailOnce()))
    job = flow.execute("src", {"values": [1]})
    assert job.status == "failed"
    flow.resume(job)
    assert job.status == "completed"
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0].startswith(f"{job.job_id}:")


def test_current_activation_reports_the_retry_attempt() -> None:
    """current_activation().attempt counts 0, 1, 2 across retries of one call."""
    attempts: list[int] = []

    class Record(Relay):
        def relay(self, **data: Any) -> None:
            info = current_activation()
            assert info is not None and info.routine_id == "r"
            attempts.append(info.attempt)
            if info.attempt < 2:
                raise ConnectionError("again")

    flow = Flow()
    routine = Record()
    routine.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, retry_delay=0))
    chain(flow, ("r", routine))
    assert flow.execute("r", {"x": 1}).status == "completed"
    assert attempts == [0, 1, 2]


# -- retention ---------------------------------------------------------------------


def test_flow_retention_bounds_each_jobs_history() -> None:
    """Flow(retention=N): a job keeps its latest N history entries and counts the rest."""
    flow = Flow(retention=10)
    linear_flow(flow)
    job = flow.execute("src", {"values": list(range(50))})
    assert job.status == "completed"
    assert len(job.get_execution_history()) == 10
    assert job.history_dropped == 150 - 10
    assert len(job.tracker.get_event_flow()) == 10


def test_job_retention_bounds_history_errors_and_event_flow() -> None:
    """JobState(retention=N) bounds history, errors and deliveries; totals still count."""
    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(Source(), "src")
    flow.add_routine(AlwaysFails(), "fails")
    flow.connect("src", "out", "fails", "in")
    job = flow.execute("src", {"values": list(range(30))}, job_state=JobState(retention=5))
    assert len(job.get_execution_history()) == 5 and job.history_total == 30
    assert len(job.errors) == 5 and job.errors_total == 30
    assert len(job.tracker.get_event_flow()) == 5
    assert job.tracker.event_flow_dropped == 25
    assert calls(job, "fails") == 30


class AlwaysFails(Relay):
    """A Relay whose handler always raises."""

    def relay(self, **data: Any) -> None:
        """Fail."""
        raise RuntimeError("always")


def test_pausing_a_finished_job_from_a_handler_is_harmless() -> None:
    """A pause asked by the last call, with no work left, still ends completed."""
    flow, sink = pausing_flow("sequential", at=3)
    job = flow.execute("src", {"values": [1, 2, 3]})
    assert job.status in (JobStatus.PAUSED, JobStatus.COMPLETED)
    if job.status is JobStatus.PAUSED:
        flow.resume(job)
    assert job.status is JobStatus.COMPLETED
    assert [i["value"] for i in sink.items] == [1, 2, 3]


def test_stop_on_the_thread_executor_lets_running_calls_finish_and_resume_loses_nothing() -> None:
    """After a STOP with calls in flight, a JSON round trip and resume deliver each item once."""
    flow = Flow(executor="thread", max_workers=4)
    sleep = Sleep()
    sleep.set_config(seconds=0.01)
    sleep.max_concurrency = 3
    flaky = Flaky()
    sink = Collect()
    chain(flow, ("src", Source()), ("sleep", sleep), ("flaky", flaky), ("sink", sink))
    job = flow.execute("src", {"values": list(range(12))})
    assert job.status == "failed"
    again = JobState.from_dict(json.loads(json.dumps(job.serialize())))
    flow.resume(again)
    assert again.status == "completed"
    assert sorted(i["value"] for i in sink.items) == list(range(12))
    assert again.get_routine_state("sleep")["activations"] == 12  # type: ignore[index]


def test_raising_the_cap_and_resuming_finishes_the_loop() -> None:
    """A job stopped by the activation cap finishes when resumed with a higher cap."""
    flow = Flow(max_activations=50)
    flow.add_routine(Countdown(), "count")
    flow.connect("count", "again", "count", "in")
    job = flow.execute("count", {"n": 100})
    assert job.status == "failed"
    flow.max_activations = None
    flow.resume(job)
    assert job.status == "completed"
    assert job.get_routine_state("count")["activations"] == 101  # type: ignore[index]


def test_pause_without_a_job_from_a_handler_pauses_only_that_handlers_job(
    executor: str,
) -> None:
    """With two jobs running, flow.pause() in a handler pauses the job that handler runs in."""
    flow = Flow(executor=executor, max_workers=2)
    pauser = Pauser()
    pauser.flow = flow
    pauser.set_config(at=-1)
    sleep = Sleep()
    sleep.set_config(seconds=0.005)
    chain(flow, ("src", Source()), ("sleep", sleep), ("pauser", pauser), ("sink", Collect()))
    barrier = threading.Barrier(2)
    jobs: dict[str, JobState] = {}

    def work(name: str, values: list[int]) -> None:
        barrier.wait(10)
        jobs[name] = flow.execute("src", {"values": values})

    threads = [
        threading.Thread(target=work, args=("pausing", [1, -1, 2, 3])),
        threading.Thread(target=work, args=("plain", [10, 11, 12, 13])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert jobs["pausing"].status is JobStatus.PAUSED
    assert jobs["plain"].status is JobStatus.COMPLETED


# -- the two readings of a routine's counters -----------------------------------------------


class Meet(Routine):
    """Relays ``value``; with a ``barrier`` set, the call of value 0 waits at it."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None
        self.define_slot("in", handler=self.meet)
        self.define_event("out", ["value"])

    def meet(self, value: Any) -> None:
        """Wait for the other jobs on cue, then pass the value on."""
        if value == 0 and self.barrier is not None:
            self.barrier.wait(10)
        self.emit("out", value=value)


def counting_flow(executor: str = "sequential") -> Flow:
    """``src -> meet -> double``; Double counts its calls in ``self._stats``."""
    flow = Flow(executor=executor, max_workers=4)
    chain(flow, ("src", Source()), ("meet", Meet()), ("double", Double()))
    return flow


def test_a_jobs_stats_are_what_that_job_did() -> None:
    """A second job of 1 item reports 1 call; the routine's total counts both jobs."""
    flow = counting_flow()
    flow.execute("src", {"values": [1, 2, 3]})
    job = flow.execute("src", {"values": [4]})
    assert job.get_routine_state("double")["stats"] == {"calls": 1}  # type: ignore[index]
    assert flow.get_routine("double").stats() == {"calls": 4}  # type: ignore[union-attr]


def test_overlapping_jobs_add_up_exactly_in_the_routines_total() -> None:
    """Jobs of 7 calls, then of 3 and 5 overlapping on threads, leave stats() at 15."""
    flow = counting_flow("thread")
    flow.execute("src", {"values": list(range(7))})
    meet = flow.get_routine("meet")
    assert isinstance(meet, Meet)
    meet.barrier = threading.Barrier(2)
    jobs: list[JobState] = []
    threads = [
        threading.Thread(
            target=lambda n=n: jobs.append(flow.execute("src", {"values": list(range(n))}))
        )
        for n in (3, 5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    flow.close()
    assert sorted(j.get_routine_state("double")["stats"]["calls"] for j in jobs) == [3, 5]  # type: ignore[index]
    assert flow.get_routine("double").stats() == {"calls": 15}  # type: ignore[union-attr]


def test_a_handler_sees_its_jobs_own_counters() -> None:
    """Inside a handler self._stats starts from the job's copy, not the routine's total."""
    flow = counting_flow()
    flow.execute("src", {"values": [1, 2]})
    job = flow.execute("src", {"values": [3]})
    assert job.runs["double"].stats == {"calls": 1}
    assert flow.get_routine("double").stats() == {"calls": 3}  # type: ignore[union-attr]


class PauseCount(Routine):
    """Counts its calls in ``self._stats['calls']`` and pauses the job at config ``at``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.count)

    def count(self, value: Any) -> None:
        """Count, and pause on cue."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        if value == self.get_config("at"):
            self.pause_job("paused on cue")


def test_resuming_in_a_fresh_flow_adds_only_the_work_after_the_resume_point() -> None:
    """A job paused after 2 of 5 calls, resumed by a flow loaded from the saved one: the
    loaded routine's total gains the 3 calls made after the resume; the job's copy has 5."""
    flow = Flow(flow_id="pausing")
    counter = PauseCount()
    counter.set_config(at=2)
    chain(flow, ("src", Source()), ("count", counter))
    job = flow.execute("src", {"values": [1, 2, 3, 4, 5]})
    assert job.status == JobStatus.PAUSED
    assert job.runs["count"].stats == {"calls": 2}
    fresh = Flow.from_dict(json.loads(json.dumps(flow.serialize())))
    fresh.get_routine("count")._stats = {"calls": 10}  # type: ignore[union-attr]
    resumed = fresh.resume(JobState.from_dict(json.loads(json.dumps(job.serialize()))))
    assert resumed.status == JobStatus.COMPLETED
    assert resumed.runs["count"].stats == {"calls": 5}
    assert fresh.get_routine("count").stats() == {"calls": 13}  # type: ignore[union-attr]


def test_plan_sites_gather_each_routines_facts() -> None:
    """A plan's site of a routine holds its cap, error handler, routes and plain flag."""
    flow = Flow()
    linear_flow(flow)
    rid = "double"
    flow.routines[rid].max_activations = 3
    plan = flow._plan()
    site = plan.sites[rid]
    assert (site.routine, site.cap, site.handler) == (
        flow.routines[rid],
        3,
        plan.handlers[rid],
    )
    assert site.routes is plan.routes[rid]
    assert not site.plain
    assert all(s.plain for r, s in plan.sites.items() if r != rid)
