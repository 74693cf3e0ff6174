"""The process and Dask executors keep the engine's guarantees across worker processes.

One process pool and one local Dask cluster (two worker processes each) serve
the whole module: flows take the executor instance, and the fixtures close it
at the end. The routines live in ``remote_routines`` so worker processes can
import them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from remote_routines import (
    AsyncTriple,
    Countdown,
    DieOnce,
    EmitsLock,
    EmitsUndeclared,
    FailOn,
    FirstAttemptFails,
    Locked,
    RaisesPair,
    Span,
    Spin,
    Tail,
)

from flowforge import (
    ErrorHandler,
    ErrorInfo,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    signals,
)
from flowforge.runtime.dask import BATCH_BELOW, DaskExecutor
from flowforge.runtime.executors import Executor
from flowforge.runtime.remote import ShippingError
from flowforge.store import SQLiteStore
from flowforge.testing import Double, Join, Relay, Source

REMOTE = ("process", "dask")


def _start_dask() -> tuple[Flow, DaskExecutor]:
    with warnings.catch_warnings():
        # Dask's scheduler serves HTTP on port 8787 even without a dashboard;
        # when another cluster on this machine holds that port, Dask warns,
        # takes another port, and leaves its probing socket to the collector.
        # Neither concerns these tests; warnings stay errors everywhere else.
        warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
        warnings.filterwarnings("ignore", r"unclosed <socket", ResourceWarning)
        flow = Flow(executor="dask", max_workers=2)
        executor = flow.executor
        assert isinstance(executor, DaskExecutor)
        executor.client().wait_for_workers(2, timeout=30)
    return flow, executor


@pytest.fixture(scope="module")
def process_executor() -> Iterator[Executor]:
    """One pool of two worker processes for the module."""
    flow = Flow(executor="process", max_workers=2)
    yield flow.executor
    flow.close()


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[DaskExecutor]:
    """One local Dask cluster of two worker processes for the module."""
    flow, executor = _start_dask()
    yield executor
    flow.close()


@pytest.fixture(params=REMOTE)
def remote(request: pytest.FixtureRequest) -> Executor:
    """Each test using this runs on the process executor, then on Dask."""
    executor: Executor = request.getfixturevalue(f"{request.param}_executor")
    if isinstance(executor, DaskExecutor):
        # A worker killed by an earlier test may still be restarting.
        executor.client().wait_for_workers(2, timeout=30)
    return executor


def outputs(job: JobState, routine_id: str) -> list[dict[str, Any]]:
    """What ``routine_id`` emitted in ``job``, in a canonical order."""
    return sorted((r.data for r in job.get_execution_history(routine_id)), key=repr)


def calls(job: JobState, routine_id: str) -> int:
    """Handler calls of ``routine_id`` in ``job``, retry attempts included."""
    return int(job.tracker.get_routine_performance(routine_id)["total_executions"])


def failure(job: JobState) -> ErrorInfo:
    """The error that failed ``job`` (which must have one)."""
    assert job.error is not None, f"job {job.status} without an error"
    return job.error


def summary(job: JobState) -> dict[str, Any]:
    """Everything a run must agree on whichever executor ran it."""
    return {
        "status": str(job.status),
        "routines": {rid: dict(state) for rid, state in job.routine_states.items()},
        "outputs": {rid: outputs(job, rid) for rid in job.routine_states},
        "calls": {rid: calls(job, rid) for rid in job.routine_states},
        "errors": sorted((e.routine_id, e.error_type, e.strategy) for e in job.errors),
        "skipped": sorted((s.routine_id, s.slot) for s in job.skipped),
        "pending": len(job.pending),
    }


# -- the topology catalogue -------------------------------------------------------------


def _wire(flow: Flow, routines: dict[str, Any], edges: Sequence[tuple[str, str]]) -> None:
    for rid, routine in routines.items():
        flow.add_routine(routine, rid)
    for source, target in edges:
        source_id, _, event = source.partition(".")
        flow.connect(source_id, event or "out", target, "in")


def linear(flow: Flow) -> None:
    """``src -> double -> relay -> tail``."""
    routines = {"src": Source(), "double": Double(), "relay": Relay(), "tail": Tail()}
    _wire(flow, routines, [("src", "double"), ("double", "relay"), ("relay", "tail")])


def fan_out(flow: Flow) -> None:
    """``src -> double``, ``src -> relay``."""
    _wire(
        flow,
        {"src": Source(), "double": Double(), "relay": Relay()},
        [("src", "double"), ("src", "relay")],
    )


def fan_in(flow: Flow) -> None:
    """``src -> double -> tail``, ``src -> relay -> tail``."""
    routines = {"src": Source(), "double": Double(), "relay": Relay(), "tail": Tail()}
    edges = [("src", "double"), ("src", "relay"), ("double", "tail"), ("relay", "tail")]
    _wire(flow, routines, edges)


def diamond(flow: Flow) -> None:
    """``src -> double, relay -> join -> tail``."""
    routines = {
        "src": Source(),
        "double": Double(),
        "relay": Relay(),
        "join": Join(),
        "tail": Tail(),
    }
    edges = [
        ("src", "double"),
        ("src", "relay"),
        ("double", "join"),
        ("relay", "join"),
        ("join", "tail"),
    ]
    _wire(flow, routines, edges)


def guarded_loop(flow: Flow) -> None:
    """``count.again -> count``, ``count.done -> tail``."""
    _wire(
        flow,
        {"count": Countdown(), "tail": Tail()},
        [("count.again", "count"), ("count.done", "tail")],
    )


def failing_mid_flow(strategy: ErrorStrategy) -> Callable[[Flow], None]:
    """``src -> check -> tail`` where ``check`` fails on the value 2 under ``strategy``."""

    def build(flow: Flow) -> None:
        check = FailOn()
        check.set_config(bad=[2])
        check.set_error_handler(ErrorHandler(strategy))
        _wire(
            flow,
            {"src": Source(), "check": check, "tail": Tail()},
            [("src", "check"), ("check", "tail")],
        )

    return build


def join_after_continued_failure(flow: Flow) -> None:
    """``src -> double -> join``, ``src -> check -> join``; ``check`` fails on 2 (CONTINUE)."""
    check = FailOn()
    check.set_config(bad=[2])
    check.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    routines = {"src": Source(), "double": Double(), "check": check, "join": Join()}
    edges = [("src", "double"), ("src", "check"), ("double", "join"), ("check", "join")]
    _wire(flow, routines, edges)


def retrying(flow: Flow) -> None:
    """``src -> flaky -> tail``; every call's first attempt fails, RETRY without delay."""
    flaky = FirstAttemptFails()
    flaky.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0.0))
    _wire(
        flow,
        {"src": Source(), "flaky": flaky, "tail": Tail()},
        [("src", "flaky"), ("flaky", "tail")],
    )


def async_handler(flow: Flow) -> None:
    """``src -> triple -> tail`` where ``triple`` is an ``async def`` handler."""
    _wire(
        flow,
        {"src": Source(), "triple": AsyncTriple(), "tail": Tail()},
        [("src", "triple"), ("triple", "tail")],
    )


@dataclass(frozen=True)
class Case:
    """A flow shape, how to start it, and what any executor must produce."""

    build: Callable[[Flow], None]
    entry: str
    params: dict[str, Any]
    outputs: dict[str, list[dict[str, Any]]]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


def _values(*values: Any) -> list[dict[str, Any]]:
    return sorted(({"value": v} for v in values), key=repr)


ONE_TWO_THREE = {"values": [1, 2, 3]}
CATALOGUE: dict[str, Case] = {
    "linear": Case(
        linear,
        "src",
        ONE_TWO_THREE,
        {"tail": _values(2, 4, 6)},
        {"double": {"activations": 3, "stats": {"calls": 3}}, "tail": {"stats": {"calls": 3}}},
    ),
    "fan-out": Case(
        fan_out,
        "src",
        ONE_TWO_THREE,
        {"double": _values(2, 4, 6), "relay": _values(1, 2, 3)},
        {"double": {"activations": 3}, "relay": {"activations": 3}},
    ),
    "fan-in": Case(
        fan_in,
        "src",
        ONE_TWO_THREE,
        {"tail": _values(1, 2, 2, 3, 4, 6)},
        {"tail": {"activations": 6, "stats": {"calls": 6}}},
    ),
    "diamond": Case(
        diamond,
        "src",
        ONE_TWO_THREE,
        {"tail": _values([2, 1], [4, 2], [6, 3])},
        {"join": {"activations": 3}, "tail": {"activations": 3}},
    ),
    "guarded loop": Case(
        guarded_loop,
        "count",
        {"n": 5},
        {"tail": [{"n": 0}]},
        {"count": {"activations": 6, "stats": {"steps": 6}}, "tail": {"activations": 1}},
    ),
    "error mid-flow, continue": Case(
        failing_mid_flow(ErrorStrategy.CONTINUE),
        "src",
        ONE_TWO_THREE,
        {"tail": _values(1, 3)},
        {"check": {"activations": 2, "continued": 1, "failures": 1, "stats": {"calls": 2}}},
    ),
    "error mid-flow, skip": Case(
        failing_mid_flow(ErrorStrategy.SKIP),
        "src",
        ONE_TWO_THREE,
        {"tail": _values(1, 3)},
        {"check": {"activations": 2, "skipped": 1, "failures": 1}},
    ),
    "join after a continued failure": Case(
        join_after_continued_failure,
        "src",
        {"values": [1, 2]},
        {"join": _values([2, 1], 4)},
        {"join": {"activations": 2}, "check": {"continued": 1}},
    ),
    "retry": Case(
        retrying,
        "src",
        ONE_TWO_THREE,
        {"tail": _values(1, 2, 3)},
        {"flaky": {"activations": 3, "stats": {"calls": 3}}},
        {"flaky": 6},
    ),
    "async handler": Case(
        async_handler,
        "src",
        ONE_TWO_THREE,
        {"tail": _values(3, 6, 9)},
        {"triple": {"activations": 3, "stats": {"calls": 3}}},
    ),
}


def run_case(case: Case, executor: str | Executor) -> JobState:
    """Build ``case`` on a flow with ``executor`` and run one job."""
    flow = Flow(executor=executor)
    case.build(flow)
    return flow.execute(case.entry, case.params)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_gives_the_expected_outputs_and_counts(name: str, remote: Executor) -> None:
    """Each topology completes with its expected outputs, states and call counts."""
    case = CATALOGUE[name]
    job = run_case(case, remote)
    assert job.status is JobStatus.COMPLETED, job.reason
    assert {rid: outputs(job, rid) for rid in case.outputs} == case.outputs
    for rid, expected in case.states.items():
        state = job.routine_states[rid]
        assert {key: state.get(key) for key in expected} == expected, rid
    for rid, expected_calls in case.calls.items():
        assert calls(job, rid) == expected_calls, rid


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_matches_the_sequential_executor(name: str, remote: Executor) -> None:
    """Each topology's whole summary is the same as a sequential run's."""
    case = CATALOGUE[name]
    assert summary(run_case(case, remote)) == summary(run_case(case, "sequential"))


# -- failures and what carries over ------------------------------------------------------


def stop_then_fix_flow(executor: Executor) -> Flow:
    """``src -> check -> tail``, ``check`` failing on the value 2 under STOP."""
    flow = Flow(executor=executor)
    failing_mid_flow(ErrorStrategy.STOP)(flow)
    return flow


def test_stop_fails_the_job_and_keeps_the_failed_message(remote: Executor) -> None:
    """Under STOP the job ends failed with the failed message first in pending."""
    job = stop_then_fix_flow(remote).execute("src", ONE_TWO_THREE)
    assert job.status is JobStatus.FAILED
    assert (failure(job).routine_id, failure(job).error_type) == ("check", "ValueError")
    first = job.pending[0]
    assert (first.routine_id, first.data) == ("check", {"value": 2})


def test_resume_after_stop_finishes_each_message_once(remote: Executor) -> None:
    """After fixing the cause, resume completes with every value through exactly once."""
    flow = stop_then_fix_flow(remote)
    job = flow.execute("src", ONE_TWO_THREE)
    flow.routines["check"].set_config(bad=[])
    job = flow.resume(job)
    assert job.status is JobStatus.COMPLETED
    assert outputs(job, "tail") == _values(1, 2, 3)
    assert job.routine_states["tail"]["stats"] == {"calls": 3}


def pausing_at(
    flow: Flow, routine_id: str, after: int, action: str = "pause"
) -> Callable[..., None]:
    """A ``routine_finished`` receiver that pauses (or cancels) the job after
    ``after`` calls of ``routine_id``; it runs on the job's own thread."""
    seen: list[str] = []

    def receiver(sender: Flow, **kwargs: Any) -> None:
        if kwargs["routine_id"] == routine_id:
            seen.append(kwargs["activation_id"])
            if len(seen) == after:
                getattr(sender, action)(kwargs["job_state"], reason=f"test {action}")

    return receiver


def test_pause_and_resume_lose_and_repeat_nothing(process_executor: Executor) -> None:
    """A job paused mid-way keeps its work; resume processes every message once."""
    flow = Flow(executor=process_executor)
    linear(flow)
    values = list(range(8))
    with signals.routine_finished.connected_to(pausing_at(flow, "double", 3), sender=flow):
        job = flow.execute("src", {"values": values})
    assert job.status is JobStatus.PAUSED
    assert job.pending
    assert job.routine_states["double"]["activations"] < len(values)
    job = flow.resume(job)
    assert job.status is JobStatus.COMPLETED
    assert outputs(job, "tail") == _values(*(2 * v for v in values))
    assert job.routine_states["double"]["stats"] == {"calls": len(values)}
    assert job.routine_states["tail"]["stats"] == {"calls": len(values)}


def test_cancel_ends_the_job_cancelled(remote: Executor) -> None:
    """A cancel requested mid-job stops new work and ends the job cancelled."""
    flow = Flow(executor=remote)
    linear(flow)
    receiver = pausing_at(flow, "double", 2, action="cancel")
    with signals.routine_finished.connected_to(receiver, sender=flow):
        job = flow.execute("src", {"values": list(range(8))})
    assert job.status is JobStatus.CANCELLED
    assert job.routine_states["tail"]["activations"] < 8


def test_retry_scheduled_is_sent_for_each_retry(remote: Executor) -> None:
    """retry_scheduled reports each retry made in a worker, as it does locally."""
    flow = Flow(executor=remote)
    retrying(flow)
    attempts: list[tuple[str, int]] = []

    def receiver(sender: Flow, **kwargs: Any) -> None:
        attempts.append((kwargs["routine_id"], kwargs["attempt"]))

    with signals.retry_scheduled.connected_to(receiver, sender=flow):
        job = flow.execute("src", ONE_TWO_THREE)
    assert job.status is JobStatus.COMPLETED
    assert attempts == [("flaky", 1)] * 3


def test_exception_that_cannot_be_pickled_is_reported_as_a_failure(remote: Executor) -> None:
    """A handler's exception with a two-argument __init__ is recorded, with its message."""
    flow = Flow(executor=remote)
    pair = RaisesPair()
    pair.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    _wire(
        flow, {"src": Source(), "pair": pair, "tail": Tail()}, [("src", "pair"), ("pair", "tail")]
    )
    job = flow.execute("src", ONE_TWO_THREE)
    assert job.status is JobStatus.COMPLETED
    assert [(e.routine_id, e.message) for e in job.errors] == [("pair", "1/pair")]
    assert "PairError" in job.errors[0].error_type + job.errors[0].traceback
    assert outputs(job, "tail") == _values(2, 3)


def test_flowforge_errors_from_a_worker_keep_their_type(remote: Executor) -> None:
    """An EmitError raised in a worker fails the job as an EmitError naming the event."""
    flow = Flow(executor=remote)
    _wire(flow, {"bad": EmitsUndeclared()}, [])
    job = flow.execute("bad", {"value": 1})
    assert job.status is JobStatus.FAILED
    assert (failure(job).routine_id, failure(job).error_type) == ("bad", "EmitError")
    assert "'outt'" in failure(job).message


def test_paused_job_resumes_from_its_checkpoint(remote: Executor, tmp_path: Path) -> None:
    """A job checkpointed while paused, loaded from the store, finishes each message once."""
    values = list(range(8))
    with SQLiteStore(tmp_path / "jobs.db", durability="activation") as store:
        flow = Flow(executor=remote, store=store)
        linear(flow)
        with signals.routine_finished.connected_to(pausing_at(flow, "double", 3), sender=flow):
            paused = flow.execute("src", {"values": values})
        assert paused.status is JobStatus.PAUSED
        loaded = store.load(paused.job_id)
        assert loaded.status is JobStatus.PAUSED
        assert len(loaded.pending) == len(paused.pending)
        job = flow.resume(loaded)
        assert store.load(job.job_id).status is JobStatus.COMPLETED
    assert job.status is JobStatus.COMPLETED
    assert outputs(job, "tail") == _values(*(2 * v for v in values))
    assert job.routine_states["tail"]["stats"] == {"calls": len(values)}


# -- concurrency limits across workers ---------------------------------------------------


def max_overlap(spans: Sequence[tuple[float, float]]) -> int:
    """The most intervals that are open at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, change in edges:
        open_now += change
        peak = max(peak, open_now)
    return peak


def spans_with_limit(
    executor: Executor, limit: int, meet_dir: Path, items: int = 4
) -> list[dict[str, Any]]:
    """Run ``items`` calls of a routine capped at ``limit``, whose first ``limit``
    calls wait for each other; what each call reported."""
    flow = Flow(executor=executor)
    span = Span()
    # The meeting proves the limit is reached; the hold lets a call beyond it show.
    span.set_config(seconds=0.1, meet_dir=str(meet_dir), parties=limit)
    span.max_concurrency = limit
    _wire(flow, {"src": Source(), "span": span}, [("src", "span")])
    job = flow.execute("src", {"values": list(range(items))})
    assert job.status is JobStatus.COMPLETED, job.reason
    return [r.data for r in job.get_execution_history("span")]


@pytest.mark.parametrize("limit", [1, 2])
def test_max_concurrency_holds_across_worker_processes(
    remote: Executor, limit: int, tmp_path: Path
) -> None:
    """Calls measured inside the workers overlap exactly up to the routine's limit."""
    reports = spans_with_limit(remote, limit, tmp_path)
    assert len(reports) == 4
    assert max_overlap([(r["start"], r["end"]) for r in reports]) == limit


def test_calls_do_run_in_several_processes(remote: Executor, tmp_path: Path) -> None:
    """With a limit of 2, calls run in two worker processes, neither of them the test's."""
    pids = {r["pid"] for r in spans_with_limit(remote, 2, tmp_path)}
    assert len(pids) == 2
    assert os.getpid() not in pids


# -- timeouts -----------------------------------------------------------------------------

#: A timeout in a worker comes back as a HandlerTimeoutError like any handler error:
#: the process executor interrupts the call, Dask abandons it on its worker.


def spin_flow(
    executor: Executor, pid_file: Path, strategy: ErrorStrategy, spin_seconds: float = 60
) -> Flow:
    """``src -> spin``: ``spin`` busy-loops on ``"spin"`` with a 0.5 s timeout."""
    flow = Flow(executor=executor)
    spin = Spin()
    spin.set_config(pid_file=str(pid_file), spin_seconds=spin_seconds)
    spin.timeout = 0.5
    spin.set_error_handler(ErrorHandler(strategy))
    _wire(flow, {"src": Source(), "spin": spin}, [("src", "spin")])
    return flow


def test_process_timeout_fails_a_busy_loop_under_stop(
    process_executor: Executor, tmp_path: Path
) -> None:
    """A pure-Python busy loop past its timeout fails the job with HandlerTimeoutError."""
    flow = spin_flow(process_executor, tmp_path / "pid", ErrorStrategy.STOP)
    job = flow.execute("src", {"values": ["spin"]})
    assert job.status is JobStatus.FAILED
    assert (failure(job).routine_id, failure(job).error_type) == ("spin", "HandlerTimeoutError")


def test_process_timeout_interrupts_the_call_and_the_worker_serves_on(
    process_executor: Executor, tmp_path: Path
) -> None:
    """Under CONTINUE the job goes on, and the worker that looped runs later calls."""
    flow = spin_flow(process_executor, tmp_path / "pid", ErrorStrategy.CONTINUE)
    job = flow.execute("src", {"values": ["spin", "a", "b"]})
    assert job.status is JobStatus.COMPLETED
    assert job.routine_states["spin"]["continued"] == 1
    assert [e.error_type for e in job.errors] == ["HandlerTimeoutError"]
    assert sorted(r.data["value"] for r in job.get_execution_history("spin")) == ["a", "b"]
    spun = int((tmp_path / "pid").read_text())
    # Two calls allowed at once land on both workers only if the one that looped is free.
    meet_dir = tmp_path / "meet"
    meet_dir.mkdir()
    assert spun in {r["pid"] for r in spans_with_limit(process_executor, 2, meet_dir, items=2)}


def test_dask_timeout_fails_the_call_and_the_job_goes_on(
    dask_executor: Executor, tmp_path: Path
) -> None:
    """On Dask a call past its timeout fails with HandlerTimeoutError (it is abandoned)."""
    flow = spin_flow(dask_executor, tmp_path / "pid", ErrorStrategy.CONTINUE, spin_seconds=1.5)
    job = flow.execute("src", {"values": ["spin", "a"]})
    assert job.status is JobStatus.COMPLETED
    assert [(e.routine_id, e.error_type) for e in job.errors] == [("spin", "HandlerTimeoutError")]
    assert [r.data["value"] for r in job.get_execution_history("spin")] == ["a"]


# -- what cannot be shipped ---------------------------------------------------------------


def test_unpicklable_routine_fails_before_the_job_starts(remote: Executor) -> None:
    """A routine holding a lock raises ShippingError naming it, and no job runs."""
    flow = Flow(executor=remote)
    _wire(flow, {"src": Source(), "locked": Locked()}, [("src", "locked")])
    job = JobState()
    with pytest.raises(ShippingError, match="'locked'") as caught:
        flow.execute("src", {"values": [1]}, job_state=job)
    assert (caught.value.routine_id, caught.value.what) == ("locked", "routine")
    assert job.status is JobStatus.PENDING
    assert flow.running_jobs == []


def test_unpicklable_entry_data_fails_at_the_first_send(remote: Executor) -> None:
    """A generator in the data sent to a worker fails the job naming routine and key."""
    flow = Flow(executor=remote)
    _wire(flow, {"tail": Tail()}, [])
    job = flow.execute("tail", {"value": 1, "rows": (n for n in range(3))})
    assert job.status is JobStatus.FAILED
    error = failure(job)
    assert (error.routine_id, error.error_type) == ("tail", "ShippingError")
    assert "'tail'" in error.message
    assert "data['rows']" in error.message


def test_unpicklable_emitted_data_fails_naming_routine_and_key(remote: Executor) -> None:
    """A lock emitted by a handler in a worker fails the job naming the routine and the key."""
    flow = Flow(executor=remote)
    _wire(flow, {"emit": EmitsLock(), "tail": Tail()}, [("emit", "tail")])
    job = flow.execute("emit", {"value": 1})
    assert job.status is JobStatus.FAILED
    error = failure(job)
    assert (error.routine_id, error.error_type) == ("emit", "ShippingError")
    assert "guard" in error.message


# -- pointing at a running cluster -------------------------------------------------------


def test_flow_file_with_an_address_runs_on_that_cluster(dask_executor: DaskExecutor) -> None:
    """``executor: {kind: dask, address: ...}`` in a flow file uses the running cluster."""
    client = dask_executor.client()
    data = {
        "flow_id": "by-address",
        "executor": {"kind": "dask", "address": client.scheduler_info()["address"]},
        "routines": {
            "src": {"class": "flowforge.testing:Source"},
            "span": {"class": "remote_routines:Span", "config": {"seconds": 0.01}},
        },
        "connections": ["src.out -> span.in"],
    }
    with Flow.from_dict(data, allowed_modules=("remote_routines",)) as flow:
        job = flow.execute("src", {"values": [1, 2, 3]})
    assert job.status is JobStatus.COMPLETED
    workers = set(client.run(os.getpid).values())
    assert {r.data["pid"] for r in job.get_execution_history("span")} <= workers


# -- workers that die ----------------------------------------------------------------------


def test_killed_worker_loses_no_message_and_repeats_none(remote: Executor, tmp_path: Path) -> None:
    """A worker killed mid-call: the call runs again elsewhere and each message counts once."""
    flow = Flow(executor=remote)
    die = DieOnce()
    die.set_config(marker=str(tmp_path / "died"))
    die.max_concurrency = 2
    _wire(flow, {"src": Source(), "die": die, "tail": Tail()}, [("src", "die"), ("die", "tail")])
    values = list(range(10))
    job = flow.execute("src", {"values": values})
    assert (tmp_path / "died").exists()
    assert job.status is JobStatus.COMPLETED, job.reason
    assert job.errors == []
    assert outputs(job, "tail") == _values(*values)
    assert job.routine_states["die"]["stats"] == {"calls": len(values)}
    assert job.routine_states["tail"]["stats"] == {"calls": len(values)}
    assert job.routine_states["die"]["activations"] == len(values)


def test_many_calls_in_flight_on_dask_are_each_applied_once(dask_executor: Executor) -> None:
    """With more tasks out than the workers run, results held and fetched together count once."""
    flow = Flow(executor=dask_executor)
    span = Span()
    span.set_config(seconds=BATCH_BELOW * 1.5)  # one task per call: many tasks out
    span.max_concurrency = 12
    _wire(
        flow, {"src": Source(), "span": span, "tail": Tail()}, [("src", "span"), ("span", "tail")]
    )
    values = list(range(30))
    job = flow.execute("src", {"values": values})
    assert job.status is JobStatus.COMPLETED, job.reason
    assert sorted(r.data["value"] for r in job.get_execution_history("tail")) == values
    assert job.routine_states["span"]["stats"] == {"calls": len(values)}
    assert job.routine_states["tail"]["stats"] == {"calls": len(values)}


def test_worker_killed_while_dask_results_are_held_loses_nothing(
    dask_executor: DaskExecutor, tmp_path: Path
) -> None:
    """A worker dies with many tasks out, results held for batched fetches: each counts once."""
    dask_executor.client().wait_for_workers(2, timeout=30)
    flow = Flow(executor=dask_executor)
    span, die = Span(), DieOnce()
    span.set_config(seconds=BATCH_BELOW * 1.5)
    die.set_config(marker=str(tmp_path / "died"))
    span.max_concurrency = die.max_concurrency = 12
    routines = {"src": Source(), "span": span, "die": die, "tail": Tail()}
    _wire(flow, routines, [("src", "span"), ("span", "die"), ("die", "tail")])
    values = list(range(30))
    job = flow.execute("src", {"values": values})
    assert (tmp_path / "died").exists()
    assert job.status is JobStatus.COMPLETED, job.reason
    assert outputs(job, "tail") == _values(*values)
    for rid in ("span", "die", "tail"):
        assert job.routine_states[rid]["stats"] == {"calls": len(values)}
