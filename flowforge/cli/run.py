"""``flowforge run FLOW``: run a job of a flow file, with live progress, then a summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import attrs
import click

from ..job_state import JobState
from ..store import Store
from ..validation import Problem
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    allow_option,
    err,
    example,
    flow_argument,
    guarded,
    json_option,
    param_option,
    quiet_option,
    store_option,
)
from ._describe import executor_text, problem_report
from ._loading import (
    EXECUTOR_CHOICES,
    FlowFile,
    apply_executor,
    apply_settings,
    entry_params,
    open_flow,
    resolve_entry,
)
from ._running import RunSettings, resume_options, run_job
from ._store import shown


@click.command(
    "run",
    short_help="Run a job of a flow file.",
    epilog=example(
        "flowforge run examples/report_flow.yaml",
        "flowforge run flow.yaml --param path=data.csv --executor thread --workers 8",
    ),
)
@flow_argument
@param_option
@click.option(
    "--params-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Entry parameters from a JSON or YAML mapping.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="ROUTINE.KEY=VALUE",
    help="Set a routine's config for this run (repeatable).",
)
@click.option(
    "--entry", metavar="ROUTINE[.SLOT]", help="Start at this routine instead of the flow file's."
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTOR_CHOICES),
    help="Run handlers one at a time, on a thread pool, in worker processes, or on Dask.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Threads or processes in the pool.")
@store_option
@allow_option
@click.option(
    "--dry-run", is_flag=True, help="Show what would run, and check the flow, without running it."
)
@json_option("the result")
@quiet_option
@guarded
def run(
    flow_file: str,
    param: Sequence[str],
    params_file: str | None,
    settings: Sequence[str],
    entry: str | None,
    executor: str | None,
    workers: int | None,
    store: str,
    allow: Sequence[str],
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run a job of FLOW_FILE with live progress, then print a summary.

    The job starts at the flow file's entry (or --entry) with its params,
    overridden by --params-file and then --param. It is checkpointed in the
    store as it runs. Ctrl-C or SIGTERM pauses it (running calls finish
    first), saves it and prints the command that resumes it; a second signal
    stops at once, and the job resumes from its last checkpoint.

    Exit status: 0 completed, 1 failed or cancelled, 2 bad usage or an
    invalid flow, 3 the job paused itself, 130 paused with Ctrl-C or SIGTERM.
    """
    loaded = open_flow(flow_file, allow)
    flow = loaded.flow
    apply_settings(flow, settings)
    apply_executor(flow, executor, workers)
    routine_id, slot = resolve_entry(flow, entry)
    params = entry_params(flow, routine_id, param, params_file)
    problems = flow.validate(routine_id, params=params)
    if dry_run:
        _dry_run(loaded, routine_id, slot, params, problems, store, as_json)
    if any(p.severity == "error" for p in problems):
        raise CommandError(problem_report(flow_file, problems))
    if problems and not (quiet or as_json):
        err(problem_report(flow_file, problems))
    job = JobState(flow_id=flow.flow_id)

    def start(job_store: Store) -> JobState:
        return flow.execute(routine_id, params, entry_slot=slot, job_state=job, store=job_store)

    run_job(flow, job, start, RunSettings(store, as_json, quiet, resume_options(store, allow)))


def _dry_run(
    loaded: FlowFile,
    routine_id: str,
    slot: str | None,
    params: dict[str, Any],
    problems: Sequence[Problem],
    store: str,
    as_json: bool,
) -> NoReturn:
    flow = loaded.flow
    plan = {
        "flow_id": flow.flow_id,
        "flow_file": str(loaded.path),
        "entry": {"routine_id": routine_id, "slot": slot, "params": params},
        "executor": flow.executor.settings(),
        "store": shown(store),
        "routines": {
            rid: f"{type(r).__module__}:{type(r).__qualname__}" for rid, r in flow.routines.items()
        },
        "connections": len(flow.connections),
        "problems": [attrs.asdict(p) for p in problems],
    }
    if as_json:
        click.echo(json.dumps(plan, indent=2))
    else:
        where = routine_id + (f".{slot}" if slot else "")
        click.echo(
            f"Dry run: nothing is executed and the store is not touched.\n\n"
            f"Would run flow '{flow.flow_id}' from {loaded.path}\n"
            f"  entry        {where}\n  params       {json.dumps(params)}\n"
            f"  executor     {executor_text(flow)}\n  store        {shown(store)}\n"
            f"  routines     {', '.join(flow.routines)}\n"
            f"  connections  {len(flow.connections)}"
        )
        if problems:
            click.echo("\n" + problem_report(str(loaded.path), problems))
    has_errors = any(p.severity == "error" for p in problems)
    sys.exit(EXIT_USAGE if has_errors else EXIT_OK)


COMMANDS = (run,)
