"""Shared fixtures and small test-only routines.

The routines here complement :mod:`flowforge.testing` with behaviour the
engine tests need: loops, blocking on cue, pausing from a handler, async
handlers and recording call order. They are importable as ``conftest:Name``,
so in-process save/load round trips can rebuild them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Iterator
from typing import Any

import pg_server
import pytest

from flowforge import ErrorHandler, Flow, JobState, Routine
from flowforge.testing import Collect, Double, Relay, Source

# The conformance suite is imported lazily, after this, so its asserts get rewritten.
pytest.register_assert_rewrite("flowforge._store_conformance")

EXECUTORS = ("sequential", "thread")


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per executor kind."""
    return str(request.param)


class Countdown(Routine):
    """A guarded loop: ``in(n)`` emits ``again(n - 1)`` while ``n > 0``, then ``done(n=0)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.step)
        self.define_event("again", ["n"])
        self.define_event("done", ["n"])

    def step(self, n: int) -> None:
        """Count down one step."""
        if n > 0:
            self.emit("again", n=n - 1)
        else:
            self.emit("done", n=0)


class Forever(Routine):
    """A runaway loop: always emits ``again(n + 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.step)
        self.define_event("again", ["n"])

    def step(self, n: int) -> None:
        """Never stop."""
        self.emit("again", n=n + 1)


class Gate(Routine):
    """Blocks each call until ``release`` is set; ``entered`` is set when a call starts."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.define_slot("in", handler=self.wait)
        self.define_event("out", ["value"])

    def wait(self, value: Any) -> None:
        """Emit, then wait for the test to release the call."""
        self.emit("out", value=value)
        self.entered.set()
        self.release.wait(10)


class AsyncGate(Routine):
    """An ``async def`` handler that emits, then sleeps ``seconds`` (config, default 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.wait)
        self.define_event("out", ["value"])

    async def wait(self, value: Any) -> None:
        """Emit, then await a long sleep."""
        self.emit("out", value=value)
        await asyncio.sleep(self.get_config("seconds", 10))


class AsyncDouble(Routine):
    """``async def`` version of :class:`flowforge.testing.Double`."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.double)
        self.define_event("out", ["value"])

    async def double(self, value: Any) -> None:
        """Yield to the loop once, then double and pass on."""
        await asyncio.sleep(0)
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", value=value * 2)


class Pauser(Routine):
    """Relays ``value``; pauses its flow's job when ``value`` equals config ``at``."""

    def __init__(self) -> None:
        super().__init__()
        self.flow: Flow | None = None
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Pause on cue, then pass the value on."""
        if self.flow is not None and value == self.get_config("at"):
            self.flow.pause(reason="pause requested by a handler")
        self.emit("out", value=value)


class Tagger(Routine):
    """Appends ``(routine_id, value)`` to the shared ``log`` list, then relays ``value``."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, Any]] = []
        self.define_slot("in", handler=self.tag)
        self.define_event("out", ["value"])

    def tag(self, value: Any) -> None:
        """Note the call and pass the value on."""
        self.log.append((self.routine_label(), value))
        self.emit("out", value=value)


class AppendCollect(Collect):
    """A :class:`~flowforge.testing.Collect` whose slot appends (rebuildable with no arguments)."""

    def __init__(self) -> None:
        super().__init__(merge_strategy="append")


class Rendezvous(Routine):
    """Each call waits at a barrier of config ``parties``; proves that many calls overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None
        self.define_slot("in", handler=self.meet)
        self.define_event("out", ["value"])

    def meet(self, value: Any) -> None:
        """Wait until ``parties`` calls are running together."""
        if self.barrier is None:
            raise RuntimeError("set routine.barrier before running")
        self.barrier.wait(10)
        self.emit("out", value=value)


def chain(flow: Flow, *routines: tuple[str, Routine]) -> None:
    """Add ``routines`` to ``flow`` and connect each ``out`` to the next ``in``."""
    for rid, routine in routines:
        flow.add_routine(routine, rid)
    for (source, _), (target, _) in itertools.pairwise(routines):
        flow.connect(source, "out", target, "in")


def linear_flow(flow: Flow) -> Collect:
    """``src -> double -> relay -> sink`` in ``flow``; returns the sink."""
    sink = Collect()
    chain(flow, ("src", Source()), ("double", Double()), ("relay", Relay()), ("sink", sink))
    return sink


def calls(job: JobState, routine_id: str) -> int:
    """How many handler calls (attempts included) ``routine_id`` made in ``job``."""
    return int(job.tracker.get_routine_performance(routine_id)["total_executions"])


def no_retry_delay(strategy: Any, **options: Any) -> ErrorHandler:
    """An ErrorHandler with ``strategy`` that never sleeps between retries."""
    options.setdefault("retry_delay", 0.0)
    return ErrorHandler(strategy, **options)


@pytest.fixture
def released_gates() -> Iterator[list[Gate]]:
    """Gates registered here are released when the test ends, so no thread lingers."""
    gates: list[Gate] = []
    yield gates
    for gate in gates:
        gate.release.set()


def pytest_configure(config: pytest.Config) -> None:
    """Keep warnings-as-errors, but not for a third-party deprecation hypothesis trips over.

    When a hypothesis test fails, its report touches ``mypy_extensions.TypedDict``,
    which warns; as an error that would turn a clear test failure into a crash of
    pytest itself.
    """
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg_server.PgServer]:
    """A throwaway PostgreSQL cluster for the session (``tests/pg_server.py``).

    Skipped only where PostgreSQL is not installed, and never in CI, which
    installs it.
    """
    try:
        server = pg_server.start()
    except pg_server.NoPostgres as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()
