"""Every script in ``examples/`` runs to the end and prints what it promises.

The docs include these files, so this is also what keeps the docs' code
samples working. A new example is picked up automatically; it needs an entry
in ``EXPECTED`` with the lines its output must contain (an empty list for a
module of routines that a flow file imports: running it must import cleanly
and print nothing).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: Lines each example's output must contain, by file name.
EXPECTED: dict[str, list[str]] = {
    # docs/quickstart.rst shows all of this output.
    "basic_usage.py": [
        "completed",
        "{'processed_count': 1}",
        "processor1: completed, 1 call(s), {'processed_count': 1}",
        "processor2: completed, 1 call(s), {'processed_count': 1}",
        "processor1 emitted 'output': {'result': 'Processed: test'}",
        "processor2 emitted 'output': {'result': 'Processed: Processed: test'}",
        "processor2: 1 execution(s), success rate 100%",
        "flow: 2 of 2 calls succeeded",
        "processor1.output -> processor2.input",
    ],
    "data_pipeline.py": [
        "  totals: {'alice': 1900, 'bob': 450, 'carol': 500} from 5 record(s)",
        "  rejected: {3: \"amount 'oops' is not a number\", 5: 'negative amount', "
        "7: 'unknown currency'}",
        "  parsed: 7 record(s)",
        "same results: True",
    ],
    # docs/guide/errors.rst shows these lines.
    "error_handling.py": [
        "  status: failed, total: None",
        "  error: invert.input raised ZeroDivisionError: division by zero (handled by stop)",
        "  job.error: ZeroDivisionError; 3 message(s) kept in job.pending",
        "  after the fix and resume: completed, total: 1.25",
        "  status: completed, total: 1.25",
        "  invert continued after 1 failure(s)",
        "  invert skipped 1 call(s)",
        "  retry #1 of rates in 0.01 s after ConnectionError",
        "  retry #2 of rates in 0.02 s after ConnectionError",
        "  status: completed; 3 call(s), 2 failed",
        "  status: failed; 2 call(s), 2 failed",
        "  gave up after 2 attempts: rate service unavailable (attempt 1) (stop)",
    ],
    # docs/guide/state.rst shows the first three lines.
    "state_management.py": [
        "paused (3 orders metered): 7 message(s) pending",
        "paused (6 orders metered): 7 message(s) pending",
        "completed: 7 orders booked, stats {'orders': 7, 'total': 150}",
        "- source.order -> meter.input",
        "loaded from YAML: ['source', 'meter', 'ledger'] {'batch': 3}",
    ],
    "async_handlers.py": [
        "status: completed",
        "fetch failed: HandlerTimeoutError",
        "fetched: 2",
    ],
    # The routines of report_flow.yaml, a module rather than a script.
    "report_routines.py": [],
}


def run_example(path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``path`` with this interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=path.parent.parent,
        check=False,
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_runs_and_prints_its_key_lines(path: Path) -> None:
    """The example exits with status 0 and prints each of its expected lines."""
    expected = EXPECTED.get(path.name)
    assert expected is not None, f"examples/{path.name} has no expected output in EXPECTED."
    result = run_example(path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if not expected:
        assert lines == [], f"a module of routines printed: {result.stdout}"
    missing = [line for line in expected if line not in lines]
    assert not missing, f"missing from the output: {missing}\n--- output ---\n{result.stdout}"


def test_examples_are_found() -> None:
    """The glob finds the examples the docs include."""
    names = {path.name for path in EXAMPLES.glob("*.py")}
    assert set(EXPECTED) <= names
