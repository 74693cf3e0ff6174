"""Small routines for tests, examples and experiments.

They are real routines (importable, so saved flows that use them load
anywhere) with predictable behaviour: counting, failing on cue, collecting
what they receive. :class:`StoreConformance` is the test suite every store
backend passes (it needs pytest, so it is imported only when asked for).
"""

from __future__ import annotations

import builtins
import threading
import time
from typing import TYPE_CHECKING, Any

from .errors import DefinitionError
from .routine import Routine

if TYPE_CHECKING:
    from ._store_conformance import StoreConformance as StoreConformance


class Source(Routine):
    """Emits ``out(value=...)`` once per value in ``values`` when called."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.start)
        self.define_event("out", ["value"])

    def start(self, values: list[Any] | None = None) -> None:
        """Emit each value (default: the ``values`` config, else ``[1]``)."""
        for value in values if values is not None else self.get_config("values", [1]):
            self.emit("out", value=value)


class Double(Routine):
    """Emits ``out(value=2 * value)``; counts calls in ``self._stats['calls']``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.double)
        self.define_event("out", ["value"])

    def double(self, value: Any) -> None:
        """Double and pass on."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", value=value * 2)


class Relay(Routine):
    """Passes on whatever it receives as ``out(**data)``; counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.relay)
        self.define_event("out")

    def relay(self, **data: Any) -> None:
        """Pass the data on."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", **data)


class Collect(Routine):
    """Keeps every delivery in ``self.items`` (shared across jobs; for tests)."""

    def __init__(self, merge_strategy: Any = "override") -> None:
        super().__init__()
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.define_slot("in", handler=self.collect, merge_strategy=merge_strategy)

    def collect(self, **data: Any) -> None:
        """Record the data."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        with self._lock:
            self.items.append(data)


class Join(Routine):
    """A join slot ``in``; emits ``out(**combined)`` once all sources delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.joined, merge_strategy="join")
        self.define_event("out")

    def joined(self, **data: Any) -> None:
        """Pass the combined data on."""
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", **data)


class Flaky(Routine):
    """Fails its first ``fail_times`` calls (config, default 1; -1: always), then relays.

    Config:
        fail_times: How many calls fail.
        error: Name of the builtin exception class raised (default ``ValueError``).

    Any other ``error`` (a builtin that is not an exception class, such as
    ``exit``, or an unknown name) is never called: the failing call raises
    :class:`~flowforge.errors.DefinitionError` instead.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Calls that failed so far (on the instance: a failed call's stats are discarded).
        self.failures = 0
        self.define_slot("in", handler=self.maybe_fail)
        self.define_event("out")

    def maybe_fail(self, **data: Any) -> None:
        """Fail on cue, else pass the data on."""
        fail_times = self.get_config("fail_times", 1)
        if fail_times < 0 or self.failures < fail_times:
            self.failures += 1
            raise _builtin_exception(self.get_config("error", "ValueError"))(
                f"flaky failure #{self.failures}"
            )
        self._stats["calls"] = self._stats.get("calls", 0) + 1
        self.emit("out", **data)


def _builtin_exception(name: Any) -> type[BaseException]:
    found = getattr(builtins, name, None) if isinstance(name, str) else None
    if not (isinstance(found, type) and issubclass(found, Exception)):
        raise DefinitionError(
            f"Flaky config 'error' must name a builtin exception class such as 'ValueError' "
            f"or 'KeyError', got {name!r}."
        )
    return found


class Sleep(Routine):
    """Sleeps ``seconds`` (config, default 0.01), then relays.

    ``active`` and ``peak`` count calls in progress (now, and at most).
    """

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        self.define_slot("in", handler=self.sleep)
        self.define_event("out")

    def sleep(self, **data: Any) -> None:
        """Sleep, noting how many calls overlap, then pass the data on."""
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.get_config("seconds", 0.01))
        finally:
            with self._lock:
                self.active -= 1
        self.emit("out", **data)


def __getattr__(name: str) -> Any:
    if name == "StoreConformance":
        # It needs pytest, which using these routines does not.
        from ._store_conformance import StoreConformance

        return StoreConformance
    raise AttributeError(f"module 'flowforge.testing' has no attribute {name!r}")
