"""Running ``async def`` handlers from the scheduler's thread.

An :class:`AsyncRunner` uses the event loop it is given (an asyncio
application's, when the job was started with ``await flow.execute_async()``)
or starts its own loop in a daemon thread on first use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .._activation import CURRENT, ActivationContext


async def _guarded(
    coro: Any, ctx: ActivationContext, timeout: float | None, timeout_error: BaseException
) -> Any:
    CURRENT.set(ctx)
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await coro
    except TimeoutError:
        if not deadline.expired():
            raise
        ctx.emits = []
        raise timeout_error from None


def run_here(
    invoke: Callable[[Mapping[str, Any]], Any],
    data: Mapping[str, Any],
    ctx: ActivationContext,
    timeout: float | None,
    timeout_error: BaseException,
) -> Any:
    """Run an async handler on a fresh loop in this thread (remote workers)."""
    return asyncio.run(_guarded(invoke(data), ctx, timeout, timeout_error))


#: Guards starting and stopping a runner's own loop: rare, so one lock serves
#: every runner (a job makes a runner, and most never start a loop).
_STARTING = threading.Lock()


class AsyncRunner:
    """Run coroutines on one event loop, from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._own: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(
        self,
        invoke: Callable[[Mapping[str, Any]], Any],
        data: Mapping[str, Any],
        ctx: ActivationContext,
        timeout: float | None,
        timeout_error: BaseException,
    ) -> Any:
        """Call ``invoke(data)`` and wait for the coroutine it returns."""
        coro = _guarded(invoke(data), ctx, timeout, timeout_error)
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        own = self._own
        if own is not None:
            return own
        with _STARTING:
            if self._own is None:
                self._own = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._own.run_forever, name="flowforge-async", daemon=True
                )
                self._thread.start()
            return self._own

    def close(self) -> None:
        """Stop the runner's own loop, if it started one."""
        if self._own is None:  # most jobs run no async handler (and close once they end)
            return
        with _STARTING:
            loop, thread = self._own, self._thread
            self._own = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
