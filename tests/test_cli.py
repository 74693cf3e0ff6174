"""The ``flowforge`` command, driven as a user drives it.

Commands that run jobs are started in a real subprocess (``python -m
flowforge.cli``) so that exit statuses, Ctrl-C and the module lookup beside a
flow file are the real thing; the commands that only read are driven through
click's runner. Every test works in its own directory, where the default
store ``flowforge.db`` is created.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import (
    FAILING_FLOW,
    INVALID_FLOW,
    QUICK_FLOW,
    REPORT_FLOW,
    SLOW_FLOW,
    SLOW_ROUTINES,
    cli,
    enter_workdir,
    invoke,
    load_job,
    stored_jobs,
    write,
)
from click.testing import CliRunner
from conftest import Pauser

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobState, JobStatus
from flowforge.cli import Progress, build_cli
from flowforge.store import SQLiteStore
from flowforge.testing import Collect, Flaky, Source

COMMANDS = (
    "run",
    "validate",
    "show",
    "graph",
    "jobs",
    "status",
    "history",
    "resume",
    "pause",
    "cancel",
    "delete",
    "prune",
    "submit",
    "worker",
    "serve",
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, also this process's (for click's runner)."""
    return enter_workdir(tmp_path, monkeypatch)


@pytest.fixture
def paused_job(workdir: Path) -> str:
    """A job paused half-way, in the working directory's store; returns its id."""
    flow = Flow(flow_id="pausing")
    pauser = Pauser()
    pauser.flow = flow
    pauser.set_config(at=2)
    flow.add_routine(Source(), "source")
    flow.add_routine(pauser, "pauser")
    flow.add_routine(Collect(), "sink")
    flow.connect("source", "out", "pauser", "in")
    flow.connect("pauser", "out", "sink", "in")
    with SQLiteStore(workdir / "flowforge.db") as store:
        store.save_flow(flow)
        job = flow.execute("source", {"values": [1, 2, 3, 4]}, store=store)
    assert job.status == JobStatus.PAUSED
    return job.job_id


HIDDEN_SINK = """\
from flowforge.testing import Collect


class HiddenSink(Collect):
    \"\"\"A sink whose module is only importable from the mods directory.\"\"\"
"""


@pytest.fixture
def paused_elsewhere(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A paused job whose sink class lives in ``mods/hidden_sink.py``; returns its id."""
    mods = workdir / "mods"
    mods.mkdir()
    write(mods, "hidden_sink.py", HIDDEN_SINK)
    monkeypatch.syspath_prepend(str(mods))
    import hidden_sink  # type: ignore[import-not-found]

    flow = Flow(flow_id="elsewhere")
    pauser = Pauser()
    pauser.flow = flow
    pauser.set_config(at=1)
    flow.add_routine(pauser, "pauser")
    flow.add_routine(hidden_sink.HiddenSink(), "sink")
    flow.connect("pauser", "out", "sink", "in")
    with SQLiteStore(workdir / "flowforge.db") as store:
        store.save_flow(flow)
        job = flow.execute("pauser", {"value": 1}, store=store)
    monkeypatch.delitem(sys.modules, "hidden_sink")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(mods)])
    yield job.job_id
    sys.modules.pop("hidden_sink", None)


# -- the main job ------------------------------------------------------------------


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """The README's command, run once from a fresh directory: ``(directory, --json result)``."""
    directory = tmp_path_factory.mktemp("main-job")
    result = cli("run", str(REPORT_FLOW), "--json", cwd=directory)
    assert result.returncode == 0, result.stderr
    yield directory, json.loads(result.stdout)


def test_main_job_completes_and_is_kept_in_the_default_store(main_job: tuple[Path, Any]) -> None:
    """The example job ends completed, and flowforge.db in the working directory has it."""
    directory, result = main_job
    assert result["status"] == "completed"
    [job] = stored_jobs(directory)
    assert (job.job_id, job.status, job.pending) == (result["job_id"], "completed", 0)


def test_main_job_writes_the_report(main_job: tuple[Path, Any]) -> None:
    """out/report.md counts every line of the data file as an order or a reject."""
    directory, _ = main_job
    report = (directory / "out" / "report.md").read_text(encoding="utf-8")
    assert "- Lines read: 5,000" in report
    assert "- Orders: 4,992" in report
    assert "- Rejected: 8" in report
    assert "## By region" in report


def test_main_job_writes_every_reject_with_its_reason(main_job: tuple[Path, Any]) -> None:
    """out/rejects.csv holds the broken lines, none lost, each with a reason."""
    directory, result = main_job
    with (directory / "out" / "rejects.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["number"]) for r in rows] == [137, 842, 1503, 2291, 3010, 3777, 4420, 4999]
    assert all(r["reason"] and r["line"].startswith("A0") for r in rows)
    assert result["routines"]["rejects"]["activations"] == 8


def test_main_job_json_result_counts_each_routine(main_job: tuple[Path, Any]) -> None:
    """--json gives each routine's calls: every line parsed, the good ones priced."""
    _, result = main_job
    done = {rid: r["activations"] for rid, r in result["routines"].items()}
    assert done == {
        "read": 1,
        "parse": 5000,
        "validate": 4997,
        "price": 4992,
        "rejects": 8,
        "aggregate": 5001,
        "write": 1,
    }
    assert result["errors"] == [] and result["resume_command"] is None


def test_report_path_can_be_set_for_a_run(workdir: Path) -> None:
    """--set write.path=report.json writes the report as JSON there."""
    result = cli(
        "run",
        str(REPORT_FLOW),
        "-q",
        "--set",
        "write.path=report.json",
        "--set",
        "write.rejects_path=rejects.csv",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((workdir / "report.json").read_text(encoding="utf-8"))
    assert (report["lines"], report["orders"], report["rejected"]) == (5000, 4992, 8)


# -- run: outcomes ------------------------------------------------------------------


def test_run_prints_progress_and_a_summary(workdir: Path) -> None:
    """run announces the job on stderr and prints the summary table on stdout."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = cli("run", "quick.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Running job" in result.stderr and "Ctrl-C pauses it" in result.stderr
    assert "of flow 'quick': completed" in result.stdout
    [row] = [line.split() for line in result.stdout.splitlines() if line.startswith("double ")]
    assert row[:4] == ["double", "completed", "3", "0"]


def test_failing_flow_exits_1_with_the_error(workdir: Path) -> None:
    """A job that fails under STOP exits 1, names the error and how to resume."""
    write(workdir, "failing.yaml", FAILING_FLOW)
    result = cli("run", "failing.yaml", cwd=workdir)
    assert result.returncode == 1
    assert "failed (ValueError: flaky failure #1)" in result.stdout
    assert "flaky.in: ValueError: flaky failure #1 [stop]" in result.stdout
    [job] = stored_jobs(workdir)
    assert f"flowforge resume {job.job_id}" in result.stdout


def test_invalid_flow_exits_2_listing_every_problem_with_its_place(workdir: Path) -> None:
    """run on an invalid file lists each problem with where it is, and no traceback."""
    write(workdir, "broken.yaml", INVALID_FLOW)
    result = cli("run", "broken.yaml", cwd=workdir)
    assert result.returncode == 2
    assert "cannot load the flow (3 problem(s))" in result.stderr
    assert "flow.executor.kind: expected one of" in result.stderr
    assert "flow.routines.parse.class: module 'nowhere.to.be.found'" in result.stderr
    assert "flow.connections[0]: Cannot connect 'source' -> 'sink'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "flowforge.db").exists()


def test_json_result_is_parsed_back(workdir: Path) -> None:
    """run --json prints one JSON document with the job's status and routines."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = cli("run", "quick.yaml", "--json", cwd=workdir)
    data = json.loads(result.stdout)
    assert data["status"] == "completed"
    assert data["routines"]["sink"]["stats"] == {"calls": 3}


def test_param_overrides_the_flow_files_params(workdir: Path) -> None:
    """--param values=[...] replaces the entry's params from the flow file."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("run", "quick.yaml", "-q", "--json", "--param", "values=[5, 6, 7, 8, 9]")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["routines"]["sink"]["activations"] == 5


def test_params_file_supplies_params(workdir: Path) -> None:
    """--params-file reads the entry's params from a YAML mapping."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    write(workdir, "params.yaml", "values: [1, 2]\n")
    result = invoke("run", "quick.yaml", "-q", "--json", "--params-file", "params.yaml")
    assert json.loads(result.stdout)["routines"]["double"]["activations"] == 2


def test_thread_executor_can_be_chosen(workdir: Path) -> None:
    """--executor thread --workers 2 runs the job on a pool, to the same result."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("run", "quick.yaml", "-q", "--json", "--executor", "thread", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["routines"]["sink"]["activations"] == 3


def test_workers_without_a_thread_pool_is_bad_usage(workdir: Path) -> None:
    """--workers with the sequential executor exits 2 and says what to add."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("run", "quick.yaml", "--workers", "4")
    assert result.exit_code == 2
    assert "add --executor thread (or process)" in result.stderr


def test_set_on_an_unknown_routine_is_bad_usage(workdir: Path) -> None:
    """--set names a routine the flow does not have: exit 2, listing the routines."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("run", "quick.yaml", "--set", "nope.x=1")
    assert result.exit_code == 2
    assert "'double', 'sink', 'source'" in result.stderr


def test_dry_run_shows_the_plan_and_runs_nothing(workdir: Path) -> None:
    """--dry-run prints the entry and params, and creates no store."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    result = invoke("run", "quick.yaml", "--dry-run", "--param", "values=[4]")
    assert result.exit_code == 0, result.output
    assert "Would run flow 'quick'" in result.stdout
    assert '{"values": [4]}' in result.stdout
    assert not (workdir / "flowforge.db").exists()


def test_dry_run_json_is_parsed_back(workdir: Path) -> None:
    """--dry-run --json gives the entry, the executor and the routines."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    plan = json.loads(invoke("run", "quick.yaml", "--dry-run", "--json").stdout)
    assert plan["entry"] == {"routine_id": "source", "slot": None, "params": {"values": [1, 2, 3]}}
    assert plan["routines"]["double"] == "flowforge.testing:Double"


def counted_job(mode: str) -> str:
    """What a Progress in ``mode`` draws, twice, after a job whose sink always fails."""
    flow = Flow(flow_id="counted")
    flow.add_routine(Source(), "source")
    flow.add_routine(Flaky(), "sink")
    flow.get_routine("sink").set_config(fail_times=-1)
    flow.get_routine("sink").set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.connect("source", "out", "sink", "in")
    job = JobState(flow_id="counted")
    stream = io.StringIO()
    progress = Progress(flow, job, stream, mode)
    progress.attach()
    flow.execute("source", {"values": [1, 2, 3]}, job_state=job)
    progress.detach()
    progress.draw(time.monotonic())
    progress.draw(time.monotonic())
    return stream.getvalue()


def test_progress_as_plain_lines_counts_calls_and_failures() -> None:
    """Off a terminal, each drawing is one line: calls per routine, failures, pending, errors."""
    first = counted_job("lines").splitlines()[0]
    assert first.endswith("] source 1, sink 0 (3 failed) | pending 0 | errors 3")


def test_progress_on_a_terminal_redraws_in_place() -> None:
    """On a terminal, the second drawing first moves the cursor up over the first."""
    text = counted_job("tty")
    first, second = text.split("\r", 1)
    assert second.startswith("\x1b[2K\x1b[1A") and "counted · job" in second
    assert "3 failed" in first and "0 pending · 3 error(s)" in first


# -- Ctrl-C, then resume -------------------------------------------------------------


def wait_for_lines(path: Path, count: int) -> None:
    """Wait until ``path`` has at least ``count`` lines (the job is under way)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


def test_ctrl_c_pauses_then_resume_finishes_without_repeating_work(tmp_path: Path) -> None:
    """SIGINT pauses and prints the resume command; running it completes the job once."""
    flows = tmp_path / "flows"
    flows.mkdir()
    write(flows, "slow_notes.py", SLOW_ROUTINES)
    write(flows, "slow.yaml", SLOW_FLOW % list(range(40)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowforge.cli", "run", "flows/slow.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_lines(flows / "seen.txt", 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Pausing job" in stderr
    assert "paused (interrupted by Ctrl-C)" in stdout
    command = stdout.split("Resume it with:")[1].strip()
    [job] = stored_jobs(tmp_path)
    assert job.status == "paused"
    assert command == f"flowforge resume {job.job_id}"

    resumed = cli(*shlex.split(command)[1:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    seen = [int(line) for line in (flows / "seen.txt").read_text().splitlines()]
    assert sorted(seen) == list(range(40))
    final = load_job(tmp_path, job.job_id)
    assert final.status == JobStatus.COMPLETED
    assert final.get_routine_state("note")["stats"] == {"noted": 40}


def test_sigterm_pauses_like_ctrl_c_then_resume_delivers_everything_once(tmp_path: Path) -> None:
    """SIGTERM pauses the job (never left running); resume writes every value once."""
    flows = tmp_path / "flows"
    flows.mkdir()
    write(flows, "slow_notes.py", SLOW_ROUTINES)
    bounded = SLOW_FLOW.replace(
        '{class: "slow_notes:Note",', '{class: "slow_notes:Note", capacity: {in: 2},'
    )
    write(flows, "slow.yaml", bounded % list(range(40)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowforge.cli", "run", "flows/slow.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_lines(flows / "seen.txt", 3)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Pausing job" in stderr and "SIGTERM" in stderr
    assert "paused (interrupted by SIGTERM)" in stdout
    [job] = stored_jobs(tmp_path)
    assert job.status == "paused"

    resumed = cli("resume", job.job_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    seen = [int(line) for line in (flows / "seen.txt").read_text().splitlines()]
    assert seen == list(range(40))
    assert load_job(tmp_path, job.job_id).status == JobStatus.COMPLETED


def test_a_job_killed_with_sigkill_resumes_without_path(tmp_path: Path) -> None:
    """kill -9 mid-run: status suggests a bare resume, which finishes the job from elsewhere."""
    flows = tmp_path / "flows"
    flows.mkdir()
    write(flows, "slow_notes.py", SLOW_ROUTINES)
    write(flows, "slow.yaml", SLOW_FLOW % list(range(20)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowforge.cli", "run", "flows/slow.yaml", "-q"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "FLOWFORGE_LEASE_SECONDS": "1"},
    )
    wait_for_lines(flows / "seen.txt", 3)
    proc.kill()
    proc.wait(timeout=30)
    [job] = stored_jobs(tmp_path)
    assert job.status == "running"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = str(tmp_path / "flowforge.db")
    # The dead run's lease lapses after a second; until then resuming is refused.
    while (
        data := json.loads(
            cli("status", job.job_id, "--store", store, "--json", cwd=elsewhere).stdout
        )
    )["lease"]["live"]:
        assert data["resume_command"] is None
        time.sleep(0.1)
    command = data["resume_command"]
    assert command == shlex.join(["flowforge", "resume", job.job_id, "--store", store])
    resumed = cli(*shlex.split(command)[1:], "-q", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert load_job(tmp_path, job.job_id).status == JobStatus.COMPLETED


def forget_origin(directory: Path) -> None:
    """Make the store look like one written before flow origins were recorded."""
    with sqlite3.connect(directory / "flowforge.db") as conn:
        for flow_id, text in conn.execute("SELECT flow_id, definition FROM flows").fetchall():
            definition = json.loads(text)
            definition.pop("origin", None)
            conn.execute(
                "UPDATE flows SET definition = ? WHERE flow_id = ?",
                (json.dumps(definition), flow_id),
            )
    conn.close()


def test_resume_finds_the_modules_of_a_job_started_from_python(paused_elsewhere: str) -> None:
    """The store recorded where the routines came from: resume needs no --path."""
    resumed = invoke("resume", paused_elsewhere, "-q", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["routines"]["sink"]["activations"] == 1


def test_resume_of_an_older_store_needs_the_directory_of_the_flows_modules(
    paused_elsewhere: str, workdir: Path
) -> None:
    """Without a recorded origin, --path is needed (exit 2, with the hint); with it, it works."""
    forget_origin(workdir)
    result = invoke("resume", paused_elsewhere)
    assert result.exit_code == 2, result.output
    assert "module 'hidden_sink' does not exist" in result.stderr
    assert "pass that directory: --path DIR" in result.stderr
    resumed = invoke("resume", paused_elsewhere, "--path", "mods", "-q")
    assert resumed.exit_code == 0, resumed.output


def test_resume_finishes_a_paused_job(paused_job: str, workdir: Path) -> None:
    """resume continues the stored job to completed, delivering what was pending."""
    result = invoke("resume", paused_job, "-q", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed"
    assert data["routines"]["sink"]["activations"] == 4


def test_resume_of_a_completed_job_exits_1(workdir: Path) -> None:
    """There is nothing to resume in a completed job."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    job_id = json.loads(invoke("run", "quick.yaml", "-q", "--json").stdout)["job_id"]
    result = invoke("resume", job_id)
    assert result.exit_code == 1
    assert "is completed: there is nothing to resume" in result.stderr


# -- reading the store ---------------------------------------------------------------


def test_jobs_lists_the_stored_jobs(paused_job: str) -> None:
    """jobs shows each job with its flow, status and pending count."""
    result = invoke("jobs")
    assert result.exit_code == 0
    [row] = result.stdout.splitlines()[1:]
    assert row.startswith(f"{paused_job}  pausing  paused")


def test_jobs_filters_by_status(paused_job: str) -> None:
    """jobs --status completed leaves the paused job out."""
    assert json.loads(invoke("jobs", "--status", "completed", "--json").stdout) == []
    [listed] = json.loads(invoke("jobs", "--status", "paused", "--json").stdout)
    assert listed["job_id"] == paused_job


def test_jobs_without_a_store_says_so(workdir: Path) -> None:
    """jobs before any run: no jobs, exit 0, and no store file created."""
    result = invoke("jobs")
    assert result.exit_code == 0
    assert "there is no store at flowforge.db yet" in result.stdout
    assert not (workdir / "flowforge.db").exists()


def test_store_option_comes_from_the_environment(paused_job: str, workdir: Path) -> None:
    """FLOWFORGE_STORE points every job command at another store."""
    (workdir / "flowforge.db").rename(workdir / "elsewhere.db")
    result = CliRunner().invoke(
        build_cli(), ["jobs", "--json"], env={"FLOWFORGE_STORE": "elsewhere.db"}
    )
    assert [j["job_id"] for j in json.loads(result.stdout)] == [paused_job]


def test_status_shows_the_job_and_how_to_resume_it(paused_job: str) -> None:
    """status gives the status, the routines' calls and the resume command."""
    result = invoke("status", paused_job)
    assert result.exit_code == 0
    assert f"Job {paused_job} of flow 'pausing': paused" in result.stdout
    assert "pending   4 message(s)" in result.stdout
    assert f"flowforge resume {paused_job}" in result.stdout


def test_status_accepts_a_prefix_of_the_job_id(paused_job: str) -> None:
    """A unique prefix names the job."""
    data = json.loads(invoke("status", paused_job[:6], "--json").stdout)
    assert (data["job_id"], data["status"]) == (paused_job, "paused")


def test_status_of_an_unknown_job_exits_2(paused_job: str) -> None:
    """An id no job has: exit 2, pointing at flowforge jobs."""
    result = invoke("status", "no-such-job")
    assert result.exit_code == 2
    assert "flowforge jobs" in result.stderr


def test_history_shows_the_latest_entries(paused_job: str) -> None:
    """history --limit 2 shows the two latest emits."""
    result = invoke("history", paused_job, "--limit", "2")
    assert result.exit_code == 0
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 2
    assert rows[-1].split()[2:] == ["pauser", "out", '{"value":', "2}"]


def test_history_of_one_routine_as_json(paused_job: str) -> None:
    """history --routine --json gives that routine's entries only."""
    entries = json.loads(invoke("history", paused_job, "--routine", "source", "--json").stdout)
    assert [e["data"] for e in entries] == [{"value": v} for v in (1, 2, 3, 4)]


def test_cancel_marks_a_paused_job_cancelled(paused_job: str, workdir: Path) -> None:
    """cancel records the job as cancelled, with the reason."""
    result = invoke("cancel", paused_job, "--reason", "wrong input")
    assert result.exit_code == 0
    job = load_job(workdir, paused_job)
    assert (job.status, job.reason) == (JobStatus.CANCELLED, "wrong input")


def test_cancel_of_a_finished_job_exits_1(paused_job: str) -> None:
    """A cancelled job cannot be cancelled again."""
    invoke("cancel", paused_job)
    result = invoke("cancel", paused_job)
    assert result.exit_code == 1
    assert "already cancelled" in result.stderr


# -- reading flow files --------------------------------------------------------------


def test_validate_a_good_flow(workdir: Path) -> None:
    """The example flow is valid: exit 0."""
    result = invoke("validate", str(REPORT_FLOW))
    assert result.exit_code == 0
    assert "flow 'order-report' is valid (7 routines, 9 connections)" in result.stdout


def test_validate_lists_every_problem_with_a_hint(workdir: Path) -> None:
    """validate on a broken file: exit 2, each problem listed, a hint for the module."""
    write(workdir, "broken.yaml", INVALID_FLOW)
    result = invoke("validate", "broken.yaml")
    assert result.exit_code == 2
    assert result.stdout.count("  error: ") == 3
    assert "module 'nowhere.to.be.found' does not exist" in result.stdout
    assert "hint: Check the module name; it must be next to the flow file" in result.stdout


def test_validate_json_gives_each_problems_place(workdir: Path) -> None:
    """validate --json parses back, with the place of each problem."""
    write(workdir, "broken.yaml", INVALID_FLOW)
    data = json.loads(invoke("validate", "broken.yaml", "--json").stdout)
    assert data["valid"] is False
    assert [p["where"] for p in data["problems"]] == [
        "flow.executor.kind",
        "flow.routines.parse.class",
        "flow.connections[0]",
    ]


def test_validate_names_the_place_of_structural_problems(workdir: Path) -> None:
    """A misspelt key and a wrong type are reported as flow.routines.<id>... places."""
    typo = QUICK_FLOW.replace("double: {class:", "double: {klass:")
    write(workdir, "typo.yaml", typo + "retention: lots\n")
    data = json.loads(invoke("validate", "typo.yaml", "--json").stdout)
    assert [(p["where"], p["message"]) for p in data["problems"]] == [
        ("flow.retention", "expected int, got str 'lots'"),
        ("flow.routines.double.class", "required field missing"),
        ("flow.routines.double", "unknown field(s) 'klass'"),
    ]


def test_validate_reports_the_flows_own_warnings(workdir: Path) -> None:
    """A loadable flow with an unconsumed event: a warning with a hint, exit 0 (2 with --strict)."""
    write(workdir, "loose.yaml", QUICK_FLOW.replace("  - double.out -> sink.in\n", ""))
    result = invoke("validate", "loose.yaml")
    assert result.exit_code == 0
    assert "warning: double.out: no slot consumes this event" in result.stdout
    assert "hint: Connect it" in result.stdout
    assert invoke("validate", "loose.yaml", "--strict").exit_code == 2


def test_show_describes_routines_and_connections(workdir: Path) -> None:
    """show lists each routine's class, slots, events, policy and the connections."""
    result = invoke("show", str(REPORT_FLOW))
    assert result.exit_code == 0
    assert "aggregate  (report_routines:Aggregate)" in result.stdout
    assert "slot   tally (merge function add_to_totals)" in result.stdout
    assert "event  row(number, line)" in result.stdout
    assert "policy max_concurrency=4" in result.stdout
    assert 'read.end -> aggregate.tally  mapping {"total": "expected"}' in result.stdout


def test_show_lists_middleware(workdir: Path) -> None:
    """show names the flow's middleware and each routine's, outermost first."""
    data = Flow.load(REPORT_FLOW, allowed_modules="report_routines").serialize()
    data["middleware"] = [{"class": "flowforge.middleware:LogCalls", "config": {"level": 10}}]
    data["routines"]["read"]["middleware"] = [
        {"class": "flowforge.middleware:LogCalls", "config": {"logger": "app"}}
    ]
    write(workdir, "mw.json", json.dumps(data))
    result = invoke("show", "mw.json")
    assert result.exit_code == 0, result.output
    assert "middleware     log_calls(logger='flowforge.calls', level=10)" in result.stdout
    assert "    middleware log_calls(logger='app', level=20)" in result.stdout


def test_show_json_is_the_flow_file_format(workdir: Path) -> None:
    """show --json prints the flow as a flow file, which loads back."""
    data = json.loads(invoke("show", str(REPORT_FLOW), "--json").stdout)
    assert data["format"] == "flowforge/flow"
    assert Flow.from_dict(data).routines.keys() == {
        "read",
        "parse",
        "validate",
        "price",
        "rejects",
        "aggregate",
        "write",
    }


def test_graph_as_mermaid(workdir: Path) -> None:
    """graph prints a Mermaid flowchart with one edge per connection."""
    result = invoke("graph", str(REPORT_FLOW))
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert '    r_read -- "end → tally (total→expected)" --> r_aggregate' in lines
    assert sum("-->" in line for line in lines) == 9


def test_graph_as_dot_to_a_file(workdir: Path) -> None:
    """graph --format dot -o writes a Graphviz digraph."""
    result = invoke("graph", str(REPORT_FLOW), "--format", "dot", "-o", "flow.dot")
    assert result.exit_code == 0
    text = (workdir / "flow.dot").read_text(encoding="utf-8")
    assert text.startswith('digraph "order-report" {')
    assert '"parse" -> "rejects" [label="bad → input"];' in text


# -- the command itself --------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_shows_an_example(command: str) -> None:
    """COMMAND --help ends with an example of the command."""
    result = invoke(command, "--help")
    assert result.exit_code == 0
    example = result.stdout.split("Example:")[1]
    assert f"flowforge {command}" in example


def test_without_click_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    """With click missing, flowforge prints the pip command and exits 2."""
    code = "import sys; sys.modules['click'] = None; from flowforge.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "pip install 'flowforge[cli]'" in result.stderr


def test_shell_completion_offers_job_ids(paused_job: str, workdir: Path) -> None:
    """_FLOWFORGE_COMPLETE completes a job id from the store."""
    result = cli(
        cwd=workdir,
        env={
            "_FLOWFORGE_COMPLETE": "bash_complete",
            "COMP_WORDS": f"flowforge status {paused_job[:4]}",
            "COMP_CWORD": "2",
        },
    )
    assert result.stdout.split() == [f"plain,{paused_job}"]
