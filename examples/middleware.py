"""Middleware: code that wraps every handler call of a flow or of one routine.

The flow is ``prices -> convert``: ``prices`` emits each price it is given,
``convert`` turns it into euros, and fails its first attempt at each call
(a rate service that is busy at first) so the error handler's retries show.
``trace`` wraps every call of the flow and prints it; ``skip_free`` wraps
``convert`` only and skips prices of zero.

Run it with ``python examples/middleware.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowforge import (
    ActivationInfo,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    Routine,
    current_activation,
)
from flowforge.middleware import log_calls


class Prices(Routine):
    """Entry: emits ``price(value)`` for each value it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.start)
        self.define_event("price", ["value"])

    def start(self, values: list[float]) -> None:
        for value in values:
            self.emit("price", value=value)


class Convert(Routine):
    """Emits ``euros(value)``; the first attempt of each call fails."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.convert)
        self.define_event("euros", ["value"])

    def convert(self, value: float) -> float:
        info = current_activation()
        if info is not None and info.attempt == 0:
            raise ConnectionError("rate service busy")
        euros = round(value * 0.9, 2)
        self.emit("euros", value=euros)
        return euros


# [writing]
def trace(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Print each call, what it got and how it ended."""
    where = f"{call.routine_id}.{call.slot} attempt {call.attempt}"
    print(f"  > {where} {dict(call.data)}")
    try:
        result = proceed()
    except Exception as exc:
        print(f"  < {where} failed: {exc}")
        raise
    print(f"  < {where} returned {result!r}")
    return result


def skip_free(call: ActivationInfo, proceed: Callable[[], Any]) -> Any:
    """Do not call the handler for a price of zero: the call succeeds, emitting nothing."""
    if call.data.get("value") == 0:
        return None
    return proceed()


# [/writing]


def build(executor: str = "sequential") -> Flow:
    flow = Flow(flow_id="prices", executor=executor)
    flow.add_routine(Prices(), "prices")
    flow.add_routine(Convert(), "convert")
    flow.connect("prices", "price", "convert", "input")
    flow.get_routine("convert").set_error_handler(  # type: ignore[union-attr]
        ErrorHandler(ErrorStrategy.RETRY, max_retries=1, retry_delay=0.0)
    )
    return flow


def main() -> None:
    # [using]
    flow = build()
    flow.use(trace)  # every call of every routine
    flow.get_routine("convert").use(skip_free)  # type: ignore[union-attr]
    job = flow.execute("prices", {"values": [10.0, 0]})
    print(f"status: {job.status}")
    # [/using]

    # [saving]
    print(f"saved: {flow.serialize()['middleware']}")
    print(f"convert: {flow.serialize()['routines']['convert']['middleware']}")
    # [/saving]

    # [process]
    with build("process") as remote:
        remote.use(log_calls())  # runs in the worker, next to the handler
        job = remote.execute("prices", {"values": [20.0]})
        euros = [r.data["value"] for r in job.get_execution_history("convert")]
        print(f"process: {job.status}, converted {euros}")
    # [/process]


if __name__ == "__main__":
    main()
