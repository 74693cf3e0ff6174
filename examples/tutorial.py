"""The tutorial's flow, built step by step: sensor readings in, counts and alerts out.

``docs/tutorial.rst`` walks through this file in the order it is written,
between the ``# [...]`` markers. Run it with ``python examples/tutorial.py``;
each step prints what the tutorial shows.

The flow::

    split -> parse -> tally
                   -> threshold

``split`` cuts a text into lines, ``parse`` turns each line into a reading,
``tally`` counts readings per sensor and ``threshold`` reports readings over
a limit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from flowforge import (
    Connection,
    EmitError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    Routine,
    UnknownNameError,
)
from flowforge.testing import Collect

# [data]
READINGS = """\
kitchen 21.5
attic 31.5
garage 4.0
kitchen 22.0
attic 33.0
garage 3.5
"""
# [/data]


# [split]
class Split(Routine):
    """Entry: emits ``line(text)`` for each non-blank line of a text."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.split)
        self.define_event("line", ["text"])

    def split(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.emit("line", text=line)


# [/split]


# [parse]
class Parse(Routine):
    """Turns ``"kitchen 21.5"`` into ``reading(sensor="kitchen", celsius=21.5)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.parse)
        self.define_event("reading", ["sensor", "celsius"])

    def parse(self, text: str) -> None:
        sensor, value = text.split()
        self.emit("reading", sensor=sensor, celsius=float(value))


# [/parse]


# [tally]
class Tally(Routine):
    """Counts readings per sensor in ``self._stats``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.count)

    def count(self, sensor: str) -> None:
        self._stats[sensor] = self._stats.get(sensor, 0) + 1


# [/tally]


# [threshold]
class Threshold(Routine):
    """Emits ``over(name, value)`` for each value above the ``limit`` config.

    With the ``pause`` config set, it also pauses the job at each one, so that
    someone can look before the job goes on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.check)
        self.define_event("over", ["name", "value"])

    def check(self, name: str, value: float) -> None:
        limit = self.get_config("limit", 30.0)
        if value > limit:
            self.emit("over", name=name, value=value)
            if self.get_config("pause", False):
                self.pause_job(f"{name} at {value} is over {limit}")


# [/threshold]


# [build]
def build_flow() -> Flow:
    """The tutorial's flow: four routines, three connections."""
    flow = Flow(flow_id="sensors")
    flow.add_routine(Split(), "split")
    flow.add_routine(Parse(), "parse")
    flow.add_routine(Tally(), "tally")
    flow.add_routine(Threshold(), "threshold")
    flow.connect("split", "line", "parse", "input")
    flow.connect("parse", "reading", "tally", "input")
    rename = {"sensor": "name", "celsius": "value"}
    flow.connect("parse", "reading", "threshold", "input", param_mapping=rename)
    return flow


# [/build]

# [try-parse]
parse = Parse()
received = Collect()
Connection(parse.get_event("reading"), received.get_slot("in"))
parse.get_slot("input").receive({"text": "kitchen 21.5"})
print("parse emitted:", received.items)
# [/try-parse]

# [mistakes]
flow = build_flow()
try:
    flow.connect("parse", "readings", "tally", "input")
except UnknownNameError as error:
    print(error)
try:
    parse.emit("reading", sensor="attic", temperature=31.5)
except EmitError as error:
    print(error)
# [/mistakes]

# [validate]
for problem in flow.validate("split"):
    print(f"{problem.severity}: {problem.where}: {problem.message}")
# [/validate]

# [run]
job = flow.execute("split", {"text": READINGS})
print("status:", job.status)
# [/run]

# [job-state]
for routine_id in flow.routines:
    state = job.get_routine_state(routine_id)
    print(f"{routine_id}: {state['status']}, {state['activations']} call(s), {state['stats']}")
for record in job.get_execution_history("threshold"):
    print(f"{record.routine_id} emitted {record.event_name}: {record.data}")
print("tally.stats():", flow.get_routine("tally").stats())
# [/job-state]

# [tracker]
tracker = job.tracker
parse_performance = tracker.get_routine_performance("parse")
print(
    f"parse: {parse_performance['total_executions']} call(s), "
    f"success rate {parse_performance['success_rate']:.0%}"
)
print(f"deliveries recorded: {len(tracker.get_event_flow())}")
first = tracker.get_event_flow()[0]
print(f"first delivery: {first.source}.{first.event} -> {first.target}.{first.slot}")
# [/tracker]

# [error-stop]
flow = build_flow()
bad_input = READINGS + "cellar ??\nkitchen 23.0\n"
job = flow.execute("split", {"text": bad_input})
print("status:", job.status)
print("reason:", job.reason)
print("error:", job.error.routine_id, job.error.error_type, job.error.message)
print("left in job.pending:", len(job.pending), "message(s)")
# [/error-stop]

# [error-continue]
flow.get_routine("parse").set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
job = flow.resume(job)
print("status:", job.status)
print("parse continued after", job.get_routine_state("parse")["continued"], "failure(s)")
for error in job.errors:
    print(f"recorded: {error.routine_id}.{error.slot} {error.error_type} ({error.strategy})")
print("tally:", job.get_routine_state("tally")["stats"])
# [/error-continue]

with tempfile.TemporaryDirectory() as workdir:
    flow_file = Path(workdir, "sensors.json")
    job_file = Path(workdir, "job.json")
    # [save-pause]
    flow = build_flow()
    flow.get_routine("threshold").set_config(limit=30.0, pause=True)
    flow.save(flow_file)
    job = flow.execute("split", {"text": READINGS})
    print(f"{job.status}: {job.reason}; {len(job.pending)} message(s) pending")
    job_file.write_text(json.dumps(job.serialize()))
    # [/save-pause]

    # [resume]
    while True:
        # A later run, maybe another process: everything comes from the two files.
        flow = Flow.load(flow_file)
        job = JobState.from_dict(json.loads(job_file.read_text()))
        job = flow.resume(job)
        if job.status != JobStatus.PAUSED:
            break
        print(f"{job.status} again: {job.reason}; {len(job.pending)} message(s) pending")
        job_file.write_text(json.dumps(job.serialize()))
    print("status:", job.status)
    print("tally:", job.get_routine_state("tally")["stats"])
    print("over the limit:", [r.data["name"] for r in job.get_execution_history("threshold")])
    # [/resume]
