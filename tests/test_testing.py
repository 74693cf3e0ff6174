"""The test routines of flowforge.testing: what a flow file can make them do."""

from __future__ import annotations

import pytest

from flowforge import ErrorHandler, ErrorStrategy, Flow
from flowforge.testing import Collect, Flaky


def flaky_flow(error: object) -> tuple[Flow, Collect]:
    """``flaky -> sink`` with Flaky failing once with ``error``, errors recorded (CONTINUE)."""
    flow = Flow(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flaky = Flaky()
    flaky.set_config(fail_times=1, error=error)
    flow.add_routine(flaky, "flaky")
    sink = Collect()
    flow.add_routine(sink, "sink")
    flow.connect("flaky", "out", "sink", "in")
    return flow, sink


def test_flaky_raises_the_named_builtin_exception() -> None:
    """config.error names the builtin exception class Flaky raises."""
    flow, _ = flaky_flow("KeyError")
    job = flow.execute("flaky", {"x": 1})
    assert [e.error_type for e in job.errors] == ["KeyError"]


@pytest.mark.parametrize("error", ["exit", "__import__", "SystemExit", "print", 3, "Nope"])
def test_flaky_never_calls_a_builtin_that_is_not_an_exception_class(error: object) -> None:
    """A name that is not a builtin Exception class is a recorded DefinitionError, never called."""
    flow, _ = flaky_flow(error)
    job = flow.execute("flaky", {"x": 1})
    assert [e.error_type for e in job.errors] == ["DefinitionError"]
    assert "must name a builtin exception class" in job.errors[0].message
