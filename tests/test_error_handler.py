"""ErrorHandler settings and what each strategy does to a job."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import calls, chain, no_retry_delay

from flowforge import DefinitionError, ErrorHandler, ErrorStrategy, Flow, JobStatus, signals
from flowforge.testing import Collect, Flaky, Source


def flaky_flow(
    handler: ErrorHandler, fail_times: int, error: str = "ValueError"
) -> tuple[Flow, Flaky, Collect]:
    """``src -> flaky -> sink`` with ``handler`` on the flaky routine."""
    flow = Flow()
    flaky = Flaky()
    flaky.set_config(fail_times=fail_times, error=error)
    flaky.set_error_handler(handler)
    sink = Collect()
    chain(flow, ("src", Source()), ("flaky", flaky), ("sink", sink))
    return flow, flaky, sink


def run(flow: Flow, values: list[Any]) -> Any:
    """Execute ``flow`` from ``src`` with ``values``."""
    return flow.execute("src", {"values": values})


# -- settings --------------------------------------------------------------------------


def test_defaults_match_the_contract() -> None:
    """ErrorHandler() is STOP, 3 retries, 1 s delay, backoff 2, any Exception."""
    handler = ErrorHandler()
    assert handler.strategy is ErrorStrategy.STOP
    assert (handler.max_retries, handler.retry_delay, handler.retry_backoff) == (3, 1.0, 2.0)
    assert handler.retryable_exceptions == (Exception,)


def test_strategy_values_are_the_documented_strings() -> None:
    """ErrorStrategy values are stop, continue, retry, skip."""
    assert [s.value for s in ErrorStrategy] == ["stop", "continue", "retry", "skip"]
    assert ErrorStrategy.RETRY == "retry"


def test_strategy_given_as_a_string_is_converted() -> None:
    """ErrorHandler('continue') stores ErrorStrategy.CONTINUE."""
    assert ErrorHandler("continue").strategy is ErrorStrategy.CONTINUE  # type: ignore[arg-type]


def test_unknown_strategy_is_refused() -> None:
    """An unknown strategy string raises ValueError."""
    with pytest.raises(ValueError, match="explode"):
        ErrorHandler("explode")  # type: ignore[arg-type]


def test_delay_follows_the_backoff_formula() -> None:
    """delay(n) is retry_delay * retry_backoff ** (n - 1)."""
    handler = ErrorHandler(ErrorStrategy.RETRY, retry_delay=0.5, retry_backoff=3.0)
    assert [handler.delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.5]


@pytest.mark.parametrize("field", ["max_retries", "retry_delay", "retry_backoff"])
def test_negative_settings_are_refused(field: str) -> None:
    """Negative retry settings raise ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        ErrorHandler(**{field: -1})


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"max_retries": 1.5}, TypeError, "max_retries must be an int >= 0, got float 1.5"),
        ({"max_retries": True}, TypeError, "max_retries must be an int"),
        ({"retry_delay": float("nan")}, ValueError, "retry_delay must be a finite number"),
        ({"retry_delay": float("inf")}, ValueError, "retry_delay must be a finite number"),
        ({"retry_backoff": float("nan")}, ValueError, "retry_backoff must be a finite number"),
        ({"retry_delay": "1"}, TypeError, "retry_delay must be a finite number"),
        ({"retry_backoff": 1e300}, ValueError, "more than the 604800 s"),
        ({"retry_delay": 1e7, "max_retries": 1}, ValueError, "more than the 604800 s"),
    ],
)
def test_settings_that_would_break_a_retry_are_refused(
    settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Non-integer retries, non-finite numbers and waits that overflow are refused at once."""
    with pytest.raises(error, match=match) as info:
        ErrorHandler(ErrorStrategy.RETRY, **settings)
    assert isinstance(info.value, DefinitionError)


def test_every_delay_of_an_accepted_handler_is_a_finite_number() -> None:
    """The longest wait allowed is computed without overflow."""
    handler = ErrorHandler(ErrorStrategy.RETRY, max_retries=10, retry_delay=60, retry_backoff=2)
    assert handler.delay(10) == 60 * 2**9


def test_no_retries_allows_any_finite_delay() -> None:
    """With max_retries=0 no wait ever happens, so a large delay is fine."""
    assert ErrorHandler(max_retries=0, retry_delay=1e300).max_retries == 0


def test_retryable_exceptions_must_be_exception_classes() -> None:
    """retryable_exceptions with a non-exception raises TypeError with an example."""
    with pytest.raises(TypeError, match="exception classes"):
        ErrorHandler(retryable_exceptions=("ValueError",))  # type: ignore[arg-type]


def test_a_single_exception_class_is_accepted() -> None:
    """retryable_exceptions=ValueError is taken as (ValueError,)."""
    handler = ErrorHandler(retryable_exceptions=ValueError)  # type: ignore[arg-type]
    assert handler.retryable_exceptions == (ValueError,)


def test_should_retry_respects_strategy_budget_and_types() -> None:
    """should_retry is true only for RETRY, within budget, for retryable types."""
    handler = ErrorHandler(
        ErrorStrategy.RETRY, max_retries=2, retryable_exceptions=(ConnectionError,)
    )
    assert handler.should_retry(ConnectionError(), 0)
    assert handler.should_retry(ConnectionError(), 1)
    assert not handler.should_retry(ConnectionError(), 2)
    assert not handler.should_retry(ValueError(), 0)
    assert not ErrorHandler(ErrorStrategy.CONTINUE).should_retry(ConnectionError(), 0)


def test_handler_is_immutable_and_reset_is_harmless() -> None:
    """An ErrorHandler holds no per-call state: it is frozen, and reset() changes nothing."""
    handler = ErrorHandler(ErrorStrategy.RETRY)
    with pytest.raises(AttributeError):
        handler.max_retries = 5  # type: ignore[misc]
    handler.reset()
    assert handler == ErrorHandler(ErrorStrategy.RETRY)


# -- strategies in a job -----------------------------------------------------------------


def test_stop_fails_the_job_and_keeps_the_failed_message_first() -> None:
    """STOP: the job ends failed; the failed message is first in pending."""
    flow, _, sink = flaky_flow(ErrorHandler(ErrorStrategy.STOP), -1)
    job = run(flow, [1, 2])
    assert job.status is JobStatus.FAILED
    assert job.pending[0].routine_id == "flaky"
    assert job.pending[0].data == {"value": 1}
    assert job.error is not None and job.error.strategy == "stop"
    assert sink.items == []
    assert job.get_routine_state("flaky")["status"] == "failed"  # type: ignore[index]


def test_stop_takes_no_new_work() -> None:
    """STOP: after the failure no further message is handled."""
    flow, _, _ = flaky_flow(ErrorHandler(ErrorStrategy.STOP), -1)
    job = run(flow, [1, 2, 3])
    assert calls(job, "flaky") == 1
    assert len(job.pending) == 3


def test_continue_records_the_error_and_goes_on() -> None:
    """CONTINUE: the error is recorded, the message consumed, the job completes."""
    flow, _, sink = flaky_flow(ErrorHandler(ErrorStrategy.CONTINUE), 1)
    job = run(flow, [1, 2])
    assert job.status is JobStatus.COMPLETED
    assert sink.items == [{"value": 2}]
    assert [(e.routine_id, e.strategy) for e in job.errors] == [("flaky", "continue")]
    assert job.get_routine_state("flaky")["continued"] == 1  # type: ignore[index]
    assert job.error is None


def test_skip_marks_the_work_skipped_and_goes_on() -> None:
    """SKIP: the failed work is recorded as skipped, the job completes."""
    flow, _, sink = flaky_flow(ErrorHandler(ErrorStrategy.SKIP), 1)
    job = run(flow, [1, 2])
    assert job.status is JobStatus.COMPLETED
    assert sink.items == [{"value": 2}]
    assert [(s.routine_id, s.slot) for s in job.skipped] == [("flaky", "in")]
    assert job.get_routine_state("flaky")["skipped"] == 1  # type: ignore[index]


def test_retry_runs_the_call_again_until_it_succeeds() -> None:
    """RETRY: a call failing twice succeeds on the third try; nothing is duplicated."""
    flow, flaky, sink = flaky_flow(no_retry_delay(ErrorStrategy.RETRY, max_retries=3), 2)
    job = run(flow, [1])
    assert job.status is JobStatus.COMPLETED
    assert sink.items == [{"value": 1}]
    assert flaky.failures == 2
    assert job.errors == []


def test_retry_exhausted_is_handled_as_stop() -> None:
    """RETRY: out of tries, the job fails with the attempts counted."""
    flow, flaky, _ = flaky_flow(no_retry_delay(ErrorStrategy.RETRY, max_retries=2), -1)
    job = run(flow, [1])
    assert job.status is JobStatus.FAILED
    assert flaky.failures == 3
    assert job.error is not None
    assert (job.error.strategy, job.error.attempts) == ("stop", 3)


def test_retry_does_not_retry_other_exceptions() -> None:
    """RETRY: an exception outside retryable_exceptions is handled as STOP at once."""
    handler = no_retry_delay(ErrorStrategy.RETRY, retryable_exceptions=(ConnectionError,))
    flow, flaky, _ = flaky_flow(handler, -1, error="KeyError")
    job = run(flow, [1])
    assert job.status is JobStatus.FAILED
    assert flaky.failures == 1
    assert job.error is not None and job.error.error_type == "KeyError"


def test_retry_waits_by_the_backoff_formula() -> None:
    """RETRY: the retry_scheduled signal carries delay * backoff ** (n - 1)."""
    handler = ErrorHandler(ErrorStrategy.RETRY, max_retries=3, retry_delay=0.001, retry_backoff=2.0)
    flow, _, _ = flaky_flow(handler, 3)
    seen: list[tuple[int, float]] = []

    def on_retry(sender: Flow, **kw: Any) -> None:
        seen.append((kw["attempt"], kw["delay"]))

    signals.retry_scheduled.connect(on_retry, sender=flow)
    try:
        job = run(flow, [1])
    finally:
        signals.retry_scheduled.disconnect(on_retry, sender=flow)
    assert job.status == "completed"
    assert seen == [(1, 0.001), (2, 0.002), (3, 0.004)]


def test_one_handler_serves_many_routines_with_a_budget_per_call(executor: str) -> None:
    """The retry budget belongs to each failing call, not to the shared handler."""
    shared = no_retry_delay(ErrorStrategy.RETRY, max_retries=1)
    flow = Flow(executor=executor)
    flow.add_routine(Source(), "src")
    sink = Collect()
    flow.add_routine(sink, "sink")
    for name in ("a", "b", "c"):
        flaky = Flaky()
        flaky.set_error_handler(shared)
        flow.add_routine(flaky, name)
        flow.connect("src", "out", name, "in")
        flow.connect(name, "out", "sink", "in")
    job = flow.execute("src", {"values": [1, 2]})
    assert job.status == "completed"
    assert len(sink.items) == 6


def test_failed_attempts_emit_nothing_and_count_nothing() -> None:
    """Across retries, only the successful attempt's emits and counters take effect."""
    attempts = threading.local()

    class EmitThenMaybeFail(Flaky):
        def maybe_fail(self, **data: Any) -> None:
            self._stats["tries"] = self._stats.get("tries", 0) + 1
            self.emit("out", **data)
            attempts.n = getattr(attempts, "n", 0) + 1
            if attempts.n < 3:
                raise ConnectionError("again")

    flow = Flow()
    routine = EmitThenMaybeFail()
    routine.set_error_handler(no_retry_delay(ErrorStrategy.RETRY, max_retries=5))
    sink = Collect()
    chain(flow, ("r", routine), ("sink", sink))
    job = flow.execute("r", {"x": 1})
    assert job.status == "completed"
    assert sink.items == [{"x": 1}]
    assert routine.stats() == {"tries": 1}
