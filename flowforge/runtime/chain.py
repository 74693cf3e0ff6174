"""Running middleware: one :class:`Chain` per routine of a flow that has any.

A flow's plan composes each routine's chain once -- the flow's middleware
outside the routine's, first added outermost -- so a message pays only for
calling it, and a routine without middleware has no chain at all (its calls
take the plain path of :func:`~flowforge.runtime.activation.invoke`).

The chain runs inside each attempt of a call, in the thread (or worker
process) that runs the handler: retries run it again, with ``call.attempt``
counting. Whatever a middleware raises fails the attempt like a handler
error; a middleware that returns without calling ``proceed`` skips the
handler and the attempt succeeds with no emits. A chain pickles as its
middleware and is composed again where it is unpickled (once per job in a
worker, with the routine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._activation import ActivationInfo
from .._middleware import Middleware, describe
from ..errors import MiddlewareError

Step = Callable[[ActivationInfo, Callable[[], Any]], Any]


def _handler(call: ActivationInfo, handler: Callable[[], Any]) -> Any:
    return handler()


class _Layer:
    """One middleware and everything inside it."""

    __slots__ = ("inner", "mw")

    def __init__(self, mw: Middleware, inner: Step) -> None:
        self.mw = mw
        self.inner = inner

    def __call__(self, call: ActivationInfo, handler: Callable[[], Any]) -> Any:
        inner = self.inner
        called = False

        def proceed() -> Any:
            nonlocal called
            if called:
                raise MiddlewareError(
                    f"Middleware {describe(self.mw)} called proceed() twice in one call of "
                    f"routine '{call.routine_id}'; the handler runs once per attempt. To run "
                    "it again, raise and let the routine's error handler retry.",
                    routine_id=call.routine_id,
                    middleware=describe(self.mw),
                )
            called = True
            return inner(call, handler)

        return self.mw(call, proceed)


class Chain:
    """A routine's middleware, outermost first, composed into one callable.

    Attributes:
        layers: The middleware, outermost first.
    """

    __slots__ = ("_run", "layers")

    def __init__(self, layers: tuple[Middleware, ...]) -> None:
        self.layers = layers
        run: Step = _handler
        for mw in reversed(layers):
            run = _Layer(mw, run)
        self._run = run

    def __call__(self, call: ActivationInfo, handler: Callable[[], Any]) -> Any:
        """Run the middleware around ``handler()`` for ``call``; returns what it returned."""
        return self._run(call, handler)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Chain, (self.layers,))

    def __repr__(self) -> str:
        return f"Chain({', '.join(describe(mw) for mw in self.layers)})"
