"""Error strategies: STOP, CONTINUE, SKIP and RETRY on one small flow.

The flow is ``numbers -> invert -> total``. ``invert`` computes ``1 / value``
and so fails on ``0``; each part below gives it another error handler and
prints what the job did. ``rates`` stands in for a service that is down for
its first two calls, to show RETRY.

Run it with ``python examples/error_handling.py``.
"""

from __future__ import annotations

from typing import Any

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    Routine,
    current_activation,
    signals,
)


# [routines]
class Numbers(Routine):
    """Entry: emits ``number(value)`` for each value it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.start)
        self.define_event("number", ["value"])

    def start(self, values: list[float]) -> None:
        for value in values:
            self.emit("number", value=value)


class Invert(Routine):
    """Emits ``1 / value``; raises ZeroDivisionError for 0 unless configured otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.invert)
        self.define_event("inverse", ["value"])

    def invert(self, value: float) -> None:
        if value == 0 and self.get_config("zero_gives") is not None:
            self.emit("inverse", value=self.get_config("zero_gives"))
            return
        self.emit("inverse", value=1 / value)


class Total(Routine):
    """Sums what it receives in the job's counters."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.add)

    def add(self, value: float) -> None:
        self._stats["total"] = self._stats.get("total", 0) + value


# [/routines]


def build_flow(invert_handler: ErrorHandler) -> Flow:
    """``numbers -> invert -> total``, with ``invert_handler`` on ``invert``."""
    flow = Flow(flow_id="inverses")
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Invert(), "invert")
    flow.add_routine(Total(), "total")
    flow.connect("numbers", "number", "invert", "input")
    flow.connect("invert", "inverse", "total", "input")
    flow.get_routine("invert").set_error_handler(invert_handler)
    return flow


def report(job: JobState) -> None:
    """Print the job's outcome."""
    total = job.get_routine_state("total")["stats"].get("total")
    print(f"  status: {job.status}, total: {total}")
    for error in job.errors:
        print(
            f"  error: {error.routine_id}.{error.slot} raised {error.error_type}: "
            f"{error.message} (handled by {error.strategy})"
        )
    for skipped in job.skipped:
        print(f"  skipped: {skipped.routine_id}.{skipped.slot}: {skipped.reason}")


def stop() -> None:
    # [stop]
    flow = build_flow(ErrorHandler(ErrorStrategy.STOP))
    job = flow.execute("numbers", {"values": [1, 0, 4]})
    report(job)
    print(f"  job.error: {job.error.error_type}; {len(job.pending)} message(s) kept in job.pending")
    # Fix the cause, then resume: the failed message runs again, nothing else is redone.
    flow.get_routine("invert").set_config(zero_gives=0.0)
    job = flow.resume(job)
    print(
        f"  after the fix and resume: {job.status}, "
        f"total: {job.get_routine_state('total')['stats']['total']}"
    )
    # [/stop]


def continue_() -> None:
    # [continue]
    job = build_flow(ErrorHandler(ErrorStrategy.CONTINUE)).execute("numbers", {"values": [1, 0, 4]})
    report(job)
    print(f"  invert continued after {job.get_routine_state('invert')['continued']} failure(s)")
    # [/continue]


def skip() -> None:
    # [skip]
    job = build_flow(ErrorHandler(ErrorStrategy.SKIP)).execute("numbers", {"values": [1, 0, 4]})
    report(job)
    print(f"  invert skipped {job.get_routine_state('invert')['skipped']} call(s)")
    # [/skip]


# [retry]
class Rates(Routine):
    """Looks a rate up; the "service" is down for the first two attempts of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.lookup)
        self.define_event("rate", ["currency", "rate"])

    def lookup(self, currency: str) -> None:
        activation = current_activation()
        if activation is not None and activation.attempt < 2:
            raise ConnectionError(f"rate service unavailable (attempt {activation.attempt})")
        self.emit("rate", currency=currency, rate=1.1)


def on_retry(flow: Flow, **info: Any) -> None:
    print(
        f"  retry #{info['attempt']} of {info['routine_id']} in {info['delay']:.2f} s "
        f"after {type(info['error']).__name__}"
    )


def retry(max_retries: int) -> JobState:
    flow = Flow(flow_id="rates")
    flow.add_routine(Rates(), "rates")
    flow.get_routine("rates").set_error_handler(
        ErrorHandler(
            ErrorStrategy.RETRY,
            max_retries=max_retries,
            retry_delay=0.01,
            retry_backoff=2.0,
            retryable_exceptions=(ConnectionError,),
        )
    )
    signals.retry_scheduled.connect(on_retry, sender=flow)
    job = flow.execute("rates", {"currency": "USD"})
    performance = job.tracker.get_routine_performance("rates")
    print(
        f"  status: {job.status}; {performance['total_executions']} call(s), "
        f"{performance['failure_count']} failed"
    )
    return job


# [/retry]


def main() -> None:
    print("STOP:")
    stop()
    print("CONTINUE:")
    continue_()
    print("SKIP:")
    skip()
    print("RETRY, enough retries:")
    retry(max_retries=3)
    print("RETRY, too few retries (handled as STOP):")
    job = retry(max_retries=1)
    error = job.errors[-1]
    print(f"  gave up after {error.attempts} attempts: {error.message} ({error.strategy})")


if __name__ == "__main__":
    main()
