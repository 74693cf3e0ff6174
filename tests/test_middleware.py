"""Middleware: ``Flow.use``, ``Routine.use``, the ``mw(call, proceed)`` protocol,
saving, shipping to workers, and the middleware in ``flowforge.middleware``."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import middleware_support as ms
import pytest
from conftest import AsyncDouble
from middleware_support import Answer, EmitThenFail, Tag, WhoRan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flowforge.middleware
from flowforge import (
    ActivationInfo,
    DefinitionTypeError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    SerializationError,
    current_activation,
)
from flowforge.errors import MissingExtraError
from flowforge.middleware import log_calls, opentelemetry_spans
from flowforge.runtime.dask import DaskExecutor
from flowforge.runtime.remote import ShippingError
from flowforge.testing import Collect, Double, Sleep, Source

Proceed = Callable[[], Any]


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    ms.CALLS.clear()
    yield
    ms.CALLS.clear()


def pipeline(executor: str = "sequential", **options: Any) -> Flow:
    """``src -> double -> sink``: the source emits each of ``values``."""
    flow = Flow(executor=executor, **options)
    flow.add_routine(Source(), "src")
    flow.add_routine(Double(), "double")
    flow.add_routine(Collect(), "sink")
    flow.connect("src", "out", "double", "in")
    flow.connect("double", "out", "sink", "in")
    return flow


def run(flow: Flow, values: list[Any] | None = None) -> JobState:
    return flow.execute("src", {"values": [1] if values is None else values})


def sink_items(flow: Flow) -> list[Any]:
    sink = flow.get_routine("sink")
    assert isinstance(sink, Collect)
    return sorted(item["value"] for item in sink.items)


def handler_calls(job: JobState, routine_id: str) -> int:
    return int(job.tracker.get_routine_performance(routine_id)["total_executions"])


# -- the protocol, on the sequential and thread executors -----------------------------


def test_flow_middleware_wraps_every_call_of_every_routine(executor: str) -> None:
    """A flow's middleware sees each handler call of each routine, with its slot."""
    flow = pipeline(executor)
    flow.use(ms.record)
    job = run(flow, [1, 2])
    assert job.status is JobStatus.COMPLETED
    assert sorted(ms.CALLS) == sorted(
        [("record", "src", "in", 0)]
        + [("record", rid, "in", 0) for rid in ("double", "sink") for _ in range(2)]
    )


def test_routine_middleware_wraps_only_that_routine(executor: str) -> None:
    """Routine.use wraps the calls of that routine and no other."""
    flow = pipeline(executor)
    flow.get_routine("double").use(ms.record)  # type: ignore[union-attr]
    run(flow, [1, 2, 3])
    assert [c[1] for c in ms.CALLS] == ["double"] * 3


def test_call_describes_the_activation(executor: str) -> None:
    """``call`` carries job, routine, slot, activation id, attempt and the call's data."""
    seen: list[ActivationInfo] = []

    def look(call: ActivationInfo, proceed: Proceed) -> Any:
        seen.append(call)
        return proceed()

    flow = pipeline(executor)
    flow.get_routine("double").use(look)  # type: ignore[union-attr]
    job = run(flow, [7])
    (call,) = seen
    assert (call.job_id, call.routine_id, call.slot, call.attempt) == (
        job.job_id,
        "double",
        "in",
        0,
    )
    assert call.activation_id.startswith(f"{job.job_id}:")
    assert dict(call.data) == {"value": 7}


def test_call_data_is_read_only(executor: str) -> None:
    """Writing to ``call.data`` raises, and the call fails like a handler error."""

    def write(call: ActivationInfo, proceed: Proceed) -> Any:
        assert isinstance(call.data, MappingProxyType)
        call.data["value"] = 0  # type: ignore[index]
        return proceed()

    flow = pipeline(executor)
    flow.get_routine("double").use(write)  # type: ignore[union-attr]
    job = run(flow)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_type == "TypeError"
    assert sink_items(flow) == []


def test_proceed_returns_what_the_handler_returned(executor: str) -> None:
    """``proceed()`` runs the handler once and returns its return value."""
    returned: list[Any] = []

    def keep(call: ActivationInfo, proceed: Proceed) -> Any:
        returned.append(proceed())
        return returned[-1]

    flow = Flow(executor=executor)
    flow.add_routine(Answer(), "answer")
    flow.get_routine("answer").use(keep)  # type: ignore[union-attr]
    job = flow.execute("answer", {"value": 4})
    assert job.status is JobStatus.COMPLETED
    assert returned == [40]


def test_order_flow_outside_routine_first_added_outermost(executor: str) -> None:
    """Flow middleware runs outside routine middleware; the first added is outermost."""
    order: list[str] = []

    def layer(name: str) -> Callable[[ActivationInfo, Proceed], Any]:
        def mw(call: ActivationInfo, proceed: Proceed) -> Any:
            order.append(f"{name}>")
            try:
                return proceed()
            finally:
                order.append(f"<{name}")

        return mw

    flow = Flow(executor=executor)
    flow.add_routine(Answer(), "answer")
    routine = flow.get_routine("answer")
    assert routine is not None
    routine.use(layer("r1"))
    flow.use(layer("f1"))
    routine.use(layer("r2"))
    flow.use(layer("f2"))
    flow.execute("answer", {"value": 1})
    assert order == ["f1>", "f2>", "r1>", "r2>", "<r2", "<r1", "<f2", "<f1"]


def test_not_calling_proceed_skips_the_handler(executor: str) -> None:
    """A middleware that does not proceed skips the handler; the call succeeds, emitting nothing."""
    flow = pipeline(executor)
    flow.get_routine("double").use(ms.skip)  # type: ignore[union-attr]
    job = run(flow, [1, 2])
    assert job.status is JobStatus.COMPLETED
    assert job.errors == []
    assert sink_items(flow) == []
    assert job.runs["double"].stats == {}


def test_raising_fails_the_call_under_stop(executor: str) -> None:
    """A middleware's exception fails the call like a handler's: STOP fails the job."""
    flow = pipeline(executor)
    flow.get_routine("double").use(ms.fail)  # type: ignore[union-attr]
    job = run(flow)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert (job.error.routine_id, job.error.error_type) == ("double", "ConnectionError")
    assert "middleware refused double.in" in job.error.message


def test_raising_under_continue_skips_that_call_only(executor: str) -> None:
    """Under CONTINUE a failing middleware fails its calls and the job goes on."""
    flow = pipeline(executor, error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.get_routine("double").use(ms.fail)  # type: ignore[union-attr]
    job = run(flow, [1, 2])
    assert job.status is JobStatus.COMPLETED
    assert [(e.routine_id, e.error_type) for e in job.errors] == [("double", "ConnectionError")] * 2
    assert sink_items(flow) == []


def test_raising_under_retry_runs_the_chain_again_per_attempt(executor: str) -> None:
    """Each retry runs the chain again, and the middleware sees the attempt number."""
    flow = pipeline(
        executor,
        error_handler=ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0.0),
    )
    flow.use(ms.record)
    flow.get_routine("double").use(ms.fail_first_attempt)  # type: ignore[union-attr]
    job = run(flow, [5])
    assert job.status is JobStatus.COMPLETED
    double = [c for c in ms.CALLS if c[1] == "double"]
    assert double == [
        ("record", "double", "in", 0),
        ("fail_first_attempt", "double", "in", 0),
        ("record", "double", "in", 1),
        ("fail_first_attempt", "double", "in", 1),
    ]
    assert sink_items(flow) == [10]


def test_raising_after_proceed_discards_the_handlers_emits(executor: str) -> None:
    """A middleware failing after the handler ran fails the call: its emits are dropped."""

    def fail_after(call: ActivationInfo, proceed: Proceed) -> Any:
        proceed()
        raise RuntimeError("after the handler")

    flow = pipeline(executor)
    flow.get_routine("double").use(fail_after)  # type: ignore[union-attr]
    job = run(flow)
    assert job.status is JobStatus.FAILED
    assert sink_items(flow) == []


def test_swallowed_handler_error_commits_no_emits(executor: str) -> None:
    """A middleware that swallows the handler's error succeeds, without the handler's emits."""

    def swallow(call: ActivationInfo, proceed: Proceed) -> Any:
        try:
            return proceed()
        except ValueError:
            return None

    flow = Flow(executor=executor)
    flow.add_routine(EmitThenFail(), "flaky")
    flow.add_routine(Collect(), "sink")
    flow.connect("flaky", "out", "sink", "in")
    flow.get_routine("flaky").use(swallow)  # type: ignore[union-attr]
    job = flow.execute("flaky", {"value": 1})
    assert job.status is JobStatus.COMPLETED
    assert job.errors == []
    assert sink_items(flow) == []


def test_proceed_twice_fails_the_call(executor: str) -> None:
    """Calling ``proceed()`` twice raises MiddlewareError; the handler ran once."""

    def twice(call: ActivationInfo, proceed: Proceed) -> Any:
        proceed()
        return proceed()

    flow = pipeline(executor)
    flow.get_routine("double").use(twice)  # type: ignore[union-attr]
    job = run(flow)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_type == "MiddlewareError"
    assert "proceed() twice" in job.error.message
    assert handler_calls(job, "double") == 1


def test_middleware_wraps_async_handlers(executor: str) -> None:
    """An ``async def`` handler runs inside the chain: proceed returns after it finished."""
    flow = Flow(executor=executor)
    flow.add_routine(AsyncDouble(), "double")
    flow.add_routine(Collect(), "sink")
    flow.connect("double", "out", "sink", "in")
    seen: list[int] = []

    def count(call: ActivationInfo, proceed: Proceed) -> Any:
        result = proceed()
        seen.append(len(flow.get_routine("sink").items))  # type: ignore[union-attr]
        return result

    flow.get_routine("double").use(count)  # type: ignore[union-attr]
    job = flow.execute("double", {"value": 3})
    assert job.status is JobStatus.COMPLETED
    assert sink_items(flow) == [6]
    assert seen == [0]


def test_middleware_sees_a_handler_timeout_as_such(executor: str) -> None:
    """A handler past its timeout raises HandlerTimeoutError through the middleware."""
    seen: list[str] = []

    def watch(call: ActivationInfo, proceed: Proceed) -> Any:
        try:
            return proceed()
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise

    flow = Flow(executor=executor)
    flow.add_routine(Sleep(), "slow")
    slow = flow.get_routine("slow")
    assert slow is not None
    slow.set_config(seconds=0.5)
    slow.timeout = 0.05
    slow.use(watch)
    job = flow.execute("slow", {"value": 1})
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_type == "HandlerTimeoutError"
    assert seen == ["HandlerTimeoutError"]


def test_current_activation_names_the_slot_and_data(executor: str) -> None:
    """Inside a handler, current_activation() also gives the slot and the read-only data."""
    seen: list[ActivationInfo | None] = []

    def look(call: ActivationInfo, proceed: Proceed) -> Any:
        seen.append(current_activation())
        return proceed()

    flow = pipeline(executor)
    flow.get_routine("double").use(look)  # type: ignore[union-attr]
    run(flow, [3])
    (info,) = seen
    assert info is not None
    assert (info.routine_id, info.slot, dict(info.data)) == ("double", "in", {"value": 3})


# -- defining --------------------------------------------------------------------------


def test_use_returns_the_middleware_so_it_decorates() -> None:
    """``use`` returns its argument, so ``@flow.use`` keeps the function."""
    flow = Flow()

    @flow.use
    def mw(call: ActivationInfo, proceed: Proceed) -> Any:
        return proceed()

    assert callable(mw)
    assert flow.middleware == (mw,)


def test_use_refuses_what_is_not_callable() -> None:
    """A non-callable middleware is refused when added, naming what was given."""
    with pytest.raises(DefinitionTypeError, match=r"Flow\.use\(\) takes a middleware"):
        Flow().use("flowforge.middleware:log_calls")  # type: ignore[arg-type]
    with pytest.raises(DefinitionTypeError, match=r"Routine\.use\(\)"):
        Double().use(42)  # type: ignore[arg-type]


def test_middleware_added_after_a_job_applies_to_the_next() -> None:
    """Adding middleware changes the flow's plan: the next job runs it."""
    flow = pipeline()
    run(flow)
    flow.get_routine("double").use(ms.record)  # type: ignore[union-attr]
    run(flow)
    assert [c[1] for c in ms.CALLS] == ["double"]


def test_a_flow_without_middleware_has_no_chains() -> None:
    """Routines without middleware get no chain: their calls take the plain path."""
    flow = pipeline()
    assert flow._plan().chains == {}
    flow.get_routine("sink").use(ms.record)  # type: ignore[union-attr]
    assert set(flow._plan().chains) == {"sink"}


# -- saving --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_middleware_is_saved_and_loaded_with_the_flow(tmp_path: Path, suffix: str) -> None:
    """Flow and routine middleware survive a flow file, in order, and run after loading."""
    flow = pipeline()
    flow.use(ms.record)
    flow.use(log_calls("flowforge.test", logging.DEBUG))
    flow.get_routine("double").use(Tag("inner"))  # type: ignore[union-attr]
    path = tmp_path / f"flow{suffix}"
    flow.save(path)
    loaded = Flow.load(path)
    assert loaded.middleware[0] is ms.record
    logger = loaded.middleware[1]
    assert isinstance(logger, flowforge.middleware.LogCalls)
    assert (logger.logger.name, logger.level) == ("flowforge.test", logging.DEBUG)
    (tag,) = loaded.get_routine("double").middleware  # type: ignore[union-attr]
    assert isinstance(tag, Tag) and tag.name == "inner"
    run(loaded, [1])
    assert [c[0] for c in ms.CALLS if c[1] == "double"] == ["record", "inner"]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_tasks_own_middleware_is_saved_and_runs_after_loading(
    tmp_path: Path, suffix: str
) -> None:
    """Middleware added to a task with use() survives the tasks: section of a flow file."""
    import task_catalogue as tc

    flow = Flow(flow_id="tasks-mw")
    flow.task(tc.numbers)
    flow.task(tc.double, depends_on=["numbers"]).use(Tag("on-double"))
    path = tmp_path / f"flow{suffix}"
    flow.save(path)
    assert flow.serialize()["tasks"]["double"]["middleware"] == [
        {"class": "middleware_support:Tag", "config": {"name": "on-double"}}
    ]
    assert "middleware" not in flow.serialize()["tasks"]["numbers"]
    loaded = Flow.load(path)
    (tag,) = loaded.get_routine("double").middleware  # type: ignore[union-attr]
    assert isinstance(tag, Tag) and tag.name == "on-double"
    job = loaded.execute(entry_params={"n": 3})
    assert job.output("double") == [0, 2, 4]
    assert [c[:2] for c in ms.CALLS if c[0] == "on-double"] == [("on-double", "double")]


def test_flow_file_names_middleware_by_import_path() -> None:
    """Functions are saved as 'module:name', instances as class and config."""
    flow = pipeline()
    flow.use(ms.record)
    flow.get_routine("sink").use(log_calls())  # type: ignore[union-attr]
    data = flow.serialize()
    assert data["middleware"] == ["middleware_support:record"]
    assert data["routines"]["sink"]["middleware"] == [
        {
            "class": "flowforge.middleware:LogCalls",
            "config": {"logger": "flowforge.calls", "level": 20},
        }
    ]
    assert "middleware" not in data["routines"]["src"]


def test_saving_a_lambda_raises_naming_where() -> None:
    """A lambda has no import path: saving says which middleware and where."""
    flow = pipeline()
    flow.get_routine("double").use(lambda call, proceed: proceed())  # type: ignore[union-attr]
    with pytest.raises(SerializationError, match="no import path") as caught:
        flow.serialize()
    assert caught.value.problems[0].where == "flow.routines.double.middleware[0]"


def test_saving_a_closure_raises() -> None:
    """A closure cannot be imported back either."""

    def inner(call: ActivationInfo, proceed: Proceed) -> Any:
        return proceed()

    flow = pipeline()
    flow.use(inner)
    with pytest.raises(SerializationError, match=r"flow\.middleware\[0\]"):
        flow.serialize()


def test_loading_refuses_modules_not_allowed() -> None:
    """Middleware from a module not imported and not allowed is refused, with its place."""
    data = pipeline().serialize()
    data["middleware"] = ["not_allowed_pkg_xyz.mw:timed", "middleware_support:record"]
    with pytest.raises(SerializationError) as caught:
        Flow.from_dict(data)
    assert [p.where for p in caught.value.problems] == ["flow.middleware[0]"]
    assert "does not exist" in caught.value.problems[0].message


def test_loading_refuses_a_middleware_section_that_is_not_a_list() -> None:
    """A ``middleware`` that is not a list is one problem, at its place."""
    data = pipeline().serialize()
    data["middleware"] = "middleware_support:record"
    data["routines"]["double"]["middleware"] = {"class": "middleware_support:Tag"}
    with pytest.raises(SerializationError, match="expected a list of middleware") as caught:
        Flow.from_dict(data)
    assert [p.where for p in caught.value.problems] == [
        "flow.middleware",
        "flow.routines.double.middleware",
    ]


def test_loading_refuses_the_standard_library() -> None:
    """Functions of the standard library, imported or not, are not middleware."""
    data = pipeline().serialize()
    data["routines"]["double"]["middleware"] = ["json:dumps", "code:interact"]
    with pytest.raises(SerializationError, match="standard library") as caught:
        Flow.from_dict(data)
    assert [p.where for p in caught.value.problems] == [
        "flow.routines.double.middleware[0]",
        "flow.routines.double.middleware[1]",
    ]


def test_loading_refuses_classes_and_builtins_as_middleware() -> None:
    """Only functions, or classes made for it (with config), are built from a file."""
    data = pipeline().serialize()
    data["middleware"] = [
        "middleware_support:Plain",
        "middleware_support:os.getpid",
        {"class": "middleware_support:Plain", "config": {}},
        {"class": "middleware_support:Tag", "config": {"name": "ok"}},
    ]
    with pytest.raises(SerializationError) as caught:
        Flow.from_dict(data)
    assert [p.where for p in caught.value.problems] == [
        "flow.middleware[0]",
        "flow.middleware[1]",
        "flow.middleware[2].class",
    ]


# -- shipping to worker processes -----------------------------------------------------


@pytest.fixture(scope="module")
def process_flow_executor() -> Iterator[Any]:
    """One pool of two worker processes for this module."""
    flow = Flow(executor="process", max_workers=2)
    yield flow.executor
    flow.close()


def who_ran(executor: Any) -> Flow:
    flow = Flow(executor=executor)
    flow.add_routine(WhoRan(), "who")
    return flow


def emitted(job: JobState) -> dict[str, Any]:
    (record,) = job.get_execution_history("who")
    return dict(record.data)


def test_unpicklable_middleware_fails_before_the_job_starts(process_flow_executor: Any) -> None:
    """On the process executor a lambda middleware raises ShippingError naming it; no job runs."""
    flow = who_ran(process_flow_executor)
    flow.get_routine("who").use(lambda call, proceed: proceed())  # type: ignore[union-attr]
    job = JobState()
    with pytest.raises(ShippingError, match=r"Middleware .*<lambda>.* of routine 'who'") as caught:
        flow.execute("who", {}, job_state=job)
    assert caught.value.routine_id == "who"
    assert caught.value.what.startswith("middleware ")
    assert job.status is JobStatus.PENDING


def test_middleware_runs_in_the_worker_with_its_handler(process_flow_executor: Any) -> None:
    """On the process executor middleware runs in the handler's worker, per attempt."""
    flow = who_ran(process_flow_executor)
    flow.error_handler = ErrorHandler(ErrorStrategy.RETRY, max_retries=1, retry_delay=0.0)
    flow.use(ms.mark_process)
    flow.use(ms.fail_first_attempt)
    job = flow.execute("who", {})
    assert job.status is JobStatus.COMPLETED
    item = emitted(job)
    pid, routine_id, attempt = item["mark"].split(":")
    assert int(pid) == item["pid"] != os.getpid()
    assert (routine_id, attempt) == ("who", "1")
    assert ms.CALLS == []  # nothing ran in this process


def test_middleware_runs_on_a_dask_cluster() -> None:
    """On a local Dask cluster, middleware runs in the worker next to its handler."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
        warnings.filterwarnings("ignore", r"unclosed <socket", ResourceWarning)
        executor = DaskExecutor(max_workers=1)
        executor.client().wait_for_workers(1, timeout=30)
    try:
        flow = who_ran(executor)
        flow.use(ms.mark_process)
        job = flow.execute("who", {})
        assert job.status is JobStatus.COMPLETED
        item = emitted(job)
        pid, routine_id, attempt = item["mark"].split(":")
        assert int(pid) == item["pid"] != os.getpid()
        assert (routine_id, attempt) == ("who", "0")
    finally:
        executor.close()


# -- log_calls -----------------------------------------------------------------------


def test_log_calls_writes_one_record_per_call(caplog: pytest.LogCaptureFixture) -> None:
    """One record per handler call, to 'flowforge.calls' at INFO, formatted lazily."""
    flow = pipeline()
    flow.use(log_calls())
    with caplog.at_level(logging.INFO, logger="flowforge.calls"):
        job = run(flow, [1, 2])
    records = [r for r in caplog.records if r.name == "flowforge.calls"]
    assert len(records) == 5
    assert {r.levelno for r in records} == {logging.INFO}
    assert all(isinstance(r.args, tuple) and r.args for r in records)
    first = records[0].getMessage()
    assert first.startswith(f"src.in {job.job_id}:") and " attempt 0: ok in " in first


def test_log_calls_logs_failures_and_takes_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    """A failed call is logged as failed, to the Logger given, at the level given."""
    logger = logging.getLogger("flowforge.test.calls")
    flow = pipeline()
    flow.get_routine("double").use(log_calls(logger, logging.WARNING))  # type: ignore[union-attr]
    flow.get_routine("double").use(ms.fail)  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="flowforge.test.calls"):
        run(flow)
    (record,) = [r for r in caplog.records if r.name == "flowforge.test.calls"]
    assert record.levelno == logging.WARNING
    assert "failed (ConnectionError: middleware refused double.in)" in record.getMessage()


def test_log_calls_below_the_level_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """When the level is disabled, no record is made."""
    flow = pipeline()
    flow.use(log_calls(level=logging.DEBUG))
    with caplog.at_level(logging.INFO, logger="flowforge.calls"):
        job = run(flow)
    assert job.status is JobStatus.COMPLETED
    assert [r for r in caplog.records if r.name == "flowforge.calls"] == []


def test_log_calls_pickles_by_logger_name() -> None:
    """log_calls pickles (for workers) as its logger's name and level."""
    again = pickle.loads(pickle.dumps(log_calls("a.b", logging.ERROR)))
    assert (again.logger.name, again.level) == ("a.b", logging.ERROR)


def test_log_calls_refuses_a_bad_logger() -> None:
    """A logger that is neither a Logger nor a name is refused."""
    with pytest.raises(TypeError, match=r"logging\.Logger or a logger name"):
        log_calls(42)  # type: ignore[arg-type]


# -- opentelemetry_spans ---------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    """A tracer whose finished spans land in an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def test_opentelemetry_spans_one_span_per_call(
    executor: str, spans: tuple[Any, InMemorySpanExporter]
) -> None:
    """Each call makes a span named routine_id.slot with the flowforge attributes."""
    tracer, exporter = spans
    flow = pipeline(executor)
    flow.use(opentelemetry_spans(tracer))
    job = run(flow, [1])
    finished = exporter.get_finished_spans()
    assert sorted(s.name for s in finished) == ["double.in", "sink.in", "src.in"]
    double = next(s for s in finished if s.name == "double.in")
    assert dict(double.attributes or {}) == {
        "flowforge.job_id": job.job_id,
        "flowforge.routine_id": "double",
        "flowforge.slot": "in",
        "flowforge.attempt": 0,
        "flowforge.outcome": "ok",
    }


def test_opentelemetry_spans_mark_failures_and_skips(
    spans: tuple[Any, InMemorySpanExporter],
) -> None:
    """A failed attempt's span says 'error' and records the exception; the retry's says 'ok'."""
    tracer, exporter = spans
    flow = pipeline(error_handler=ErrorHandler(ErrorStrategy.RETRY, max_retries=1, retry_delay=0))
    flow.use(opentelemetry_spans(tracer))
    flow.get_routine("double").use(ms.fail_first_attempt)  # type: ignore[union-attr]
    run(flow)
    by_name: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    outcomes = [
        (s.attributes["flowforge.attempt"], s.attributes["flowforge.outcome"])
        for s in by_name["double.in"]
    ]  # type: ignore[index]
    assert outcomes == [(0, "error"), (1, "ok")]
    failed = by_name["double.in"][0]
    assert not failed.status.is_ok
    assert [e.name for e in failed.events] == ["exception"]
    assert by_name["sink.in"][0].status.is_ok


def test_opentelemetry_spans_saved_and_pickled_by_tracer_name() -> None:
    """A named tracer is saved and pickled by name; a tracer object cannot be saved."""
    named = opentelemetry_spans("myapp")
    assert named.config == {"tracer": "myapp"}
    assert pickle.loads(pickle.dumps(named)).config == {"tracer": "myapp"}
    flow = pipeline()
    flow.use(opentelemetry_spans(TracerProvider().get_tracer("x")))
    with pytest.raises(SerializationError, match=r"flow\.middleware\[0\]"):
        flow.serialize()


def test_opentelemetry_spans_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry installed, using it raises MissingExtraError naming 'otel'."""
    monkeypatch.setattr(flowforge.middleware, "_trace", None)
    with pytest.raises(MissingExtraError, match=r'pip install "flowforge\[otel\]"') as caught:
        opentelemetry_spans()
    assert caught.value.extra == "otel"


def test_the_module_imports_without_opentelemetry() -> None:
    """flowforge.middleware imports without otel; log_calls works, spans name the extra."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import flowforge.middleware as m\n"
        "m.log_calls()\n"
        "try:\n"
        "    m.opentelemetry_spans()\n"
        "except m.MissingExtraError as exc:\n"
        "    print('missing', exc.extra)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "missing otel"), done.stderr
