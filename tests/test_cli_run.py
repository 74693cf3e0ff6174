"""``flowforge run`` and ``resume``: executors, logging, progress, entry parameters."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import QUICK_FLOW, enter_workdir, invoke, load_job, write

from flowforge import Flow, JobState, JobStatus, __version__
from flowforge.cli import Progress
from flowforge.signals import routine_finished
from flowforge.testing import Collect, Double, Source

#: The entry, ``double``, needs ``value``, which the flow file does not give.
NO_PARAM_FLOW = """\
flow_id: noparam
entry: {routine: double}
routines:
  double: {class: "flowforge.testing:Double"}
  sink: {class: "flowforge.testing:Collect"}
connections:
  - double.out -> sink.in
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory."""
    return enter_workdir(tmp_path, monkeypatch)


@pytest.fixture
def failed_on_param(workdir: Path) -> str:
    """A job whose entry call failed for want of a parameter; returns its id."""
    write(workdir, "noparam.yaml", NO_PARAM_FLOW)
    result = invoke("run", "noparam.yaml", "-q", "--json")
    assert result.exit_code == 1, result.output
    return str(json.loads(result.stdout)["job_id"])


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    """python -m flowforge.cli is the flowforge command."""
    result = subprocess.run(
        [sys.executable, "-m", "flowforge.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert result.stdout == f"flowforge {__version__}\n"


def test_dask_is_an_executor_choice(workdir: Path) -> None:
    """run --executor dask is accepted (here checked with --dry-run)."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("run", "quick.yaml", "--dry-run", "--json", "--executor", "dask")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["executor"]["kind"] == "dask"


def test_verbose_routes_info_logging_to_stderr(workdir: Path) -> None:
    """-v shows FlowForge's INFO records on stderr; without it they are not shown."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    loud = invoke("-v", "run", "quick.yaml", "-q")
    assert "INFO flowforge.cli._loading: Loaded flow 'quick'" in loud.stderr
    assert "DEBUG" not in loud.stderr
    assert "Loaded flow" not in invoke("run", "quick.yaml", "-q").stderr


def test_twice_verbose_shows_debug_records(workdir: Path) -> None:
    """-vv adds DEBUG records."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("-vv", "run", "quick.yaml", "-q")
    assert "DEBUG flowforge.cli._loading: Loading quick.yaml" in result.stderr


def test_missing_entry_parameter_hint_names_the_option(failed_on_param: str) -> None:
    """An entry call that lacks a parameter: the hint is --param, not param_mapping."""
    summary = invoke("status", failed_on_param).stdout.split("Traceback of the failing call")[0]
    assert "Give it with --param value=VALUE." in summary
    assert f"flowforge resume {failed_on_param} --param value=VALUE" in summary
    assert "param_mapping" not in summary


def test_resume_param_gives_the_entry_its_parameter(failed_on_param: str, workdir: Path) -> None:
    """resume --param value=21 reruns the failed entry call with it, to completion."""
    result = invoke("resume", failed_on_param, "--param", "value=21", "-q", "--json")
    assert result.exit_code == 0, result.output
    job = load_job(workdir, failed_on_param)
    assert job.status == JobStatus.COMPLETED
    assert job.entry["params"] == {"value": 21}
    assert [r.data for r in job.get_execution_history("double")] == [{"value": 42}]


def test_resume_param_after_the_entry_ran_is_bad_usage(workdir: Path) -> None:
    """A job past its entry call cannot take new entry params: exit 2, nothing run."""
    write(workdir, "failing.yaml", QUICK_FLOW.replace("Double", "Flaky"))
    job_id = json.loads(invoke("run", "failing.yaml", "-q", "--json").stdout)["job_id"]
    result = invoke("resume", job_id, "--param", "values=[1]")
    assert result.exit_code == 2
    assert "has already run" in result.stderr
    assert load_job(workdir, job_id).status == JobStatus.FAILED


def test_progress_counts_messages_a_thread_pool_holds_back() -> None:
    """On the thread executor, pending counts messages held per routine, not just the queue."""
    flow = Flow(flow_id="held", executor="thread")
    flow.add_routine(Source(), "source")
    flow.add_routine(Double(), "double")
    flow.add_routine(Collect(), "sink")
    flow.connect("source", "out", "double", "in")
    flow.connect("double", "out", "sink", "in")
    job = JobState(flow_id="held")
    stream = io.StringIO()
    progress = Progress(flow, job, stream, "lines")
    seen: list[str] = []

    def draw_once(sender: Any, *, routine_id: str, **_: Any) -> None:
        if routine_id == "double" and not seen:
            progress.draw(time.monotonic())
            seen.append(stream.getvalue())

    routine_finished.connect(draw_once, sender=flow, weak=False)
    try:
        with flow:
            flow.execute("source", {"values": [1, 2, 3, 4, 5, 6]}, job_state=job)
    finally:
        routine_finished.disconnect(draw_once, sender=flow)
    pending = int(seen[0].split("| pending ")[1].split()[0])
    assert pending >= 4
