"""``flowforge resume JOB``: continue a paused, interrupted or failed job from the store."""

from __future__ import annotations

from collections.abc import Sequence

import click

from ..job_state import JobState, JobStatus
from ..store import Store
from ._common import (
    EXIT_FAILED,
    CommandError,
    allow_option,
    example,
    guarded,
    job_argument,
    json_option,
    param_option,
    quiet_option,
    store_option,
)
from ._loading import parse_assignment
from ._running import RunSettings, resume_options, run_job
from ._store import load_job, open_store, stored_flow


@click.command(
    "resume",
    short_help="Continue a paused or failed job.",
    epilog=example("flowforge resume 3f2a", "flowforge resume 3f2a --param limit=10"),
)
@job_argument
@store_option
@allow_option
@click.option(
    "--path",
    multiple=True,
    metavar="DIR",
    help="A directory with the flow's routine modules (repeatable); only needed for "
    "jobs stored by older versions, which did not record where their routines came from.",
)
@param_option
@json_option("the result")
@quiet_option
@guarded
def resume(
    job_id: str,
    store: str,
    allow: Sequence[str],
    path: Sequence[str],
    param: Sequence[str],
    as_json: bool,
    quiet: bool,
) -> None:
    """Continue a paused, interrupted or failed job from the store, to its end.

    The flow is rebuilt from the definition the store kept when the job
    started, importing its routine classes from where they came from then.
    Work done before the pause is not done again. --param changes the
    entry's parameters of a job whose entry call has not succeeded yet
    (for example one that failed on a bad parameter). Exit status as for
    run.
    """
    with open_store(store, must_exist=True) as job_store:
        job = load_job(job_store, job_id)
        if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            raise CommandError(
                f"Job {job.job_id} is {job.status}: there is nothing to resume.", EXIT_FAILED
            )
        flow = stored_flow(job_store, job, allow, path)
    _override_params(job, param)

    def start(store_: Store) -> JobState:
        return flow.resume(job, store=store_)

    options = resume_options(store, allow) + tuple(o for p in path for o in ("--path", p))
    run_job(flow, job, start, RunSettings(store, as_json, quiet, options), "Resuming")


def _override_params(job: JobState, param: Sequence[str]) -> None:
    if not param:
        return
    params = dict(parse_assignment(p, "--param") for p in param)
    if not job.update_entry_params(params):
        raise CommandError(
            f"--param: the entry of job {job.job_id} has already run, so its parameters "
            "can no longer change. Start a new job with: flowforge run FLOW --param ..."
        )


COMMANDS = (resume,)
