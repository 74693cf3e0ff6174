"""``flowforge jobs|status|history|pause|cancel|delete|prune``: the jobs in the store.

``pause`` and ``cancel`` go through the store: a job running in any process
sharing it stops within a second; one that runs nowhere is changed in the
store directly.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import click

from ..errors import JobStateError
from ..flow import Flow
from ..job_state import JobState, JobStatus
from ..store import FINISHED, JobSummary, Lease, Store
from ..store._lease import stamp
from ._common import (
    EXIT_FAILED,
    CommandError,
    example,
    guarded,
    job_argument,
    json_option,
    store_option,
)
from ._describe import job_summary, print_job, print_table, when
from ._running import resume_invocation, resume_options
from ._store import find_job_id, load_job, no_store_yet, open_store, shown, stored_flow

STATUSES = [str(s) for s in JobStatus]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@click.command(
    "jobs",
    short_help="List the jobs in the store.",
    epilog=example("flowforge jobs --status paused"),
)
@store_option
@click.option("--flow-id", help="Only this flow's jobs.")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs with this status.")
@json_option("the jobs")
@guarded
def jobs(store: str, flow_id: str | None, status: str | None, as_json: bool) -> None:
    """List the jobs in the store, oldest first."""
    if no_store_yet(store):
        click.echo("[]" if as_json else f"No jobs: there is no store at {shown(store)} yet.")
        return
    with open_store(store, readonly=True) as job_store:
        found = job_store.list_jobs(flow_id=flow_id, status=status)
    if as_json:
        click.echo(json.dumps([_listing(j) for j in found], indent=2))
    elif not found:
        click.echo(f"No jobs in {shown(store)} match.")
    else:
        rows = [
            [
                j.job_id,
                str(j.flow_id),
                str(j.status),
                when(j.created_at),
                when(j.updated_at),
                f"{j.pending:,}",
            ]
            for j in found
        ]
        print_table(["JOB", "FLOW", "STATUS", "CREATED", "UPDATED", "PENDING"], rows, "lllllr")


def _listing(job: JobSummary) -> dict[str, Any]:
    data = attrs.asdict(job)
    data["status"] = str(job.status)
    return data


@click.command("status", short_help="Show one job.", epilog=example("flowforge status 3f2a"))
@job_argument
@store_option
@json_option("the job")
@guarded
def status(job_id: str, store: str, as_json: bool) -> None:
    """Show one job: status, times, each routine's calls and stats, errors, how to resume.

    JOB is a job id, or any prefix of one that names a single job. The
    routines are listed in flow order; a failed job shows the traceback of
    the call that failed it.
    """
    with open_store(store, must_exist=True, readonly=True) as job_store:
        job = load_job(job_store, job_id)
        flow, trouble = _rebuilt(job_store, job)
        lease = job_store.lease(job.job_id)
    live = lease is not None and lease.live()
    command = None if live else resume_invocation(job, resume_options(store, ()))
    if as_json:
        data = job_summary(job, flow, command)
        data["resume_problem"] = trouble if command else None
        data["lease"] = None if lease is None else {**attrs.asdict(lease), "live": live}
        click.echo(json.dumps(data, indent=2))
        return
    print_job(job, flow, command)
    if lease is not None:
        click.echo(f"\n{_runner_text(lease)}")
    if command and trouble:
        click.echo(f"\nNote: the flow cannot be rebuilt here, so resuming needs more:\n{trouble}")


def _runner_text(lease: Lease) -> str:
    if lease.live():
        return (
            f"Running in {lease.owner} since {stamp(lease.since)} (last heartbeat "
            f"{stamp(lease.heartbeat_at)}; its lease expires {stamp(lease.expires_at)} unless "
            f"renewed). Stop it from here with: flowforge pause {lease.job_id}"
        )
    return (
        f"Its runner {lease.owner} stopped heartbeating at {stamp(lease.heartbeat_at)}; its "
        f"lease expired {stamp(lease.expires_at)}, so the job can be resumed."
    )


def _rebuilt(store: Store, job: JobState) -> tuple[Flow | None, str | None]:
    """The job's flow from the store, or why it cannot be rebuilt in this process."""
    try:
        return stored_flow(store, job), None
    except CommandError as exc:
        return None, str(exc)


@click.command(
    "history",
    short_help="Show what a job emitted.",
    epilog=example("flowforge history 3f2a --routine parse --limit 5"),
)
@job_argument
@store_option
@click.option("--routine", help="Only this routine.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Show the latest N entries.",
)
@json_option("the entries")
@guarded
def history(job_id: str, store: str, routine: str | None, limit: int, as_json: bool) -> None:
    """Show what a job's routines emitted (the job's history), latest last.

    A job keeps its latest entries only (the flow's retention); the count
    of older ones is shown. An unknown --routine exits 2, listing the
    routines the job has.
    """
    with open_store(store, must_exist=True, readonly=True) as job_store:
        job = load_job(job_store, job_id)
    if routine is not None:
        _check_routine(job, routine)
    records = job.get_execution_history(routine)[-limit:] if limit else []
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in records], indent=2, default=str))
        return
    rows = [
        [when(r.timestamp), r.routine_id, r.event_name, _clip(json.dumps(r.data, default=str), 70)]
        for r in records
    ]
    if rows:
        print_table(["TIME", "ROUTINE", "EVENT", "DATA"], rows)
    elif limit == 0:
        click.echo("Nothing shown: --limit 0 asks for no entries.")
    else:
        click.echo(f"No history{f' for routine {routine!r}' if routine else ''}.")
    if job.history_dropped:
        click.echo(
            f"({job.history_dropped:,} older entries were not kept; see the flow's retention.)"
        )


def _check_routine(job: JobState, routine: str) -> None:
    known = sorted(set(job.routine_ids()) | {r.routine_id for r in job.get_execution_history()})
    if routine not in known:
        names = ", ".join(repr(k) for k in known) or "none yet"
        raise CommandError(
            f"--routine {routine}: job {job.job_id} has no routine '{routine}'. "
            f"Its routines are: {names}."
        )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def control_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``pause`` and ``cancel``: ``--reason`` and ``--wait``."""
    command = click.option(
        "--wait",
        "wait_seconds",
        type=click.FloatRange(min=0),
        default=10.0,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for a running job to stop (0: do not wait).",
    )(command)
    return click.option("--reason", help="Why, for the record.")(command)


@click.command(
    "pause",
    short_help="Pause a job, wherever it runs.",
    epilog=example("flowforge pause 3f2a --reason 'maintenance'"),
)
@job_argument
@store_option
@control_options
@guarded
def pause(job_id: str, store: str, reason: str | None, wait_seconds: float) -> None:
    """Pause a running or queued job; resume it later with flowforge resume.

    A job running in any process that shares the store stops within a
    second (running calls finish first); this waits for it. A job that
    runs nowhere (queued, or left running by a process that died) is
    marked paused in the store.
    """
    _control(job_id, store, "pause", reason or "paused from the command line", wait_seconds)


@click.command(
    "cancel",
    short_help="Cancel a job, wherever it runs.",
    epilog=example("flowforge cancel 3f2a --reason 'bad input file'"),
)
@job_argument
@store_option
@control_options
@guarded
def cancel(job_id: str, store: str, reason: str | None, wait_seconds: float) -> None:
    """Cancel a job so it is not resumed: running, queued, paused, interrupted or failed.

    A job running in any process that shares the store stops within a
    second; this waits for it. Otherwise the store records it cancelled.
    """
    _control(job_id, store, "cancel", reason or "cancelled from the command line", wait_seconds)


def _control(job_id: str, store: str, action: str, reason: str, wait_seconds: float) -> None:
    done = "paused" if action == "pause" else "cancelled"
    with open_store(store, must_exist=True) as job_store:
        full = find_job_id(job_store, job_id)
        status = job_store.load(full).status
        if status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            raise CommandError(f"Job {full} is already {status}; it cannot be {done}.", EXIT_FAILED)
        try:
            asked = getattr(job_store, f"request_{action}")(full, reason)
        except JobStateError as exc:
            raise CommandError(str(exc), EXIT_FAILED) from None
        if not asked:
            click.echo(f"Job {full} {done}.")
            return
        lease = job_store.lease(full)
        owner = lease.owner if lease is not None else "its runner"
        click.echo(f"Job {full} runs in {owner}: asked it to {action}.", err=True)
        stopped = _wait_stopped(job_store, full, wait_seconds)
    if stopped is None:
        click.echo(f"Job {full}: {action} requested; it has not stopped yet.")
    else:
        click.echo(f"Job {full} {stopped}.")


def _wait_stopped(store: Store, job_id: str, seconds: float) -> str | None:
    """The job's status once its runner let it go, or ``None`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        lease = store.lease(job_id)
        if lease is None or not lease.live():
            return str(store.load(job_id).status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


@click.command(
    "delete", short_help="Delete a job from the store.", epilog=example("flowforge delete 3f2a")
)
@job_argument
@store_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@guarded
def delete(job_id: str, store: str, yes: bool) -> None:
    """Delete a job and everything stored with it (its history, errors, pending messages).

    Asks first unless --yes. A job still running in another process would
    be lost: cancel or pause it there first.
    """
    with open_store(store, must_exist=True) as job_store:
        job = load_job(job_store, job_id)
        warning = " It is marked running." if job.status == JobStatus.RUNNING else ""
        if not yes:
            click.confirm(
                f"Delete job {job.job_id} ({job.status}) of flow '{job.flow_id}'?{warning}",
                abort=True,
                err=True,
            )
        job_store.delete(job.job_id)
    click.echo(f"Job {job.job_id} deleted.")


@click.command(
    "prune",
    short_help="Delete old finished jobs.",
    epilog=example("flowforge prune --older-than 7d --status failed --yes"),
)
@store_option
@click.option(
    "--older-than",
    default="0",
    show_default=True,
    metavar="AGE",
    help="Only jobs not updated for AGE: seconds, or a number with s, m, h, d or w (30d).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only jobs with this status (repeatable; default: completed, failed, cancelled).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@guarded
def prune(store: str, older_than: str, statuses: Sequence[str], yes: bool) -> None:
    """Delete old jobs: those with a --status (default: finished) not updated for --older-than.

    Says how many jobs match and asks first, unless --yes.
    """
    seconds = parse_age(older_than)
    wanted = tuple(statuses) or tuple(str(s) for s in FINISHED)
    if no_store_yet(store):
        click.echo(f"No jobs: there is no store at {shown(store)} yet.")
        return
    with open_store(store) as job_store:
        cutoff = time.time() - seconds
        doomed = [j for j in job_store.list_jobs(status=wanted) if j.updated_at <= cutoff]
        if not doomed:
            click.echo("No jobs match; nothing deleted.")
            return
        if not yes:
            click.confirm(
                f"Delete {len(doomed)} job(s) ({', '.join(wanted)})?", abort=True, err=True
            )
        deleted = job_store.prune(seconds, wanted)
    click.echo(f"Deleted {deleted} job(s).")


def parse_age(text: str) -> float:
    """``--older-than``: seconds, or a number with a unit (``90s``, ``30m``, ``12h``, ``7d``)."""
    match = _DURATION.match(text)
    if match is None:
        raise CommandError(
            f"--older-than expects an age such as 3600, 30m, 12h or 7d, got {text!r}."
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


COMMANDS = (jobs, status, history, pause, cancel, delete, prune)
