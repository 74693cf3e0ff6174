"""Routines for the process and Dask executor tests.

Worker processes import routines by module name, so these live in a module of
their own (pytest puts ``tests/`` on ``sys.path``, and worker processes
inherit it) rather than in a test module. None of them keeps a lock or
other unpicklable state; each counts its work in ``self._stats``, which the
coordinator merges back as numeric deltas, and hands results on by emitting,
so the job's history shows them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from flowforge import Routine, current_activation


class Tail(Routine):
    """The end of a flow: counts calls and re-emits what it got as ``out`` (kept in history)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.take)
        self.define_event("out")

    def take(self, **data: Any) -> None:
        """Count the delivery and emit it unchanged."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", **data)


class Countdown(Routine):
    """A guarded loop: ``in(n)`` emits ``again(n - 1)`` while ``n > 0``, then ``done(n=0)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.step)
        self.define_event("again", ["n"])
        self.define_event("done", ["n"])

    def step(self, n: int) -> None:
        """Count down one step."""
        self._stats["steps"] = self._stats.get("steps", 0) + 1
        if n > 0:
            self.emit("again", n=n - 1)
        else:
            self.emit("done", n=0)


class FailOn(Routine):
    """Relays ``value`` but raises ``ValueError`` when it is in config ``bad`` (default [])."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.check)
        self.define_event("out", ["value"])

    def check(self, value: Any) -> None:
        """Fail on a bad value, else count and pass it on."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        if value in self.get_config("bad", []):
            raise ValueError(f"bad value {value!r}")
        self.emit("out", value=value)


class FirstAttemptFails(Routine):
    """Each call's first ``fail_attempts`` attempts (config, default 1) raise, then it relays.

    Unlike :class:`flowforge.testing.Flaky` it keeps no count on the instance,
    so it behaves the same whichever worker process (with its own copy of
    the routine) runs the call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Fail while the attempt number is below ``fail_attempts``, else relay."""
        info = current_activation()
        attempt = 0 if info is None else info.attempt
        if attempt < self.get_config("fail_attempts", 1):
            raise ConnectionError(f"attempt {attempt} failed")
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", value=value)


class Span(Routine):
    """Reports when it ran, and where; the first calls can be made to meet.

    Config: ``seconds`` (default 0.2) to hold after starting; ``meet_dir``
    and ``parties``: each call drops a file in ``meet_dir``, and the first
    ``parties`` calls wait (up to 30 s) until that many files are there, so
    they are provably in their handlers at once, whatever the machine's load.
    ``out`` carries ``value``, ``start`` and ``end`` (wall-clock seconds) and
    ``pid`` (the worker process).
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.run)
        self.define_event("out", ["value", "start", "end", "pid"])

    def run(self, value: Any) -> None:
        """Meet the other first calls, hold, then report the call's time span."""
        start = time.time()
        meet_dir = self.get_config("meet_dir", None)
        if meet_dir is not None:
            _meet(Path(meet_dir), value, self.get_config("parties", 1))
        time.sleep(self.get_config("seconds", 0.2))
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", value=value, start=start, end=time.time(), pid=os.getpid())


def _meet(meet_dir: Path, value: Any, parties: int) -> None:
    (meet_dir / f"{os.getpid()}-{value}").touch()
    deadline = time.monotonic() + 30
    while len(list(meet_dir.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.005)


class DieOnce(Routine):
    """Kills its own worker process at the first call that finds no marker file.

    Config ``marker`` is the marker file's path; the call that creates it
    dies, every other call counts and relays ``value``. Only for process
    executors: on the job's own process this would kill the test run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.maybe_die)
        self.define_event("out", ["value"])

    def maybe_die(self, value: Any) -> None:
        """Die the first time, relay afterwards."""
        marker = Path(self.get_config("marker"))
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            self._stats["calls"] = self._stats.get("calls", 0) + 1
            self.emit("out", value=value)
            return
        os.kill(os.getpid(), signal.SIGKILL)


class Spin(Routine):
    """Busy-loops in pure Python when ``value`` is ``"spin"``, else emits ``out(value, pid)``.

    Config:
        pid_file: Where the spinning call writes its process id.
        spin_seconds: How long the loop runs unless interrupted (default 60).
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.run)
        self.define_event("out", ["value", "pid"])

    def run(self, value: Any) -> None:
        """Spin on cue, else report the worker's pid."""
        if value == "spin":
            Path(self.get_config("pid_file")).write_text(str(os.getpid()))
            deadline = time.monotonic() + self.get_config("spin_seconds", 60)
            while time.monotonic() < deadline:
                pass
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", value=value, pid=os.getpid())


class Locked(Routine):
    """Keeps a lock as an attribute, so it cannot be sent to a worker process."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.define_slot("in", handler=self.relay)
        self.define_event("out", ["value"])

    def relay(self, value: Any) -> None:
        """Pass the value on under the lock."""
        with self.lock:
            self.emit("out", value=value)


class EmitsLock(Routine):
    """Emits ``out(value, guard=<a new lock>)``: a payload no worker can send back."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.send)
        self.define_event("out", ["value", "guard"])

    def send(self, value: Any) -> None:
        """Emit the value with an unpicklable companion."""
        self.emit("out", value=value, guard=threading.Lock())


class AsyncTriple(Routine):
    """An ``async def`` handler: yields to its event loop once, then emits ``3 * value``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.triple)
        self.define_event("out", ["value"])

    async def triple(self, value: Any) -> None:
        """Await once, count, and pass the tripled value on."""
        await asyncio.sleep(0)
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", value=3 * value)


class PairError(Exception):
    """An exception whose ``__init__`` takes two arguments, so plain pickling cannot rebuild it."""

    def __init__(self, left: Any, right: Any) -> None:
        super().__init__(f"{left}/{right}")
        self.right = right


class RaisesPair(Routine):
    """Raises :class:`PairError` for ``value`` in config ``bad`` (default [1]), else relays."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.check)
        self.define_event("out", ["value"])

    def check(self, value: Any) -> None:
        """Fail with a two-argument exception on cue, else pass the value on."""
        if value in self.get_config("bad", [1]):
            raise PairError(value, "pair")
        self.emit("out", value=value)


class EmitsUndeclared(Routine):
    """Emits an event it never declared, so each call fails with ``EmitError``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.send)
        self.define_event("out", ["value"])

    def send(self, value: Any) -> None:
        """Emit to the undeclared event ``outt``."""
        self.emit("outt", value=value)
