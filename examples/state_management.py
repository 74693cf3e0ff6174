"""Pause a job from a handler, save it, load it, resume it; save a flow as JSON and YAML.

The flow is ``source -> meter -> ledger``. ``meter`` pauses the job each time
``batch`` more orders have passed it. Each time the job pauses, its
:class:`~flowforge.JobState` is written to a JSON file; then, as a later
run of the script would, the flow is loaded from its saved file, the
JobState from its JSON, and the job resumed. Nothing is lost and nothing
runs twice. The routine classes are saved as ``__main__:ClassName``, so only
this script can load the flow file again; applications keep routines in a
module.

Run it with ``python examples/state_management.py``. Files go to a
temporary directory that is removed at the end.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from flowforge import Flow, JobState, JobStatus, Routine

ORDERS = [
    {"order_id": "A-1", "amount": 20},
    {"order_id": "A-2", "amount": 35},
    {"order_id": "A-3", "amount": 5},
    {"order_id": "A-4", "amount": 40},
    {"order_id": "A-5", "amount": 15},
    {"order_id": "A-6", "amount": 10},
    {"order_id": "A-7", "amount": 25},
]


# [routines]
class ReadOrders(Routine):
    """Entry: emits ``order(order_id, amount)`` for each order."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("start", handler=self.read)
        self.define_event("order", ["order_id", "amount"])

    def read(self, orders: list[dict[str, Any]]) -> None:
        for order in orders:
            self.emit("order", **order)


class Meter(Routine):
    """Passes orders on and pauses the job after every ``batch`` of them (config)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.meter)
        self.define_event("order", ["order_id", "amount"])

    def meter(self, order_id: str, amount: int) -> None:
        self._stats["passed"] = self._stats.get("passed", 0) + 1
        self.emit("order", order_id=order_id, amount=amount)
        if self._stats["passed"] % self.get_config("batch", 3) == 0:
            self.pause_job(f"{self._stats['passed']} orders metered")


class Ledger(Routine):
    """Adds the amounts up in the job's counters."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.book)

    def book(self, order_id: str, amount: int) -> None:
        self._stats["orders"] = self._stats.get("orders", 0) + 1
        self._stats["total"] = self._stats.get("total", 0) + amount


# [/routines]


def build_flow() -> Flow:
    """The flow ``source -> meter -> ledger``."""
    flow = Flow(flow_id="ledger")
    flow.add_routine(ReadOrders(), "source")
    flow.add_routine(Meter(), "meter")
    flow.add_routine(Ledger(), "ledger")
    flow.connect("source", "order", "meter", "input")
    flow.connect("meter", "order", "ledger", "input")
    flow.get_routine("meter").set_config(batch=3)
    return flow


def run(workdir: Path) -> None:
    flow_file, job_file = workdir / "ledger.json", workdir / "job.json"
    # [run]
    flow = build_flow()
    flow.save(flow_file)
    job = flow.execute("source", {"orders": ORDERS})

    while job.status == JobStatus.PAUSED:
        print(f"{job.status} ({job.reason}): {len(job.pending)} message(s) pending")
        job_file.write_text(json.dumps(job.serialize()))
        # From here on only the two files are used, as a later run of this script would.
        flow = Flow.load(flow_file)
        job = flow.resume(JobState.from_dict(json.loads(job_file.read_text())))

    ledger = job.get_routine_state("ledger")
    print(f"{job.status}: {ledger['activations']} orders booked, stats {ledger['stats']}")
    # [/run]
    assert ledger["stats"] == {"orders": len(ORDERS), "total": sum(o["amount"] for o in ORDERS)}


def yaml_round_trip(workdir: Path) -> None:
    # [yaml]
    path = workdir / "ledger.yaml"
    build_flow().save(path)
    print(path.read_text(), end="")
    loaded = Flow.load(path)
    print("loaded from YAML:", list(loaded.routines), loaded.get_routine("meter").config)
    # [/yaml]
    assert loaded.serialize() == build_flow().serialize()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        run(Path(directory))
        yaml_round_trip(Path(directory))


if __name__ == "__main__":
    main()
