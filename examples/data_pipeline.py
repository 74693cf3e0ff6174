"""A multi-stage data pipeline, run sequentially and then on a thread pool.

The stages::

    source -> parse -> validate -> transform -> aggregate
                 \\          \\
                  +----------+--> rejects

``source`` emits one line of CSV text per record, ``parse`` turns it into a
record, ``validate`` checks it, ``transform`` converts amounts to cents
(pretending to call a slow currency service), and ``aggregate`` totals them
per customer. Lines that cannot be parsed and records that fail validation
go to ``rejects`` instead. ``aggregate`` and ``rejects`` use the ``"append"``
merge strategy: each call sees every value received so far in the job, so
their last call has the complete picture.

Run it with ``python examples/data_pipeline.py``.
"""

from __future__ import annotations

import time
from typing import Any

from flowforge import Flow, JobState, Routine

RATES = {"EUR": 1.0, "USD": 0.5, "GBP": 2.0}

LINES = [
    "alice,12.50,EUR",
    "bob,7.00,USD",
    "carol,oops,EUR",  # not a number: rejected by parse
    "alice,3.25,GBP",
    "dave,-4.00,EUR",  # negative: rejected by validate
    "bob,1.00,EUR",
    "erin,5.00,JPY",  # unknown currency: rejected by validate
    "carol,10.00,USD",
]


# [routines]
class ReadLines(Routine):
    """Entry: emits ``line(number, text)`` for each line it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.read)
        self.define_event("line", ["number", "text"])

    def read(self, lines: list[str]) -> None:
        for number, text in enumerate(lines, start=1):
            self.emit("line", number=number, text=text)


class ParseCsv(Routine):
    """Splits ``name,amount,currency``; what does not parse goes to ``rejected``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.parse)
        self.define_event("record", ["number", "name", "amount", "currency"])
        self.define_event("rejected", ["number", "reason"])

    def parse(self, number: int, text: str) -> None:
        fields = text.split(",")
        if len(fields) != 3:
            self.emit("rejected", number=number, reason=f"expected 3 fields, got {len(fields)}")
            return
        name, amount, currency = fields
        try:
            value = float(amount)
        except ValueError:
            self.emit("rejected", number=number, reason=f"amount {amount!r} is not a number")
            return
        self._stats["parsed"] = self._stats.get("parsed", 0) + 1
        self.emit("record", number=number, name=name, amount=value, currency=currency)


class Validate(Routine):
    """Passes good records on as ``valid``; sends the others to ``rejected``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.check)
        self.define_event("valid", ["number", "name", "amount", "currency"])
        self.define_event("rejected", ["number", "reason"])

    def check(self, **record: Any) -> None:
        if record["amount"] < 0:
            self.emit("rejected", number=record["number"], reason="negative amount")
        elif record["currency"] not in RATES:
            self.emit("rejected", number=record["number"], reason="unknown currency")
        else:
            self.emit("valid", **record)


class ToCents(Routine):
    """Converts the amount to euro cents, as if asking a slow rate service."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.convert)
        self.define_event("output", ["name", "cents"])

    def convert(self, name: str, amount: float, currency: str) -> None:
        time.sleep(self.get_config("latency", 0.0))
        self.emit("output", name=name, cents=round(amount * RATES[currency] * 100))


class TotalByName(Routine):
    """An "append" slot: ``name`` and ``cents`` arrive as lists of every value so far."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.total, merge_strategy="append")
        self.define_event("totals", ["totals", "records"])

    def total(self, name: list[str], cents: list[int]) -> None:
        totals: dict[str, int] = {}
        for who, amount in zip(name, cents, strict=True):
            totals[who] = totals.get(who, 0) + amount
        self.emit("totals", totals=dict(sorted(totals.items())), records=len(name))


class Rejects(Routine):
    """An "append" slot collecting every rejected line with its reason."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.collect, merge_strategy="append")
        self.define_event("report", ["rejected"])

    def collect(self, number: list[int], reason: list[str]) -> None:
        self.emit("report", rejected=dict(sorted(zip(number, reason, strict=True))))


# [/routines]


# [build]
def build_flow(**options: Any) -> Flow:
    """The pipeline; ``options`` go to :class:`Flow` (executor, max_workers, ...)."""
    flow = Flow(flow_id="orders", **options)
    flow.add_routine(ReadLines(), "source")
    flow.add_routine(ParseCsv(), "parse")
    flow.add_routine(Validate(), "validate")
    flow.add_routine(ToCents(), "transform")
    flow.add_routine(TotalByName(), "aggregate")
    flow.add_routine(Rejects(), "rejects")
    flow.connect("source", "line", "parse", "input")
    flow.connect("parse", "record", "validate", "input")
    flow.connect("validate", "valid", "transform", "input")
    flow.connect("transform", "output", "aggregate", "input")
    # Many-to-one: both rejected events feed the same slot.
    flow.connect("parse", "rejected", "rejects", "input")
    flow.connect("validate", "rejected", "rejects", "input")
    return flow


# [/build]


def last_emitted(job: JobState, routine_id: str) -> dict[str, Any]:
    """The data of the last event ``routine_id`` emitted in ``job``."""
    return job.get_execution_history(routine_id)[-1].data


def run(flow: Flow) -> tuple[Any, ...]:
    """Run one job over ``LINES``; returns what it produced, to compare runs."""
    job = flow.execute("source", {"lines": LINES})
    parsed = job.get_routine_state("parse")["stats"]["parsed"]
    totals, rejects = last_emitted(job, "aggregate"), last_emitted(job, "rejects")
    print(f"  status: {job.status}")
    print(f"  parsed: {parsed} record(s)")
    print(f"  totals: {totals['totals']} from {totals['records']} record(s)")
    print(f"  rejected: {rejects['rejected']}")
    return str(job.status), parsed, totals, rejects


def main() -> None:
    print("sequential executor:")
    sequential = run(build_flow())

    # [threads]
    flow = build_flow(executor="thread", max_workers=8)
    for stage in ("parse", "validate", "transform"):
        flow.get_routine(stage).max_concurrency = 4
    flow.get_routine("transform").set_config(latency=0.01)
    # [/threads]
    print("thread executor, up to 4 calls per stage at once:")
    threaded = run(flow)

    print("same results:", sequential == threaded)


if __name__ == "__main__":
    main()
