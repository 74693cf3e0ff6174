"""The founding example: two routines in a flow, one job, and what the job recorded.

Run it with ``python examples/basic_usage.py``. The docs' quickstart shows it
in parts, between the ``# [...]`` markers.
"""

# ruff: noqa: I001
# The first part is the founding example exactly as users copy it from the
# README, so formatting and import sorting are left as they are.
# fmt: off
# [founding]
from flowforge import Routine, Flow

class DataProcessor(Routine):
    def __init__(self):
        super().__init__()
        self.input_slot = self.define_slot("input", handler=self.process_data)
        self.output_event = self.define_event("output", ["result"])

    def process_data(self, data: str):
        result = f"Processed: {data}"
        self._stats["processed_count"] = self._stats.get("processed_count", 0) + 1
        self.emit("output", result=result)

flow = Flow(flow_id="my_flow")
processor1 = DataProcessor()
processor2 = DataProcessor()
id1 = flow.add_routine(processor1, "processor1")
id2 = flow.add_routine(processor2, "processor2")
flow.connect(id1, "output", id2, "input")

job_state = flow.execute(id1, entry_params={"data": "test"})
print(job_state.status)      # completed
print(processor1.stats())    # {'processed_count': 1}
# [/founding]
# fmt: on

# [job-state]
# What each routine did in this job: its status, how many calls succeeded,
# and the job's copy of its counters.
for routine_id in flow.routines:
    state = job_state.get_routine_state(routine_id)
    print(f"{routine_id}: {state['status']}, {state['activations']} call(s), {state['stats']}")

# Every event emitted in the job, oldest first.
for record in job_state.get_execution_history():
    print(f"{record.routine_id} emitted {record.event_name!r}: {record.data}")
# [/job-state]

# [tracker]
tracker = job_state.tracker  # also flow.execution_tracker, for the latest job
performance = tracker.get_routine_performance("processor2")
print(
    f"processor2: {performance['total_executions']} execution(s), "
    f"success rate {performance['success_rate']:.0%}"
)
overall = tracker.get_flow_performance()
print(f"flow: {overall['success_count']} of {overall['total_executions']} calls succeeded")
for delivery in tracker.get_event_flow():
    print(f"{delivery.source}.{delivery.event} -> {delivery.target}.{delivery.slot}")
# [/tracker]
