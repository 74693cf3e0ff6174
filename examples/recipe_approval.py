"""Recipe: a human in the loop. The job pauses until someone approves.

Expense claims go through ``approve``: small ones are approved at once;
a large one needs a person's decision. Without a decision, ``approve`` parks
the claim (it sends it back to itself, so it waits in the job as a message)
and pauses the job. The paused job is saved as JSON, and the process can
exit.

Later, when the decision is made, a new run loads the flow and the job from
their files, gives ``approve`` the decisions through its configuration, and
resumes the job. The claim runs through ``approve`` again and is paid or
refused::

    claims -> approve --approved--> pay
              ^   |  \\-rejected--> refuse
              +---+ waiting (no decision yet: pause)

Run it with ``python examples/recipe_approval.py``.
``docs/cookbook/approval.rst`` explains it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from flowforge import Flow, JobState, JobStatus, Routine

CLAIMS = [
    {"claim": "C-1", "amount": 40},
    {"claim": "C-2", "amount": 1200},
    {"claim": "C-3", "amount": 75},
    {"claim": "C-4", "amount": 5000},
    {"claim": "C-5", "amount": 20},
]


# [routines]
class Claims(Routine):
    """Entry: emits ``claim(claim, amount)`` for each claim."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.start)
        self.define_event("claim", ["claim", "amount"])

    def start(self, claims: list[dict[str, object]]) -> None:
        for claim in claims:
            self.emit("claim", **claim)


class Approve(Routine):
    """Approves claims up to ``auto_limit``; larger ones wait for a person's decision.

    Config:
        auto_limit: The largest amount approved without asking (default 100).
        decisions: ``{claim: "approve" | "reject"}``, the decisions made so far.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.review)
        self.define_event("approved", ["claim", "amount"])
        self.define_event("rejected", ["claim", "amount"])
        self.define_event("waiting", ["claim", "amount"])

    def review(self, claim: str, amount: int) -> None:
        decision = self.get_config("decisions", {}).get(claim)
        if amount <= self.get_config("auto_limit", 100) or decision == "approve":
            self.emit("approved", claim=claim, amount=amount)
        elif decision == "reject":
            self.emit("rejected", claim=claim, amount=amount)
        else:
            self.emit("waiting", claim=claim, amount=amount)  # comes back here on resume
            self.pause_job(f"claim {claim} ({amount}) awaits a decision")


class Book(Routine):
    """Counts claims and adds up their amounts."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.book)

    def book(self, claim: str, amount: int) -> None:
        self._stats["claims"] = self._stats.get("claims", 0) + 1
        self._stats["amount"] = self._stats.get("amount", 0) + amount


# [/routines]


# [build]
def build_flow() -> Flow:
    flow = Flow(flow_id="expenses")
    flow.add_routine(Claims(), "claims")
    flow.add_routine(Approve(), "approve")
    flow.add_routine(Book(), "pay")
    flow.add_routine(Book(), "refuse")
    flow.connect("claims", "claim", "approve", "input")
    flow.connect("approve", "approved", "pay", "input")
    flow.connect("approve", "rejected", "refuse", "input")
    flow.connect("approve", "waiting", "approve", "input")  # a parked claim waits here
    return flow


# [/build]


# [start]
def start(flow_file: Path, job_file: Path) -> None:
    """Save the flow, run a job until it needs a decision, save the job."""
    flow = build_flow()
    flow.save(flow_file)
    job = flow.execute("claims", {"claims": CLAIMS})
    job_file.write_text(json.dumps(job.serialize()))
    print(f"{job.status}: {job.reason}")


# [/start]


# [decide]
def decide(flow_file: Path, job_file: Path, decisions: dict[str, str]) -> JobState:
    """Later, in any process: load the flow and the job, give the decisions, resume."""
    flow = Flow.load(flow_file)
    flow.get_routine("approve").set_config(decisions=decisions)
    job = flow.resume(JobState.from_dict(json.loads(job_file.read_text())))
    job_file.write_text(json.dumps(job.serialize()))
    print(f"decisions {decisions} -> {job.status}" + (f": {job.reason}" if job.reason else ""))
    return job


# [/decide]


def main(workdir: Path) -> None:
    flow_file, job_file = workdir / "expenses.json", workdir / "job.json"
    # [run]
    start(flow_file, job_file)
    # ... the process may exit here; the decisions come in later ...
    decisions = {"C-2": "approve"}
    job = decide(flow_file, job_file, decisions)
    decisions["C-4"] = "reject"
    job = decide(flow_file, job_file, decisions)
    assert job.status == JobStatus.COMPLETED
    print("paid:", job.get_routine_state("pay")["stats"])
    print("refused:", job.get_routine_state("refuse")["stats"])
    # [/run]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        main(Path(directory))
