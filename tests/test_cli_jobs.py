"""``flowforge`` on the jobs in the store: status, history, cancel, delete and prune."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_support import (
    FAILING_FLOW,
    QUICK_FLOW,
    enter_workdir,
    invoke,
    load_job,
    stored_jobs,
    write,
)
from click.testing import CliRunner

from flowforge import JobState, JobStatus
from flowforge.cli import build_cli
from flowforge.cli._running import resume_invocation, resume_options

#: Flow order differs from alphabetical order.
ORDERED_FLOW = """\
flow_id: ordered
entry: {routine: source, params: {values: [1, 2]}}
routines:
  source: {class: "flowforge.testing:Source"}
  middle: {class: "flowforge.testing:Double"}
  end: {class: "flowforge.testing:Collect"}
connections:
  - source.out -> middle.in
  - middle.out -> end.in
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory."""
    return enter_workdir(tmp_path, monkeypatch)


@pytest.fixture
def failed_job(workdir: Path) -> str:
    """A job that failed under STOP, in the working directory's store; returns its id."""
    write(workdir, "failing.yaml", FAILING_FLOW)
    result = invoke("run", "failing.yaml", "-q", "--json")
    assert result.exit_code == 1, result.output
    return str(json.loads(result.stdout)["job_id"])


@pytest.fixture
def completed_job(workdir: Path) -> str:
    """A completed job of the quick flow; returns its id."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    return str(json.loads(invoke("run", "quick.yaml", "-q", "--json").stdout)["job_id"])


def age_jobs(directory: Path, seconds: float) -> None:
    """Make every stored job look ``seconds`` older."""
    with sqlite3.connect(directory / "flowforge.db") as conn:
        conn.execute("UPDATE jobs SET updated_at = updated_at - ?", (seconds,))
    conn.close()


def test_status_shows_the_traceback_of_a_failed_job(failed_job: str) -> None:
    """status of a failed job prints the failing call's traceback (plain when piped)."""
    result = invoke("status", failed_job)
    assert result.exit_code == 0
    assert "Traceback of the failing call (flaky.in):" in result.stdout
    assert "Traceback (most recent call last):" in result.stdout
    assert "ValueError: flaky failure #1" in result.stdout
    assert "\x1b[" not in result.stdout


def test_status_json_gives_each_errors_traceback(failed_job: str) -> None:
    """status --json has the traceback of every error, and the error that failed the job."""
    data = json.loads(invoke("status", failed_job, "--json").stdout)
    assert data["errors"][0]["traceback"].startswith("Traceback (most recent call last):")
    assert data["error"]["error_type"] == "ValueError"
    assert data["resume_problem"] is None


def test_status_on_a_terminal_highlights_with_colours(failed_job: str) -> None:
    """On a terminal (FORCE_COLOR), status is drawn with colours."""
    result = CliRunner().invoke(build_cli(), ["status", failed_job], env={"FORCE_COLOR": "1"})
    assert result.exit_code == 0
    assert "\x1b[" in result.stdout
    assert "ValueError" in result.stdout and "flaky failure #1" in result.stdout


def test_status_lists_routines_in_flow_order(workdir: Path) -> None:
    """status lists routines as the flow does (source, middle, end), like run."""
    write(workdir, "ordered.yaml", ORDERED_FLOW)
    job_id = json.loads(invoke("run", "ordered.yaml", "-q", "--json").stdout)["job_id"]
    assert list(json.loads(invoke("status", job_id, "--json").stdout)["routines"]) == [
        "source",
        "middle",
        "end",
    ]
    rows = invoke("status", job_id).stdout.split("ROUTINE")[1].splitlines()[1:4]
    assert [r.split()[0] for r in rows] == ["source", "middle", "end"]


def test_history_limit_0_says_nothing_was_asked_for(completed_job: str) -> None:
    """--limit 0 shows no entries, and says that is by request."""
    result = invoke("history", completed_job, "--limit", "0")
    assert result.exit_code == 0
    assert "--limit 0" in result.stdout
    assert "No history." not in result.stdout


def test_history_of_an_unknown_routine_exits_2_listing_the_known_ones(completed_job: str) -> None:
    """--routine nosuch is bad usage: exit 2, naming the job's routines."""
    result = invoke("history", completed_job, "--routine", "nosuch")
    assert result.exit_code == 2
    assert "has no routine 'nosuch'" in result.stderr
    assert "'double', 'sink', 'source'" in result.stderr


def test_a_failed_job_can_be_cancelled(failed_job: str, workdir: Path) -> None:
    """cancel of a failed job records it cancelled, so it is no longer resumable."""
    result = invoke("cancel", failed_job, "--reason", "bad input")
    assert result.exit_code == 0, result.output
    assert load_job(workdir, failed_job).status == JobStatus.CANCELLED
    assert "nothing to resume" in invoke("resume", failed_job).stderr


def test_delete_with_yes_removes_the_job(failed_job: str, workdir: Path) -> None:
    """delete --yes forgets the job."""
    result = invoke("delete", failed_job, "--yes")
    assert result.exit_code == 0, result.output
    assert f"Job {failed_job} deleted." in result.stdout
    assert stored_jobs(workdir) == []


def test_delete_asks_first_and_keeps_the_job_on_no(failed_job: str, workdir: Path) -> None:
    """Without --yes, delete asks on stderr; answering no keeps the job (exit 1)."""
    result = CliRunner().invoke(build_cli(), ["delete", failed_job], input="n\n")
    assert result.exit_code == 1
    assert "Delete job" in result.stderr
    assert [j.job_id for j in stored_jobs(workdir)] == [failed_job]


def test_delete_of_an_unknown_job_exits_2(failed_job: str) -> None:
    """An id no job has: exit 2."""
    assert invoke("delete", "nosuch", "--yes").exit_code == 2


def test_prune_deletes_finished_jobs_older_than_the_age(
    failed_job: str, completed_job: str, workdir: Path
) -> None:
    """prune --older-than 1h deletes only finished jobs last updated before then."""
    age_jobs(workdir, 7200)
    write(workdir, "quick.yaml", QUICK_FLOW)
    recent = json.loads(invoke("run", "quick.yaml", "-q", "--json").stdout)["job_id"]
    result = invoke("prune", "--older-than", "1h", "--yes")
    assert result.exit_code == 0, result.output
    assert "Deleted 2 job(s)." in result.stdout
    assert [j.job_id for j in stored_jobs(workdir)] == [recent]


def test_prune_by_status(failed_job: str, completed_job: str, workdir: Path) -> None:
    """prune --status failed leaves the completed job."""
    result = invoke("prune", "--status", "failed", "--yes")
    assert result.exit_code == 0, result.output
    assert [j.job_id for j in stored_jobs(workdir)] == [completed_job]


def test_prune_with_a_bad_age_is_bad_usage(completed_job: str) -> None:
    """--older-than soon: exit 2 with an example of an age."""
    result = invoke("prune", "--older-than", "soon", "--yes")
    assert result.exit_code == 2
    assert "such as 3600, 30m, 12h or 7d" in result.stderr


def test_prune_of_nothing_deletes_nothing(completed_job: str, workdir: Path) -> None:
    """No job older than a week: nothing deleted, nothing asked."""
    result = invoke("prune", "--older-than", "7d")
    assert result.exit_code == 0
    assert "nothing deleted" in result.stdout
    assert len(stored_jobs(workdir)) == 1


SKIPPING_TASKS = """\
from flowforge import Skip


def check():
    raise Skip("nothing new today")


def report():
    return "report"
"""

SKIPPING_FLOW = """\
flow_id: skipping
tasks:
  check: {function: "skipping_tasks:check"}
  report: {function: "skipping_tasks:report"}
"""


def test_status_shows_a_task_that_skipped_itself_as_skipped(workdir: Path) -> None:
    """A task that raised Skip shows 'skipped' in the table and task_status in JSON."""
    write(workdir, "skipping_tasks.py", SKIPPING_TASKS)
    write(workdir, "skipping.yaml", SKIPPING_FLOW)
    run = invoke("run", "skipping.yaml", "-q", "--json")
    assert run.exit_code == 0, run.output
    job_id = str(json.loads(run.stdout)["job_id"])
    table = invoke("status", job_id)
    rows = {
        line.split()[0]: line.split()[1]
        for line in table.stdout.splitlines()
        if line.split()[:1] in (["check"], ["report"])
    }
    assert rows == {"check": "skipped", "report": "succeeded"}
    routines = json.loads(invoke("status", job_id, "--json").stdout)["routines"]
    assert routines["check"]["task_status"] == "skipped"
    assert routines["check"]["status"] == "completed"


SECRET_URL = "postgresql://app:s3cret@127.0.0.1:1/jobs"


def test_store_urls_are_printed_without_their_password(workdir: Path) -> None:
    """A refused PostgreSQL store and a dry run name the store with the password hidden."""
    refused = invoke("jobs", "--store", SECRET_URL)
    assert refused.exit_code == 2
    assert "s3cret" not in refused.output and "postgresql://app" in refused.output
    write(workdir, "quick.yaml", QUICK_FLOW)
    dry = invoke("run", "quick.yaml", "--dry-run", "--store", SECRET_URL)
    assert dry.exit_code == 0, dry.output
    assert "postgresql://app:***@127.0.0.1:1/jobs" in dry.output and "s3cret" not in dry.output


def test_a_resume_command_suggests_the_environment_for_a_url_with_a_password() -> None:
    """resume_options never puts a password on a command line; FLOWFORGE_STORE instead."""
    options = resume_options(SECRET_URL, ())
    job = JobState(flow_id="f", status=JobStatus.PAUSED)
    command = resume_invocation(job, options)
    assert command is not None and "s3cret" not in command and "--store" not in command
    assert command.startswith("FLOWFORGE_STORE='postgresql://app:***@127.0.0.1:1/jobs' flowforge ")
    assert resume_options("sqlite:///jobs.db", ()) == ("--store", "sqlite:///jobs.db")


def test_a_bad_store_url_is_a_usage_error(workdir: Path) -> None:
    """--store with an unknown scheme exits 2 listing the accepted forms."""
    result = invoke("status", "abc", "--store", "mysql://db/jobs")
    assert result.exit_code == 2
    assert "A store URL is one of" in result.output


def test_pause_of_a_queued_job_pauses_it_in_the_store(workdir: Path) -> None:
    """pause of a job that runs nowhere marks it paused; pausing it again exits 1."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    job_id = invoke("submit", "quick.yaml").stdout.strip()
    paused = invoke("pause", job_id, "--reason", "not now")
    assert paused.exit_code == 0, paused.output
    assert f"Job {job_id} paused." in paused.stdout
    job = load_job(workdir, job_id)
    assert (job.status, job.reason) == (JobStatus.PAUSED, "not now")
    again = invoke("pause", job_id)
    assert again.exit_code == 1 and "paused" in again.output
