"""Live jobs: Flow.start, JobHandle, capacities, pipelines, deadlines, stopping."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from flowforge import (
    BackpressureTimeout,
    DeadlineExceededError,
    Flow,
    JobHandle,
    JobStateError,
    JobStatus,
    Routine,
    current_activation,
)
from flowforge.store import MemoryStore, SQLiteStore
from flowforge.testing import Collect, Double, Relay

EXECUTORS = ["sequential", "thread", "process"]


class Stage(Routine):
    """Passes ``n`` on, recording what it saw; waits on ``gate`` when given."""

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__()
        self.define_slot("in", handler=self.handle, capacity=capacity)
        self.define_event("out", ["n"])
        self.seen: list[int] = []
        self.gate: threading.Event | None = None
        self.observed = 0

    def handle(self, n: int) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.seen.append(n)
        self.emit("out", n=n)


class Sink(Routine):
    """Collects ``n``."""

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__()
        self.define_slot("in", handler=self.handle, capacity=capacity)
        self.seen: list[int] = []

    def handle(self, n: int) -> None:
        self.seen.append(n)


class Slow(Routine):
    """Sleeps ``seconds`` in small steps, ending early once the job is stopping."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.handle)
        self.define_event("out", ["stopped"])

    def handle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        info = current_activation()
        assert info is not None
        while time.monotonic() < end:
            if info.stopping:
                self.emit("out", stopped=True)
                return
            time.sleep(0.01)
        self.emit("out", stopped=False)


def three_stage(capacity: int | None = None, executor: str = "sequential") -> Flow:
    return Flow.pipeline(
        "three",
        [("a", Stage()), ("b", Stage(capacity)), ("c", Sink())],
        executor=executor,
    )


def test_start_runs_a_job_in_the_background_to_its_end() -> None:
    """start() without keep_open returns a handle; wait() gives the completed JobState."""
    flow = three_stage()
    handle = flow.start("a", {"n": 7})
    assert isinstance(handle, JobHandle)
    job = handle.wait()
    assert handle.done() and job.status is JobStatus.COMPLETED
    assert flow.get_routine("c").seen == [7]


@pytest.mark.parametrize("executor", [*EXECUTORS, "dask"])
def test_an_open_job_takes_every_submitted_item_until_closed(executor: str) -> None:
    """keep_open: items submitted arrive once each; leaving the block closes and waits."""
    if executor == "dask":
        pytest.importorskip("distributed")
    flow = three_stage(executor=executor)
    with flow.start("a", keep_open=True) as handle:
        for n in range(50):
            handle.submit({"n": n})
    assert handle.status is JobStatus.COMPLETED
    assert not handle.job_state.open
    if executor in ("sequential", "thread"):
        assert sorted(flow.get_routine("c").seen) == list(range(50))
    assert handle.job_state.runs["c"].activations == 50
    flow.close()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_capacities_deliver_every_item_once_on_every_executor(executor: str) -> None:
    """With small capacities every submitted item reaches the last stage once."""
    flow = three_stage(capacity=2, executor=executor)
    with flow.start(keep_open=True) as handle:
        for n in range(100):
            handle.submit({"n": n}, timeout=30)
    job = handle.job_state
    assert job.status is JobStatus.COMPLETED and not job.pending
    assert job.runs["c"].activations == 100
    if executor != "process":
        assert sorted(flow.get_routine("c").seen) == list(range(100))


def test_the_sequential_executor_keeps_every_stage_in_order() -> None:
    """On the sequential executor each stage sees the submitted order."""
    flow = three_stage(capacity=3)
    with flow.start(keep_open=True) as handle:
        for n in range(200):
            handle.submit({"n": n})
    assert flow.get_routine("a").seen == list(range(200))
    assert flow.get_routine("b").seen == list(range(200))
    assert flow.get_routine("c").seen == list(range(200))


def test_submit_after_close_is_refused() -> None:
    """submit() to a closed job raises JobStateError saying it was closed."""
    flow = three_stage()
    handle = flow.start("a", keep_open=True)
    handle.close()
    handle.wait()
    with pytest.raises(JobStateError, match="stopped \\(completed\\)"):
        handle.submit({"n": 1})


def test_submit_to_a_paused_job_is_refused() -> None:
    """A paused job refuses input, naming its status."""
    flow = three_stage()
    handle = flow.start("a", keep_open=True)
    handle.pause("later")
    assert handle.wait(10).status is JobStatus.PAUSED
    with pytest.raises(JobStateError, match="paused"):
        handle.submit({"n": 1})


def test_a_paused_open_job_starts_again_open() -> None:
    """start(job_state=paused open job) takes more input; nothing is lost or repeated."""
    flow = three_stage()
    handle = flow.start("a", keep_open=True)
    for n in range(5):
        handle.submit({"n": n})
    handle.pause()
    job = handle.wait()
    assert job.status is JobStatus.PAUSED and job.open
    with flow.start(job_state=job) as again:
        for n in range(5, 10):
            again.submit({"n": n})
    assert again.status is JobStatus.COMPLETED
    assert sorted(flow.get_routine("c").seen) == list(range(10))


def test_resume_refuses_an_open_job() -> None:
    """The blocking resume() refuses an open job and points to start()."""
    flow = three_stage()
    handle = flow.start("a", keep_open=True)
    handle.pause()
    job = handle.wait()
    with pytest.raises(JobStateError, match=r"flow\.start\(job_state=job\)"):
        flow.resume(job)


def test_the_block_raising_cancels_the_job() -> None:
    """A context manager block that raises cancels the job."""
    flow = three_stage()
    with pytest.raises(RuntimeError), flow.start("a", keep_open=True) as handle:
        raise RuntimeError("boom")
    assert handle.status is JobStatus.CANCELLED


def test_a_pause_with_no_work_left_completes_a_job_that_is_not_open() -> None:
    """pause() once the work is done ends a job that is not open completed."""
    flow = three_stage()
    handle = flow.start("a", {"n": 1})
    job = handle.wait()
    handle.pause()
    assert job.status is JobStatus.COMPLETED


def test_wait_with_a_timeout_returns_a_snapshot() -> None:
    """wait(timeout) on a running job returns a copy; done() says it still runs."""
    flow = three_stage()
    handle = flow.start("a", keep_open=True)
    handle.submit({"n": 1})
    copy = handle.wait(0.05)
    assert not handle.done()
    assert copy is not handle.job_state and copy.job_id == handle.job_id
    handle.close()
    assert handle.wait().status is JobStatus.COMPLETED


def test_submit_blocks_then_times_out_when_the_slot_is_full() -> None:
    """A full entry slot makes submit raise BackpressureTimeout after its timeout."""
    first = Stage(capacity=2)
    first.gate = threading.Event()
    flow = Flow.pipeline("bp", [("a", first), ("c", Sink())])
    handle = flow.start(keep_open=True)
    with pytest.raises(BackpressureTimeout, match="capacity"):
        for n in range(4):  # one is taken by the blocked handler, two wait, one is too many
            handle.submit({"n": n}, timeout=0.2)
    first.gate.set()
    handle.close()
    handle.wait()
    assert len(flow.get_routine("c").seen) >= 3


def test_no_call_feeds_a_full_slot() -> None:
    """The scheduler starts no call of a routine whose fed slot is full."""
    flow = three_stage(capacity=5)
    observed: list[int] = []
    feeder = flow.get_routine("a")
    original = feeder.handle

    def watch(n: int) -> None:
        runner = next(iter(flow._runners.values()))
        assert runner.capacities is not None
        observed.append(runner.capacities.counts["b.in"])
        original(n)

    feeder._slots["in"].invoke = lambda data: watch(**data)
    with flow.start(keep_open=True) as handle:
        for n in range(100):
            handle.submit({"n": n})
    assert max(observed) < 5
    assert flow.get_routine("c").seen == list(range(100))


def test_an_endless_stream_stays_bounded_by_the_capacities() -> None:
    """100,000 items through a slow middle stage: pending never exceeds capacities + 1."""
    flow = Flow.pipeline("long", [("a", Stage(50)), ("b", Stage(100)), ("c", Sink(50))])
    peak = [0]
    middle = flow.get_routine("b")
    original = middle.handle

    def slow(n: int) -> None:
        runner = next(iter(flow._runners.values()))
        peak[0] = max(peak[0], flow.pending_count(runner.job))
        if n % 1000 == 0:
            time.sleep(0.001)
        original(n)

    middle._slots["in"].invoke = lambda data: slow(**data)
    with flow.start(keep_open=True) as handle:
        for n in range(100_000):
            handle.submit({"n": n})
    print(f"peak pending messages: {peak[0]}")
    assert peak[0] <= 50 + 100 + 50 + 1
    assert flow.get_routine("c").seen == list(range(100_000))


def traced_peak(count: int) -> float:
    """Peak traced memory (bytes) of ``count`` items through a bounded 3-stage pipeline."""

    class Count(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.count, capacity=100)
            self.total = 0

        def count(self, n: int) -> None:
            self.total += 1

    flow = Flow.pipeline("mem", [("a", Stage(100)), ("b", Stage(100)), ("c", Count())])
    for stage in ("a", "b"):
        flow.get_routine(stage).seen = _Discard()
    tracemalloc.start()
    try:
        with flow.start(keep_open=True) as handle:
            for n in range(count):
                handle.submit({"n": n})
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class _Discard(list):  # type: ignore[type-arg]
    """A list that keeps nothing, so the test stages do not grow."""

    def append(self, item: object) -> None:
        pass


def test_memory_stays_flat_as_the_stream_grows() -> None:
    """Five times the items through bounded slots take about the same peak memory."""
    small, large = traced_peak(2_000), traced_peak(10_000)
    print(f"tracemalloc peak: {small / 2**20:.2f} MiB (2,000), {large / 2**20:.2f} MiB (10,000)")
    assert large < small * 1.5
    assert large < 16 * 2**20


def test_capacity_is_saved_with_the_flow() -> None:
    """A slot's capacity round-trips through serialize/from_dict."""
    flow = three_stage(capacity=7)
    data = flow.serialize()
    assert data["routines"]["b"]["capacity"] == {"in": 7}
    assert "capacity" not in data["routines"]["a"]
    again = Flow.from_dict(data, allowed_modules=__name__)
    assert again.get_routine("b").slots["in"].capacity == 7


def test_a_flow_file_sets_capacity_per_slot() -> None:
    """capacity: {slot: N} under a routine wins over the routine's own."""
    data = three_stage(capacity=7).serialize()
    data["routines"]["b"]["capacity"] = {"in": 3}
    data["routines"]["a"]["capacity"] = {"in": 2}
    flow = Flow.from_dict(data, allowed_modules=__name__)
    assert flow.get_routine("b").slots["in"].capacity == 3
    assert flow.get_routine("a").slots["in"].capacity == 2


def test_a_flow_file_capacity_for_an_unknown_slot_is_a_problem() -> None:
    """A capacity naming a slot the routine lacks is listed with its place."""
    from flowforge import SerializationError

    data = three_stage().serialize()
    data["routines"]["b"]["capacity"] = {"nope": 3}
    with pytest.raises(SerializationError, match=r"capacity\.nope"):
        Flow.from_dict(data, allowed_modules=__name__)


def test_pipeline_wires_stages_in_line() -> None:
    """Flow.pipeline connects each stage's event to the next stage's slot."""
    flow = Flow.pipeline("line", [Double(), ("twice", Double()), ("sink", Collect())])
    assert [c.key for c in flow.connections] == ["double_1.out->twice.in", "twice.out->sink.in"]
    flow.execute(entry_params={"value": 3})
    assert flow.get_routine("sink").items == [{"value": 12}]


def test_pipeline_refuses_a_stage_with_two_events() -> None:
    """A middle stage without exactly one event cannot be wired in line."""
    from flowforge import DefinitionError

    two = Stage()
    two.define_event("other")
    with pytest.raises(DefinitionError, match="2 events"):
        Flow.pipeline("bad", [two, Sink()])


def test_stopping_lets_a_handler_end_early_on_pause() -> None:
    """current_activation().stopping turns True when the job is paused."""
    flow = Flow.pipeline("stop", [("slow", Slow()), ("sink", Collect())], executor="thread")
    handle = flow.start("slow", {"seconds": 30})
    time.sleep(0.2)
    handle.pause()
    job = handle.wait(20)
    assert handle.done() and job.status is JobStatus.PAUSED
    assert [m.data for m in job.pending] == [{"stopped": True}]


@pytest.mark.parametrize("executor", [*EXECUTORS, "dask"])
def test_a_deadline_fails_the_job_on_every_executor(executor: str) -> None:
    """deadline= ends the job failed with DeadlineExceededError; the running call is dropped."""
    if executor == "dask":
        pytest.importorskip("distributed")
    flow = Flow.pipeline("late", [("slow", Slow()), ("sink", Relay())], executor=executor)
    handle = flow.start("slow", {"seconds": 2}, deadline=0.3)
    job = handle.wait(60)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_type == DeadlineExceededError.__name__
    assert "deadline of 0.3 s" in job.error.message
    assert [m.routine_id for m in job.pending] == ["slow"]
    assert job.runs["sink"].activations == 0
    flow.close()


def test_a_deadline_ends_an_idle_open_job() -> None:
    """An open job waiting for input fails once its deadline passes."""
    handle = three_stage().start("a", keep_open=True, deadline=0.2)
    job = handle.wait(30)
    assert job.status is JobStatus.FAILED and job.open
    assert job.error is not None and "deadline" in job.error.message


def test_a_deadline_on_execute_drops_the_running_call() -> None:
    """execute(deadline=) fails the job; the running call's message stays pending."""
    flow = Flow.pipeline("late", [("slow", Slow()), ("sink", Collect())])
    job = flow.execute("slow", {"seconds": 30}, deadline=0.2)
    assert job.status is JobStatus.FAILED
    assert "deadline of 0.2 s" in job.reason
    assert [m.routine_id for m in job.pending] == ["slow"]
    assert flow.get_routine("sink").items == []


def test_submit_returns_once_the_item_is_stored(tmp_path: Path) -> None:
    """With a store, a submitted item is in the stored job when submit returns.

    (On the sequential executor the runner calls handlers itself, so submit
    waits for the running call; the thread executor leaves it free.)
    """
    first = Stage()
    first.gate = threading.Event()
    flow = Flow.pipeline("durable", [("a", first), ("c", Sink())], executor="thread")
    store = SQLiteStore(tmp_path / "jobs.db")
    handle = flow.start(keep_open=True, store=store)
    for n in range(20):
        handle.submit({"n": n})
    with SQLiteStore(tmp_path / "jobs.db") as reader:
        stored = reader.load(handle.job_id)
    assert stored.open
    # Item 0's call is still running, so its step is not committed: all 20 are stored.
    assert sorted(m.data["n"] for m in stored.pending) == list(range(20))
    first.gate.set()
    handle.close()
    handle.wait()
    store.close()


def test_a_crashed_open_job_resumes_open_and_delivers_each_item_once(tmp_path: Path) -> None:
    """What the store holds after submit (a crash's leftovers) resumes open, each item once."""
    first = Stage()
    first.gate = threading.Event()
    flow = Flow.pipeline("crash", [("a", first), ("c", Sink())], executor="thread")
    store = MemoryStore()
    handle = flow.start(keep_open=True, store=store)
    for n in range(30):
        handle.submit({"n": n})
    crashed = store.load(handle.job_id)  # as a crash now would leave it
    handle.cancel()
    first.gate.set()
    handle.wait()

    again = Flow.pipeline("crash", [("a", Stage()), ("c", Sink())])
    assert crashed.status is JobStatus.RUNNING and crashed.open
    with again.start(job_state=crashed, store=MemoryStore()) as resumed:
        resumed.submit({"n": 30})
    assert resumed.status is JobStatus.COMPLETED
    assert sorted(again.get_routine("c").seen) == list(range(31))


def test_a_handle_can_be_awaited() -> None:
    """await handle (and wait_async) give the JobState without blocking the loop."""

    async def main() -> Any:
        flow = three_stage()
        handle = flow.start("a", {"n": 1})
        job = await handle
        again = await handle.wait_async()
        return job, again

    job, again = asyncio.run(main())
    assert job.status is JobStatus.COMPLETED and again is job


def test_execute_async_takes_a_deadline() -> None:
    """execute_async(deadline=) fails the job past its deadline."""
    flow = Flow.pipeline("late", [("slow", Slow()), ("sink", Collect())])
    job = asyncio.run(flow.execute_async("slow", {"seconds": 30}, deadline=0.2))
    assert job.status is JobStatus.FAILED


def test_submit_names_an_unknown_routine() -> None:
    """submit(routine=...) to a routine the flow lacks lists the routines it has."""
    from flowforge import UnknownNameError

    handle = three_stage().start("a", keep_open=True)
    with pytest.raises(UnknownNameError, match="routines are: 'a', 'b', 'c'"):
        handle.submit({"n": 1}, routine="nope")
    handle.submit({"n": 1}, routine="c")
    handle.close()
    assert handle.wait().runs["c"].activations == 1


def test_submit_names_an_unknown_slot() -> None:
    """submit(slot=...) naming a slot the entry routine lacks lists its slots."""
    from flowforge import UnknownNameError

    handle = three_stage().start("a", keep_open=True)
    with pytest.raises(UnknownNameError, match="slots are: 'in'"):
        handle.submit({"n": 1}, slot="nope")
    handle.close()
    assert handle.wait().status is JobStatus.COMPLETED
