"""The founding example of the API contract runs unchanged and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FOUNDING_EXAMPLE = """\
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
"""


def test_founding_example_prints_completed_then_the_stats(tmp_path: Path) -> None:
    """In a fresh process, with warnings as errors, the example prints exactly two lines."""
    script = tmp_path / "founding.py"
    script.write_text(FOUNDING_EXAMPLE)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "completed\n{'processed_count': 1}\n"
    assert result.stderr == ""


def test_founding_example_delivers_result_to_the_data_parameter(tmp_path: Path) -> None:
    """processor2 received the event's 'result' through its single 'data' parameter."""
    script = tmp_path / "founding.py"
    script.write_text(
        FOUNDING_EXAMPLE + "print(processor2.stats())\n"
        "print([r.data for r in job_state.get_execution_history('processor2')])\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:] == [
        "{'processed_count': 1}",
        "[{'result': 'Processed: Processed: test'}]",
    ]
