"""The one handler-call path (``invoke``), the executor registry, and abandoned calls."""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import Any

import click
import pytest
from conftest import chain, no_retry_delay

from flowforge import ErrorStrategy, Flow, Routine
from flowforge._activation import CURRENT, JobControl
from flowforge.cli import build_cli
from flowforge.errors import DefinitionError, MissingExtraError, SerializationError
from flowforge.job_state import Message
from flowforge.runtime.activation import (
    NO_STATE,
    Activation,
    CallContext,
    CancelFlag,
    Outcome,
    invoke,
)
from flowforge.runtime.executors import (
    SequentialExecutor,
    ThreadExecutor,
    create_executor,
    executor_kinds,
    make_executor,
)
from flowforge.testing import Collect, Source

# -- invoke -----------------------------------------------------------------------------


class Emitter(Routine):
    """Emits ``out(value)``, then fails if ``value`` is ``"fail"``; counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.run)
        self.define_event("out", ["value"])

    def run(self, value: Any) -> None:
        """Emit, count, and maybe fail."""
        self.emit("out", value=value)
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        if value == "fail":
            raise ValueError("asked to fail")


def activation(
    routine: Routine, value: Any, call: CallContext | None = None, **handler: Any
) -> Activation:
    """An activation of ``routine``'s slot ``in`` with ``value``."""
    strategy = handler.pop("strategy", ErrorStrategy.STOP)
    return Activation(
        routine,
        "r",
        routine._slots["in"],
        Message(7, "r", "in", {"value": value}),
        {"value": value},
        NO_STATE,
        None,
        {},
        no_retry_delay(strategy, **handler),
        call or CallContext("job"),
    )


def test_invoke_returns_the_calls_emits_and_counters() -> None:
    """A successful call's outcome carries what it emitted and its counters."""
    outcome = invoke(activation(Emitter(), 1))
    assert outcome.ok
    assert outcome.emits == [("out", {"value": 1})]
    assert outcome.stats == {"calls": 1}
    assert len(outcome.durations) == 1


def test_a_flat_call_outcome_is_a_whole_outcome() -> None:
    """The outcome of a plain call (made without Outcome.__init__) has every field:
    it equals one made the usual way, unpacks in order, and replace() copies it."""
    outcome = invoke(activation(Emitter(), 1))
    usual = Outcome(True, outcome.durations, [("out", {"value": 1})], {"calls": 1})
    assert outcome == usual
    ok, durations, emits, stats, error, traceback, running, retries = outcome
    assert (ok, emits, stats) == (True, usual.emits, usual.stats)
    assert (error, traceback, running, retries) == (None, "", None, ())
    assert durations is outcome.durations
    changed = outcome.replace(emits=[])
    assert changed.emits == [] and changed.stats == {"calls": 1} and outcome.emits
    assert changed != outcome and "emits=[]" in repr(changed)


def test_invoke_drops_the_emits_and_counters_of_a_failed_call() -> None:
    """A failed call's outcome has its error and traceback but no emits or counters."""
    outcome = invoke(activation(Emitter(), "fail"))
    assert not outcome.ok
    assert isinstance(outcome.error, ValueError)
    assert "asked to fail" in outcome.traceback
    assert (outcome.emits, outcome.stats) == ([], None)


def test_invoke_retries_and_tells_the_retry_callback() -> None:
    """Each retry is reported to ``on_retry`` with its attempt number, then the call fails."""
    seen: list[int] = []
    call = CallContext("job", on_retry=lambda act, attempt, delay, error: seen.append(attempt))
    act = activation(Emitter(), "fail", call, strategy=ErrorStrategy.RETRY, max_retries=2)
    outcome = invoke(act)
    assert seen == [1, 2]
    assert len(outcome.durations) == 3 and not outcome.ok


def test_handler_gets_a_job_control_not_the_scheduler() -> None:
    """What a handler's context holds to steer its job is a narrow JobControl."""
    seen: list[Any] = []

    class Spy(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.spy)

        def spy(self, value: Any) -> None:
            ctx = CURRENT.get()
            seen.append(None if ctx is None else ctx.control)

    for executor in ("sequential", "thread"):
        flow = Flow(executor=executor)
        chain(flow, ("src", Source()), ("spy", Spy()))
        flow.execute("src", {"values": [1]})
    assert len(seen) == 2
    assert all(type(control) is JobControl for control in seen)


class Pauser(Routine):
    """Pauses its job at the value ``"pause"``; relays every value."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.run)
        self.define_event("out", ["value"])

    def run(self, value: Any) -> None:
        """Relay, pausing the job first at ``"pause"``."""
        if value == "pause":
            self.pause_job("asked")
        self.emit("out", value=value)


@pytest.mark.parametrize("listening", [False, True])
def test_same_call_path_whether_or_not_signals_are_listened_to(listening: bool) -> None:
    """A handler pausing its job behaves the same with or without a signal receiver."""
    from flowforge.signals import routine_started

    flow = Flow()
    sink = Collect()
    chain(flow, ("src", Source()), ("pause", Pauser()), ("sink", sink))

    def receiver(sender: Any, **kwargs: Any) -> None:
        """Listens to routine_started."""

    if listening:
        routine_started.connect(receiver, sender=flow)
    try:
        job = flow.execute("src", {"values": ["pause", "b"]})
    finally:
        routine_started.disconnect(receiver)
    assert job.status == "paused"
    assert sink.items == []


# -- the registry -------------------------------------------------------------------------


def test_executor_kinds_lists_every_kind() -> None:
    """The registry names the four executor kinds."""
    assert executor_kinds() == ("sequential", "thread", "process", "dask")


def test_create_executor_passes_options() -> None:
    """create_executor builds the named kind with its options; None means not given."""
    thread = create_executor("thread", max_workers=3, address=None)
    assert isinstance(thread, ThreadExecutor) and thread.max_workers == 3
    assert isinstance(create_executor("sequential"), SequentialExecutor)


def test_create_executor_rejects_an_unknown_kind_listing_the_known_ones() -> None:
    """An unknown kind is a DefinitionError naming every kind."""
    with pytest.raises(DefinitionError, match="'dask', 'process', 'sequential', 'thread'"):
        create_executor("gpu")


def test_create_executor_rejects_an_option_the_kind_does_not_take() -> None:
    """An option the kind does not take is a DefinitionError naming its options."""
    with pytest.raises(DefinitionError, match=r"no option 'address'.*'max_workers'"):
        create_executor("thread", address="tcp://x:1")


@pytest.fixture
def no_cloudpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``cloudpickle`` (the dask extra) unimportable for the test."""
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    monkeypatch.delitem(sys.modules, "flowforge.runtime.dask", raising=False)


@pytest.mark.usefixtures("no_cloudpickle")
def test_missing_extra_says_what_to_install() -> None:
    """A kind whose extra is missing raises MissingExtraError with the pip command."""
    with pytest.raises(MissingExtraError, match=r'pip install "flowforge\[dask\]"') as info:
        create_executor("dask")
    assert isinstance(info.value, ModuleNotFoundError)
    assert (info.value.extra, info.value.module) == ("dask", "cloudpickle")


@pytest.mark.usefixtures("no_cloudpickle")
def test_flow_with_a_missing_extra_says_what_to_install() -> None:
    """Flow(executor="dask") without the extra names the extra, not just the module."""
    with pytest.raises(MissingExtraError, match=r"flowforge\[dask\]"):
        Flow(executor="dask")


@pytest.mark.usefixtures("no_cloudpickle")
def test_flow_file_with_a_missing_extra_says_what_to_install() -> None:
    """Loading a flow file whose executor's extra is missing names the pip command."""
    with pytest.raises(SerializationError, match=r"flow\.executor: .*flowforge\[dask\]"):
        Flow.from_dict({"routines": {}, "executor": {"kind": "dask"}})


def test_cli_offers_every_executor_kind() -> None:
    """The command line's --executor choices are the registry's kinds."""
    run = build_cli().commands["run"]
    option = next(param for param in run.params if param.name == "executor")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == executor_kinds()


def test_make_executor_ignores_max_workers_without_a_pool() -> None:
    """max_workers given to a kind without a pool is ignored, as Flow(max_workers=...) allows."""
    assert isinstance(make_executor(None, 4), SequentialExecutor)


# -- abandoned calls keep their place -----------------------------------------------------


class Overlap(Routine):
    """Measures how many of its calls run at once; the first call outlives its timeout.

    The call with ``value == 0`` (every attempt of it when ``slow_attempts``
    is set) holds for ``hold`` seconds; others return at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.slow_attempts = 1
        self.attempts = 0
        self.define_slot("in", handler=self.run)
        self.define_event("out", ["value"])

    def run(self, value: Any) -> None:
        """Count the overlap, hold when slow, emit."""
        with self.lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            slow = value == 0 and self.attempts < self.slow_attempts
            if value == 0:
                self.attempts += 1
        try:
            if slow:
                time.sleep(0.4)
            self.emit("out", value=value)
        finally:
            with self.lock:
                self.inside -= 1


def overlap_flow(executor: str, strategy: ErrorStrategy, **handler: Any) -> tuple[Flow, Overlap]:
    """``src -> overlap -> sink`` with a 0.05 s timeout and max_concurrency 1."""
    flow = Flow(executor=executor, max_workers=4)
    overlap = Overlap()
    overlap.timeout = 0.05
    overlap.max_concurrency = 1
    overlap.set_error_handler(no_retry_delay(strategy, **handler))
    chain(flow, ("src", Source()), ("overlap", overlap), ("sink", Collect()))
    return flow, overlap


@pytest.mark.parametrize("executor", ["sequential", "thread"])
def test_abandoned_call_keeps_its_concurrency_slot(executor: str) -> None:
    """After a timeout the routine's next call starts only once the abandoned one returned."""
    flow, overlap = overlap_flow(executor, ErrorStrategy.CONTINUE)
    job = flow.execute("src", {"values": [0, 1, 2]})
    assert job.status == "completed"
    assert [e.error_type for e in job.errors] == ["HandlerTimeoutError"]
    assert overlap.peak == 1


@pytest.mark.parametrize("executor", ["sequential", "thread"])
def test_retry_after_a_timeout_waits_for_the_abandoned_attempt(executor: str) -> None:
    """A retry of a timed-out call does not overlap the attempt still running."""
    flow, overlap = overlap_flow(executor, ErrorStrategy.RETRY, max_retries=1)
    job = flow.execute("src", {"values": [0]})
    assert job.status == "completed"
    assert overlap.attempts == 2
    assert overlap.peak == 1


def test_cancel_ends_a_wait_for_an_abandoned_call() -> None:
    """A job waiting for an abandoned call to return can still be cancelled."""
    release, entered = threading.Event(), threading.Event()

    class Stuck(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.run)

        def run(self, value: Any) -> None:
            if value == 0:
                entered.set()
                release.wait(30)

    def cancel_once_waiting() -> None:
        entered.wait(30)
        time.sleep(0.2)  # past the timeout, so the job waits for the abandoned call
        flow.cancel(reason="enough")

    flow = Flow()
    stuck = Stuck()
    stuck.timeout = 0.05
    stuck.set_error_handler(no_retry_delay(ErrorStrategy.CONTINUE))
    chain(flow, ("src", Source()), ("stuck", stuck))
    threading.Thread(target=cancel_once_waiting, daemon=True).start()
    try:
        job = flow.execute("src", {"values": [0, 1]})
    finally:
        release.set()
    assert job.status == "cancelled"
    assert job.routine_states["stuck"]["activations"] == 0


def test_a_finished_job_is_freed_without_the_garbage_collector() -> None:
    """No reference cycle keeps a job's scheduler alive once the job is over."""
    targets: list[Any] = []

    class Grab(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("in", handler=self.grab)

        def grab(self, value: Any) -> None:
            ctx = CURRENT.get()
            assert ctx is not None and ctx.control is not None
            targets.append(ctx.control._target)

    flow = Flow()
    chain(flow, ("src", Source()), ("grab", Grab()))
    gc.disable()
    try:
        flow.execute("src", {"values": [1]})
        assert len(targets) == 1
        assert targets[0]() is None
    finally:
        gc.enable()


# -- the cancel flag ----------------------------------------------------------------------


def test_cancel_flag_wait_times_out_while_unset_and_returns_at_once_once_set() -> None:
    """An unset flag's wait sleeps its timeout and says False; a set flag's says True at once."""
    flag = CancelFlag()
    start = time.perf_counter()
    assert flag.wait(0.05) is False
    assert time.perf_counter() - start >= 0.04
    flag.set()
    flag.set()  # setting twice is harmless
    start = time.perf_counter()
    assert flag.wait(5.0) is True and flag.is_set()
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("waited_first", [True, False])
def test_cancel_flag_set_from_another_thread_wakes_every_waiter(waited_first: bool) -> None:
    """Waiters (whether or not the flag's lock exists yet) wake when another thread sets it."""
    flag = CancelFlag()
    if waited_first:
        assert flag.wait(0.01) is False  # the lock now exists and is held
    woke: list[tuple[bool, float]] = []

    def waiter() -> None:
        start = time.perf_counter()
        woke.append((flag.wait(10.0), time.perf_counter() - start))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    flag.set()
    for thread in threads:
        thread.join(5.0)
    assert len(woke) == 3
    assert all(result and seconds < 5.0 for result, seconds in woke)


# -- the sequential executor's plain calls ----------------------------------------------


class Capture(Routine):
    """Keeps every field of the activation its handler runs in, as the call starts."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.take)
        self.seen: list[dict[str, Any]] = []

    def take(self, value: Any) -> None:
        act = CURRENT.get()
        names = [name for cls in type(act).__mro__ for name in getattr(cls, "__slots__", ())]
        self.seen.append({name: getattr(act, name) for name in names})


def test_a_plain_sequential_call_runs_in_the_activation_init_would_make() -> None:
    """The sequential executor makes plain calls' activations without Activation.__init__;
    every field is set, to what __init__ sets it to for the same call."""
    flow = Flow()
    flow.add_routine(Source(), "source")
    flow.add_routine(Capture(), "capture")
    flow.connect("source", "out", "capture", "in")
    job = flow.execute("source", {"values": [7]})
    assert job.status == "completed"
    (seen,) = flow.routines["capture"].seen
    expected = Activation(
        seen["routine"],
        "capture",
        seen["slot"],
        seen["message"],
        seen["message"].data,
        NO_STATE,
        None,
        seen["base_stats"],
        seen["error_handler"],
        seen["call"],
    )
    assert seen == {name: getattr(expected, name) for name in seen}
    assert seen["data"] == {"value": 7} and seen["slot"].name == "in"
