"""Jobs and flows in words: the summaries, tables and graphs the commands print.

Each job or flow has one plain-data form (what ``--json`` prints) and one
text form. On a terminal the text form is drawn with rich (coloured status,
tables, highlighted tracebacks); piped, it is plain text, stable for tools.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .._middleware import describe
from ..connection import Connection
from ..error_handler import ErrorHandler
from ..flow import Flow
from ..job_state import ErrorInfo, JobState, JobStatus, RoutineRun
from ..routine import Routine
from ..task import Task, tasks_of
from ..validation import Problem
from ._common import console, on_terminal
from ._loading import FlowFile

STATUS_STYLES = {
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "paused": "yellow",
    "running": "cyan",
    "pending": "dim",
    "succeeded": "green",
    "skipped": "yellow",
}
_MISSING_PARAM = re.compile(r"needs parameter '([^']+)'")


def routine_run(job: JobState, routine_id: str) -> RoutineRun:
    """A routine's run in ``job`` (a fresh, pending one if it has none yet)."""
    return job.runs.get(routine_id) or RoutineRun()


def routine_order(job: JobState, flow: Flow | None) -> list[str]:
    """The routines in flow order when the flow is known, then any others the job has."""
    ids = list(flow.routines) if flow is not None else []
    return ids + [rid for rid in job.routine_ids() if rid not in ids]


# -- jobs as data ---------------------------------------------------------------------


def job_summary(
    job: JobState, flow: Flow | None = None, resume: str | None = None
) -> dict[str, Any]:
    """A job as plain data: what ``--json`` prints."""
    return {
        "job_id": job.job_id,
        "flow_id": job.flow_id,
        "status": str(job.status),
        "reason": job.reason,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "elapsed": job.tracker.elapsed,
        "pending": len(job.pending),
        "errors_total": job.errors_total,
        "skipped_total": job.skipped_total,
        "routines": {rid: _routine_summary(job, rid) for rid in routine_order(job, flow)},
        "errors": [_error_summary(job, e) for e in job.errors],
        "error": None if job.error is None else _error_summary(job, job.error),
        "resume_command": resume,
    }


def _routine_summary(job: JobState, routine_id: str) -> dict[str, Any]:
    run = routine_run(job, routine_id)
    perf = job.tracker.get_routine_performance(routine_id)
    summary = {
        "status": str(run.status),
        "activations": run.activations,
        "failures": run.failures,
        "skipped": run.skipped,
        "calls": perf["total_executions"],
        "avg_execution_time": perf["avg_execution_time"],
        "stats": dict(run.stats),
    }
    if routine_id in job.task_runs:
        # A task that skipped itself returned normally: its routine completed, the task did not.
        summary["task_status"] = job.task_status(routine_id)
    return summary


def _error_summary(job: JobState, error: ErrorInfo) -> dict[str, Any]:
    return {
        "routine_id": error.routine_id,
        "slot": error.slot,
        "error_type": error.error_type,
        "message": error.message,
        "strategy": error.strategy,
        "attempts": error.attempts,
        "timestamp": error.timestamp,
        "traceback": error.traceback,
        "hint": entry_param_hint(job, error),
    }


def entry_param_hint(job: JobState, error: ErrorInfo) -> str | None:
    """For an entry call that lacked a parameter: how to give it on the command line."""
    name = _missing_entry_param(job, error)
    if name is None or job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
        return None
    return (
        f"The entry '{error.routine_id}' needs parameter '{name}': give it with "
        f"--param {name}=VALUE (a failed job: flowforge resume {job.job_id} "
        f"--param {name}=VALUE)."
    )


def _missing_entry_param(job: JobState, error: ErrorInfo) -> str | None:
    entry = job.entry or {}
    found = _MISSING_PARAM.search(error.message)
    if found is None or (error.routine_id, error.slot) != (
        entry.get("routine_id"),
        entry.get("slot"),
    ):
        return None
    return found.group(1)


def shown_message(job: JobState, error: ErrorInfo) -> str:
    """An error's message for the command line: the entry's missing parameter names --param."""
    name = _missing_entry_param(job, error)
    if name is None:
        return error.message
    # The engine's advice (param_mapping) is for connections; the entry's params come
    # from the command line.
    head = error.message.split(" Map a source parameter")[0]
    return f"{head} Give it with --param {name}=VALUE."


# -- jobs as text ---------------------------------------------------------------------


def print_job(job: JobState, flow: Flow | None = None, resume: str | None = None) -> None:
    """Print a job: rich on a terminal, :func:`describe_job` text when piped."""
    if on_terminal():
        console().print(render_job(job, flow, resume))
    else:
        click.echo(describe_job(job, flow, resume))


def describe_job(job: JobState, flow: Flow | None = None, resume: str | None = None) -> str:
    """A job as text: headline, times, per-routine table, latest errors, how to resume."""
    lines = [_headline(job), ""]
    lines += [f"  {label:<9} {value}" for label, value in _facts(job)]
    rows = _routine_rows(job, flow)
    lines += ["", table(["ROUTINE", "STATUS", "DONE", "FAILED", "AVG MS", "STATS"], rows, "llrrrl")]
    lines += _error_lines(job)
    if resume:
        lines += ["", "Resume it with:", f"  {resume}"]
    return "\n".join(lines)


def render_job(
    job: JobState, flow: Flow | None = None, resume: str | None = None
) -> RenderableType:
    """A job for a terminal: what :func:`describe_job` says, coloured, tracebacks highlighted."""
    status = str(job.status)
    headline = Text.assemble(
        f"Job {job.job_id} of flow '{job.flow_id}': ",
        (status, STATUS_STYLES.get(status, "")),
        f" ({_reason(job)})" if _reason(job) else "",
    )
    facts = Table.grid(padding=(0, 2))
    for label, value in _facts(job):
        facts.add_row(Text(f"  {label}", style="dim"), value)
    routines = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in zip(
        ("ROUTINE", "STATUS", "DONE", "FAILED", "AVG MS", "STATS"), "llrrrl", strict=True
    ):
        routines.add_column(name, justify="right" if justify == "r" else "left")
    for row in _routine_rows(job, flow):
        routines.add_row(row[0], Text(row[1], style=STATUS_STYLES.get(row[1], "")), *row[2:])
    parts: list[RenderableType] = [headline, facts, Text(""), routines]
    parts += _error_renderables(job)
    if resume:
        parts += [Text(""), Text("Resume it with:"), Text(f"  {resume}", style="bold")]
    return Group(*parts)


def _error_renderables(job: JobState) -> list[RenderableType]:
    parts: list[RenderableType] = []
    listed = _listed_errors(job)
    if listed:
        parts += [Text(""), Text("\n".join(listed), style="red")]
    failure = failing_error(job)
    if failure is not None and failure.traceback:
        parts += [
            Text(""),
            Text(_traceback_title(failure)),
            Syntax(
                failure.traceback.rstrip(), "pytb", theme="ansi_dark", background_color="default"
            ),
        ]
    return parts


def _headline(job: JobState) -> str:
    headline = f"Job {job.job_id} of flow '{job.flow_id}': {job.status}"
    reason = _reason(job)
    return headline + (f" ({reason})" if reason else "")


def _reason(job: JobState) -> str | None:
    if not job.reason or job.status == JobStatus.COMPLETED:
        return None
    if job.error is not None and job.status == JobStatus.FAILED:
        return f"{job.error.error_type}: {shown_message(job, job.error)}"
    return job.reason


def _facts(job: JobState) -> list[tuple[str, str]]:
    return [
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("elapsed", f"{job.tracker.elapsed:.2f} s"),
        ("pending", f"{len(job.pending):,} message(s)"),
        ("errors", f"{job.errors_total:,}"),
        ("skipped", f"{job.skipped_total:,}"),
    ]


def _routine_rows(job: JobState, flow: Flow | None) -> list[list[str]]:
    summary = job_summary(job, flow)["routines"]
    return [
        [
            rid,
            s.get("task_status", s["status"]),
            f"{s['activations']:,}",
            f"{s['failures']:,}",
            f"{s['avg_execution_time'] * 1000:.2f}",
            _compact(s["stats"]),
        ]
        for rid, s in summary.items()
    ]


def _error_lines(job: JobState) -> list[str]:
    listed = _listed_errors(job)
    lines = ["", *listed] if listed else []
    failure = failing_error(job)
    if failure is not None and failure.traceback:
        lines += ["", _traceback_title(failure)]
        lines += [f"  {line}" for line in failure.traceback.rstrip().splitlines()]
    return lines


def _listed_errors(job: JobState, limit: int = 5) -> list[str]:
    errors = job.errors[-limit:]
    if not errors:
        return []
    lines = [f"Errors ({job.errors_total:,}, latest {len(errors)}):"]
    for e in errors:
        first = (shown_message(job, e).splitlines() or [""])[0]
        lines.append(f"  {e.routine_id}.{e.slot}: {e.error_type}: {first} [{e.strategy}]")
        hint = entry_param_hint(job, e)
        if hint:
            lines.append(f"    hint: {hint}")
    return lines


def _traceback_title(failure: ErrorInfo) -> str:
    return f"Traceback of the failing call ({failure.routine_id}.{failure.slot}):"


def failing_error(job: JobState) -> ErrorInfo | None:
    """The error that failed the job, or else the latest one that stopped a call."""
    if job.error is not None:
        return job.error
    stops = [e for e in job.errors if e.strategy == "stop"]
    return stops[-1] if stops and job.status == JobStatus.FAILED else None


def _compact(data: Mapping[str, Any], width: int = 48) -> str:
    text = ", ".join(f"{k}={v}" for k, v in data.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> None:
    """Print rows as a table: rich on a terminal, :func:`table` text when piped."""
    if not on_terminal():
        click.echo(table(headers, rows, align))
        return
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for i, header in enumerate(headers):
        grid.add_column(header, justify="right" if align[i : i + 1] == "r" else "left")
    for row in rows:
        grid.add_row(*(Text(str(c), style=STATUS_STYLES.get(str(c), "")) for c in row))
    console().print(grid)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Rows as aligned columns; ``align`` has an ``l`` or ``r`` per column."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    out = []
    for row in [headers, *rows]:
        cells = [
            str(c).rjust(w) if align[i : i + 1] == "r" else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


# -- describing flows ---------------------------------------------------------------


def describe_flow(flow_file: FlowFile) -> str:
    """The flow as text: settings, routines (slots, events, policies, config), connections."""
    flow = flow_file.flow
    entry = flow.entry or {}
    lines = [f"Flow '{flow.flow_id}' ({flow_file.path})", ""]
    lines += [
        f"  executor       {executor_text(flow)}",
        f"  error handler  {_handler_text(flow.error_handler)}",
        f"  entry          {_entry_text(entry)}"
        if entry.get("routine_id") or not tasks_of(flow.routines)
        else "  entry          (none needed: every job starts every task; --param gives params)",
    ]
    if flow.middleware:
        lines.append(f"  middleware     {_middleware_text(flow.middleware)}")
    lines += ["", f"Routines ({len(flow.routines)})"]
    for rid, routine in flow.routines.items():
        lines += _routine_lines(rid, routine)
    lines += ["", f"Connections ({len(flow.connections)})"]
    lines += [f"  {_connection_text(c)}" for c in flow.connections]
    return "\n".join(lines)


def executor_text(flow: Flow) -> str:
    settings = flow.executor.settings()
    extra = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "kind")
    return str(settings["kind"]) + (f" ({extra})" if extra else "")


def _handler_text(handler: ErrorHandler) -> str:
    text = str(handler.strategy)
    if text == "retry":
        text += (
            f" (max_retries={handler.max_retries}, retry_delay={handler.retry_delay}, "
            f"retry_backoff={handler.retry_backoff})"
        )
    return text


def _entry_text(entry: Mapping[str, Any]) -> str:
    if not entry.get("routine_id"):
        return "(none: pass --entry)"
    where = str(entry["routine_id"]) + (f".{entry['slot']}" if entry.get("slot") else "")
    params = entry.get("params") or {}
    return where + (f" with {json.dumps(params)}" if params else "")


def _routine_lines(rid: str, routine: Routine) -> list[str]:
    cls = type(routine)
    lines = ["", f"  {rid}  ({cls.__module__}:{cls.__qualname__})"]
    if isinstance(routine, Task):
        after = ", ".join(routine.depends_on) or "nothing"
        fn = f"{routine.fn.__module__}:{getattr(routine.fn, '__qualname__', routine.fn)}"
        lines[1] = f"  {rid}  (task {fn}, after {after}, retries={routine.retries})"
    for name, slot in routine.slots.items():
        lines.append(f"    slot   {name} ({_strategy_text(slot.merge_strategy)})")
    for name, event in routine.events.items():
        params = "any" if event.params is None else ", ".join(event.params)
        lines.append(f"    event  {name}({params})")
    lines.append(f"    policy {_policy_text(routine)}")
    if routine.middleware:
        lines.append(f"    middleware {_middleware_text(routine.middleware)}")
    if routine.config:
        lines.append(f"    config {json.dumps(routine.config)}")
    return lines


def _middleware_text(middleware: tuple[Any, ...]) -> str:
    return ", ".join(repr(mw) if hasattr(mw, "config") else describe(mw) for mw in middleware)


def _strategy_text(strategy: Any) -> str:
    if isinstance(strategy, str):
        return strategy
    return f"merge function {getattr(strategy, '__qualname__', repr(strategy))}"


def _policy_text(routine: Routine) -> str:
    policy = routine.policy
    parts = [f"max_concurrency={policy.max_concurrency}"]
    if policy.timeout is not None:
        parts.append(f"timeout={policy.timeout}s")
    if policy.max_activations is not None:
        parts.append(f"max_activations={policy.max_activations}")
    if policy.error_handler is not None:
        parts.append(f"error handler {_handler_text(policy.error_handler)}")
    return ", ".join(parts)


def _connection_text(connection: Connection) -> str:
    event, slot = connection.event, connection.slot
    text = f"{event.routine_label()}.{event.name} -> {slot.routine_label()}.{slot.name}"
    if connection.param_mapping:
        text += f"  mapping {json.dumps(dict(connection.param_mapping))}"
    return text


def flow_graph(flow: Flow, fmt: str) -> str:
    """The flow as Mermaid (``fmt="mermaid"``) or Graphviz DOT (``"dot"``) text."""
    nodes = [(rid, type(r).__name__) for rid, r in flow.routines.items()]
    edges = [
        (c.event.routine_label(), c.slot.routine_label(), _edge_label(c)) for c in flow.connections
    ]
    lines = _mermaid(nodes, edges) if fmt == "mermaid" else _dot(flow.flow_id, nodes, edges)
    return "\n".join(lines) + "\n"


def _mermaid(nodes: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str, str]]) -> list[str]:
    lines = ["flowchart LR"]
    lines += [f'    {_mermaid_id(rid)}["{rid}<br/><small>{cls}</small>"]' for rid, cls in nodes]
    lines += [f'    {_mermaid_id(a)} -- "{label}" --> {_mermaid_id(b)}' for a, b, label in edges]
    return lines


def _dot(
    flow_id: str, nodes: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str, str]]
) -> list[str]:
    def quote(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)

    lines = [
        f"digraph {quote(flow_id)} {{",
        "    rankdir=LR;",
        "    node [shape=box, style=rounded];",
    ]
    labels = [(quote(rid), quote(rid + "\n" + cls)) for rid, cls in nodes]
    lines += [f"    {rid} [label={label}];" for rid, label in labels]
    lines += [f"    {quote(a)} -> {quote(b)} [label={quote(label)}];" for a, b, label in edges]
    return [*lines, "}"]


def _edge_label(connection: Connection) -> str:
    label = f"{connection.event.name} → {connection.slot.name}"
    if connection.param_mapping:
        label += " (" + ", ".join(f"{k}→{v}" for k, v in connection.param_mapping.items()) + ")"
    return label


def _mermaid_id(routine_id: str) -> str:
    # The prefix keeps ids clear of Mermaid keywords such as "end"; "-" is not allowed.
    return "r_" + routine_id.replace("-", "__")


# -- validation problems ----------------------------------------------------------------

_CONNECT_CALL = re.compile(r"flow\.connect\(([^,()]+), ([^,()]+), ([^,()]+), ([^,()]+)\)")


def file_hint(hint: str) -> str:
    """A :meth:`Flow.validate` hint in flow-file terms: ``flow.connect(...)`` as a connection."""

    def line(match: re.Match[str]) -> str:
        a, b, c, d = (_file_name(g) for g in match.groups())
        return f"add '{a}.{b} -> {c}.{d}' to the flow file's connections"

    return _CONNECT_CALL.sub(line, hint)


def _file_name(arg: str) -> str:
    arg = arg.strip()
    if arg.startswith("<") and arg.endswith(">"):
        return arg[1:-1].upper()
    return arg.strip("'\"")


def problem_report(path: str, problems: Sequence[Problem]) -> str:
    """Validation problems of a flow file, each with a hint in flow-file terms."""
    errors = sum(p.severity == "error" for p in problems)
    lines = [f"{path}: {errors} error(s), {len(problems) - errors} warning(s):"]
    for p in problems:
        lines += [f"  {p.severity}: {p.where}: {p.message}", f"         hint: {file_hint(p.hint)}"]
    return "\n".join(lines)
