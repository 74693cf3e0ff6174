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
    # docs/guide/middleware.rst shows these lines.
    "middleware.py": [
        "  > convert.input attempt 0 {'value': 10.0}",
        "  < convert.input attempt 0 failed: rate service busy",
        "  > convert.input attempt 1 {'value': 10.0}",
        "  < convert.input attempt 1 returned 9.0",
        "  > convert.input attempt 0 {'value': 0}",
        "  < convert.input attempt 0 returned None",
        "status: completed",
        "saved: ['__main__:trace']",
        "convert: ['__main__:skip_free']",
        "process: completed, converted [18.0]",
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
    # docs/tutorial.rst shows all of this output.
    "tutorial.py": [
        "parse emitted: [{'sensor': 'kitchen', 'celsius': 21.5}]",
        "Cannot connect 'parse' -> 'tally': 'parse' has no event 'readings'. "
        "Its events are: 'reading'.",
        "Routine 'Parse' emitted event 'reading' with parameter(s) 'temperature' it does not "
        "declare. The event declares: 'celsius', 'sensor'. Add them to "
        "define_event('reading', [...]) or pass params=None to allow any.",
        "warning: threshold.over: no slot consumes this event; what it emits is recorded in "
        "the history and goes nowhere.",
        "split: completed, 1 call(s), {}",
        "parse: completed, 6 call(s), {}",
        "tally: completed, 6 call(s), {'kitchen': 2, 'attic': 2, 'garage': 2}",
        "threshold: completed, 6 call(s), {}",
        "threshold emitted over: {'name': 'attic', 'value': 31.5}",
        "threshold emitted over: {'name': 'attic', 'value': 33.0}",
        "tally.stats(): {'kitchen': 2, 'attic': 2, 'garage': 2}",
        "parse: 6 call(s), success rate 100%",
        "deliveries recorded: 18",
        "first delivery: split.line -> parse.input",
        "status: failed",
        "reason: ValueError: could not convert string to float: '??'",
        "error: parse ValueError could not convert string to float: '??'",
        "left in job.pending: 14 message(s)",
        "status: completed",
        "parse continued after 1 failure(s)",
        "recorded: parse.input ValueError (stop)",
        "recorded: parse.input ValueError (continue)",
        "tally: {'kitchen': 3, 'attic': 2, 'garage': 2}",
        "paused: attic at 31.5 is over 30.0; 8 message(s) pending",
        "paused again: attic at 33.0 is over 30.0; 2 message(s) pending",
        "tally: {'kitchen': 2, 'attic': 2, 'garage': 2}",
        "over the limit: ['attic', 'attic']",
    ],
    # The cookbook (docs/cookbook/) shows these lines.
    "recipe_dag.py": [
        "  link ran with {'compile_lib': 'lib.o', 'compile_app': 'app.o'}",
        "  package ran with {'link': 'app', 'docs': 'html/'}",
        "  completed: app-1.2.tar.gz",
        "  failed: RuntimeError: docs failed",
        "  docs failed, package cancelled",
        "  skipped: [('package', \"upstream 'docs' failed\")]",
        "  skipped: [('docs', 'the handler failed and its strategy is SKIP'), "
        "('package', \"upstream 'docs' skipped\")]",
        "refused: Flow 'build' has a dependency cycle: package -> fetch -> checkout -> docs -> "
        "package. No task of it could ever run; remove one of the dependencies.",
        "refused: Task 'package' needs parameter 'version', which no dependency, default or job "
        "param provides (job params: (none)). Pass it: flow.execute(entry_params={'version': "
        "...}).",
    ],
    # docs/guide/tasks.rst shows these lines; etl_tasks.yaml imports the module.
    "etl_tasks.py": [
        "completed",
        "extracted 5000, kept 4995",
        "by region: {'central': 104153.74, 'east': 101119.23, 'north': 114156.5, "
        "'south': 100902.19, 'west': 102790.93}",
        "top products: [['doohickey', 158130.0], ['thingamajig', 115581.23], ['gadget', 77937.6]]",
        "report: skipped - no output file given (param 'out')",
        "['by_region', 'clean', 'extract', 'report', 'top_products']",
        "top: doohickey 158130.00",
        "failed {'extract': 'failed', 'clean': 'cancelled', 'by_region': 'cancelled', "
        "'top_products': 'cancelled', 'report': 'cancelled'}",
        "Task 'clean' has no result: it is cancelled (the job failed before it started).",
        "stored: True",
        "on processes: completed doohickey",
    ],
    "recipe_pipeline.py": [
        "every stage within its limit: True",
        "resumed: completed, 200 written",
        "200 line(s) in the file; every item exactly once: True",
    ],
    "recipe_fan_out_in.py": [
        "report: 18 words on 4 lines; longest: 'sleeps'",
        "branches: completed",
        "parts: completed - chunks counted: 4",
        "top words: {'the': 4, 'dog': 3, 'fox': 2}",
    ],
    "recipe_loop.py": [
        "completed: 5 page(s), {'items': 23}",
        "failed: ActivationLimitError",
        "Routine 'pages' was activated 100 times in this job, its cap; the flow is probably "
        "looping without end. Guard the loop, or raise the cap with routine.max_activations = N "
        "(or Flow(max_activations=N); None disables it).",
        "calls: 100, pending: 1",
    ],
    "recipe_restart.py": [
        "killed the worker part-way through the job",
        "restarted worker: job completed, stats {'rows': 200}",
        "warehouse: 200 row(s), each exactly once: True",
    ],
    "recipe_approval.py": [
        "paused: claim C-2 (1200) awaits a decision",
        "decisions {'C-2': 'approve'} -> paused: claim C-4 (5000) awaits a decision",
        "decisions {'C-2': 'approve', 'C-4': 'reject'} -> completed",
        "paid: {'claims': 4, 'amount': 1335}",
        "refused: {'claims': 1, 'amount': 5000}",
    ],
    "durable_job.py": [
        "worker 1 died after billing order 6 (exit status 1)",
        "in the store: job running, 5 order(s) billed, 5 message(s) pending",
        "worker 2 resumed the job: completed",
        "ledger: 10 order(s) charged once each, total 550",
        "order(s) that ran twice, charged once: [6]",
    ],
    "cpu_bound.py": [
        "completed on every executor: True",
        "calls per executor: [100, 100, 100]",
        "same results on every executor: True",
    ],
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
