"""The ``flowforge`` command: run flow files and steer their jobs from a terminal.

Commands (``flowforge COMMAND --help`` shows each one's options and an
example):

``run FLOW``
    Run a job of a flow file, with live progress, then a summary. Ctrl-C
    pauses the job, saves it, and prints the command that resumes it.
``validate FLOW``, ``show FLOW``, ``graph FLOW``
    Check a flow file (every problem, with hints), describe it, or draw it
    as Mermaid or Graphviz text.
``jobs``, ``status JOB``, ``history JOB``, ``resume JOB``, ``cancel JOB``
    List, inspect, continue and cancel the jobs in the store.

Jobs are kept in a store, by default the SQLite file ``flowforge.db`` in the
working directory (``--store PATH`` or the ``FLOWFORGE_STORE`` environment
variable choose another), so ``run`` then ``status`` just works. A job id may
be shortened to any prefix that names one job.

Where routine classes come from
    A flow file names its routine classes by import path
    (``report_routines:ReadOrders``). The command puts the flow file's
    directory first on ``sys.path`` and lets the flow import the modules and
    packages found there, so a flow file and the module beside it work
    together without installing anything. Other modules must be importable
    and allowed: ``--allow MODULE`` (repeatable) or ``FLOWFORGE_ALLOW``
    (names separated by commas). ``resume`` takes ``--path DIR`` for the
    same purpose, since a stored job does not know where its flow file was.

Flow-file parameters
    In the entry's ``params`` and in routine ``config``, the text
    ``${flow_dir}`` stands for the flow file's directory, so a flow file can
    name the data files beside it wherever it is run from.

Exit status
    0 the job completed; 1 it failed or was cancelled (or a command about a
    job failed); 2 bad usage, an invalid flow file, or an unknown job; 3 the
    job paused itself; 130 the job was paused with Ctrl-C.

Without the ``cli`` extra (click), ``flowforge`` says how to install it and
exits with status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import attrs

from . import __version__
from .connection import Connection
from .error_handler import ErrorHandler
from .errors import FlowForgeError, JobStateError, SerializationError, quoted
from .flow import Flow
from .job_state import ErrorInfo, JobState, JobStatus
from .routine import Routine
from .runtime.executors import make_executor
from .serialization import load_file
from .signals import job_started, routine_failed, routine_finished
from .store import JobSummary, SQLiteStore, StoreError
from .task import Task
from .validation import Problem

try:
    import click
except ImportError:  # the [cli] extra is not installed; main() says so
    click = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from types import FrameType

DEFAULT_STORE = "flowforge.db"
INSTALL_HINT = "flowforge: the command line needs the 'cli' extra: pip install 'flowforge[cli]'"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
FLOW_DIR = "${flow_dir}"
#: The executors ``--executor`` offers; ``--workers`` sizes the pools.
EXECUTOR_CHOICES = ("sequential", "thread", "process")
POOLS = ("thread", "process")


class CommandError(Exception):
    """A command cannot go on; ``main`` prints ``message`` and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- loading flow files ---------------------------------------------------------


@attrs.frozen
class FlowFile:
    """A loaded flow file and what the command needed to load it."""

    flow: Flow
    path: Path
    #: Modules beside the flow file that its routines come from.
    local_modules: tuple[str, ...]


def sibling_modules(directory: Path) -> tuple[str, ...]:
    """Names of the modules and packages in ``directory`` (importable once it is on sys.path)."""
    names = {p.stem for p in directory.glob("*.py") if p.stem.isidentifier()}
    names |= {
        p.parent.name for p in directory.glob("*/__init__.py") if p.parent.name.isidentifier()
    }
    return tuple(sorted(names))


def allowed_from(allow: Sequence[str]) -> tuple[str, ...]:
    """``--allow`` names plus those in ``FLOWFORGE_ALLOW`` (comma separated)."""
    from_env = os.environ.get("FLOWFORGE_ALLOW", "").replace(",", " ").split()
    return tuple(dict.fromkeys([*allow, *from_env]))


def add_search_path(directory: Path) -> tuple[str, ...]:
    """Put ``directory`` first on ``sys.path``; the module names found there."""
    text = str(directory)
    if text not in sys.path:
        sys.path.insert(0, text)
    return sibling_modules(directory)


def load_flow_file(path: str | os.PathLike[str], allow: Sequence[str] = ()) -> FlowFile:
    """Load a flow file, letting it import the modules beside it.

    Raises:
        SerializationError: the file is not a valid flow file; the message
            lists every problem with its place.
    """
    source = Path(path)
    directory = source.resolve().parent
    siblings = add_search_path(directory)
    allowed = (*siblings, *allowed_from(allow))
    flow = Flow.load(source, allowed_modules=allowed)
    used = {type(r).__module__.partition(".")[0] for r in flow.routines.values()}
    expand_flow_dir(flow, directory)
    return FlowFile(flow, source, tuple(m for m in siblings if m in used))


def expand_flow_dir(flow: Flow, directory: Path) -> None:
    """Replace ``${flow_dir}`` in the entry's params and in routine config."""
    if flow.entry is not None:
        flow.entry["params"] = _expand(flow.entry.get("params") or {}, str(directory))
    for routine in flow.routines.values():
        routine.config.update(_expand(routine.config, str(directory)))


def _expand(value: Any, directory: str) -> Any:
    if isinstance(value, str):
        return value.replace(FLOW_DIR, directory)
    if isinstance(value, dict):
        return {k: _expand(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, directory) for v in value]
    return value


def load_problems(error: SerializationError) -> list[str]:
    """The separate problems in a loading error's message, each as ``place: message``."""
    head, sep, rest = str(error).partition("\n  - ")
    return rest.split("\n  - ") if sep else [head]


def split_place(problem: str) -> dict[str, str]:
    """``{"where", "message"}`` from a loading problem that names its place."""
    place, sep, text = problem.partition(": ")
    if sep and place.startswith("flow") and " " not in place:
        return {"where": place, "message": text}
    return {"where": "flow", "message": problem}


def hint_for(problem: str) -> str | None:
    """A command-line hint for a loading problem, when there is one."""
    if "is not allowed to be imported" in problem:
        return (
            "Put the module next to the flow file, or allow it with --allow MODULE "
            "(or FLOWFORGE_ALLOW=MODULE)."
        )
    if "cannot import module" in problem:
        return "Check the module name; it must be next to the flow file or installed (see --allow)."
    if "unknown field(s)" in problem or "required field missing" in problem:
        return "See the flow-file reference for the keys each section takes."
    return None


def _open_flow(path: str, allow: Sequence[str]) -> FlowFile:
    try:
        return load_flow_file(path, allow)
    except SerializationError as exc:
        raise CommandError(_format_load_error(path, exc)) from None


def _format_load_error(path: str, error: SerializationError) -> str:
    problems = load_problems(error)
    lines = [f"{path}: cannot load the flow ({len(problems)} problem(s)):"]
    for problem in problems:
        lines.append(f"  error: {problem}")
        hint = hint_for(problem)
        if hint:
            lines.append(f"         hint: {hint}")
    return "\n".join(lines)


# -- parameters and overrides -----------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON if it parses (numbers, true, lists...), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    """Split ``key=value``; the value goes through :func:`parse_value`."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CommandError(f"{option} expects KEY=VALUE, got {text!r}. Example: {option} limit=10")
    return key.strip(), parse_value(value)


def entry_params(
    flow: Flow,
    routine_id: str,
    params: Sequence[str],
    params_file: str | None,
) -> dict[str, Any]:
    """The entry's params: the flow file's (same entry only), the params file, then ``--param``."""
    defaults = flow.entry or {}
    merged: dict[str, Any] = {}
    if defaults.get("routine_id") == routine_id:
        merged.update(defaults.get("params") or {})
    if params_file is not None:
        merged.update(_read_params_file(params_file))
    merged.update(parse_assignment(p, "--param") for p in params)
    return merged


def _read_params_file(path: str) -> dict[str, Any]:
    try:
        data = load_file(path)
    except SerializationError as exc:
        raise CommandError(f"--params-file: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError(
            f"--params-file {path}: expected a mapping of parameter names to values, got "
            f"{type(data).__name__}."
        )
    return data


def resolve_entry(flow: Flow, entry: str | None) -> tuple[str, str | None]:
    """``(routine_id, slot)`` from ``--entry ROUTINE[.SLOT]`` or the flow file's entry."""
    if entry is None:
        defaults = flow.entry or {}
        if defaults.get("routine_id") is None and any(
            isinstance(r, Task) for r in flow.routines.values()
        ):
            return "", None  # a flow of tasks: every job starts every task
        if defaults.get("routine_id") is None:
            raise CommandError(
                f"Flow '{flow.flow_id}' has no entry. Name the routine to start at with "
                f"--entry ROUTINE (one of {quoted(flow.routines)}), or add an 'entry:' section."
            )
        return defaults["routine_id"], defaults.get("slot")
    routine_id, _, slot = entry.partition(".")
    if routine_id not in flow.routines:
        raise CommandError(
            f"--entry {entry}: flow '{flow.flow_id}' has no routine '{routine_id}'. Its "
            f"routines are: {quoted(flow.routines)}."
        )
    return routine_id, slot or None


def apply_settings(flow: Flow, settings: Sequence[str]) -> None:
    """Apply ``--set ROUTINE.KEY=VALUE`` to the routines' config."""
    for text in settings:
        target, value = parse_assignment(text, "--set")
        routine_id, _, key = target.partition(".")
        routine = flow.get_routine(routine_id)
        if routine is None or not key:
            raise CommandError(
                f"--set {text}: expected ROUTINE.KEY=VALUE with ROUTINE one of "
                f"{quoted(flow.routines)}."
            )
        routine.set_config(**{key: value})


def apply_executor(flow: Flow, executor: str | None, workers: int | None) -> None:
    """Apply ``--executor`` and ``--workers``."""
    kind = executor or flow.executor.name
    if workers is not None and kind not in POOLS:
        raise CommandError("--workers needs a pool: add --executor thread (or process).")
    if executor is not None or workers is not None:
        default = getattr(flow.executor, "max_workers", None)
        flow.executor = make_executor(kind, workers or default)


# -- the store ----------------------------------------------------------------------


@contextlib.contextmanager
def open_store(path: str, *, must_exist: bool = False) -> Iterator[SQLiteStore]:
    """Open the job store at ``path``."""
    if must_exist and not Path(path).exists():
        raise CommandError(
            f"No job store at {path}: run a flow first (flowforge run FLOW), or point "
            "--store (or FLOWFORGE_STORE) at the store you used."
        )
    try:
        store = SQLiteStore(path)
    except (StoreError, OSError) as exc:
        raise CommandError(f"Cannot open the job store {path}: {exc}") from None
    with store:
        yield store


def find_job_id(store: SQLiteStore, prefix: str) -> str:
    """The full id of the one job whose id starts with ``prefix``."""
    ids = [j.job_id for j in store.list_jobs()]
    if prefix in ids:
        return prefix
    matches = [i for i in ids if i.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"No job '{prefix}' in the store. List the jobs with: flowforge jobs")
    raise CommandError(
        f"'{prefix}' names {len(matches)} jobs ({', '.join(sorted(matches)[:5])}...); "
        "give more of the id."
    )


def load_job(store: SQLiteStore, prefix: str) -> JobState:
    """The job named by ``prefix`` (see :func:`find_job_id`)."""
    job_id = find_job_id(store, prefix)
    try:
        return store.load(job_id)
    except (StoreError, SerializationError) as exc:
        raise CommandError(f"Cannot load job {job_id}: {exc}", EXIT_FAILED) from None


# -- running a job ----------------------------------------------------------------


class Progress:
    """Live progress of one job: messages processed per routine, errors, elapsed time.

    Signal receivers (on the job's thread) only count; :meth:`tick`, called
    from the main thread, redraws at most ``interval`` seconds apart: in
    place on a terminal, else as one plain line.
    """

    def __init__(self, flow: Flow, job: JobState, stream: IO[str], mode: str) -> None:
        self.flow = flow
        self.job = job
        self.stream = stream
        self.mode = mode
        self.interval = 0.1 if mode == "tty" else 1.0
        self.started = time.monotonic()
        self._last = self.started
        self._drawn = 0
        self.done = {rid: _state(job, rid).get("activations", 0) for rid in flow.routines}
        self.failed = {rid: _state(job, rid).get("failures", 0) for rid in flow.routines}

    def attach(self) -> None:
        """Start counting this flow's signals."""
        routine_finished.connect(self._on_finished, sender=self.flow, weak=False)
        routine_failed.connect(self._on_failed, sender=self.flow, weak=False)

    def detach(self) -> None:
        """Stop counting."""
        routine_finished.disconnect(self._on_finished, sender=self.flow)
        routine_failed.disconnect(self._on_failed, sender=self.flow)

    def _on_finished(self, sender: Any, *, job_state: JobState, routine_id: str, **_: Any) -> None:
        if job_state is self.job:
            self.done[routine_id] = self.done.get(routine_id, 0) + 1

    def _on_failed(self, sender: Any, *, job_state: JobState, routine_id: str, **_: Any) -> None:
        if job_state is self.job:
            self.failed[routine_id] = self.failed.get(routine_id, 0) + 1

    def tick(self) -> None:
        """Redraw if the last drawing is old enough."""
        now = time.monotonic()
        if self.mode != "off" and now - self._last >= self.interval:
            self._last = now
            self.draw(now)

    def say(self, message: str) -> None:
        """Write a line of its own; the next drawing starts below it."""
        self.stream.write(message + "\n")
        self.stream.flush()
        self._drawn = 0

    def close(self) -> None:
        """Draw the final numbers on a terminal."""
        if self.mode == "tty":
            self.draw(time.monotonic())

    def draw(self, now: float) -> None:
        """Write the current numbers."""
        elapsed = now - self.started
        pending = len(self.job.pending)
        errors = self.job.errors_total
        if self.mode == "tty":
            self._draw_block(elapsed, pending, errors)
        else:
            counts = ", ".join(
                f"{rid} {n}" + (f" ({self.failed[rid]} failed)" if self.failed.get(rid) else "")
                for rid, n in self.done.items()
            )
            self.stream.write(f"[{elapsed:6.1f}s] {counts} | pending {pending} | errors {errors}\n")
        self.stream.flush()

    def _draw_block(self, elapsed: float, pending: int, errors: int) -> None:
        width = max(map(len, self.done), default=0)
        lines = [
            f"{self.flow.flow_id} · job {self.job.job_id[:12]} · {elapsed:.1f} s · "
            f"{pending:,} pending · {errors:,} error(s)"
        ]
        for rid, n in self.done.items():
            failed = self.failed.get(rid, 0)
            lines.append(f"  {rid:<{width}} {n:>10,}" + (f"  {failed:,} failed" if failed else ""))
        clear = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.stream.write(clear + "\n".join(lines) + "\n")
        self._drawn = len(lines)


def _state(job: JobState, routine_id: str) -> dict[str, Any]:
    return job.routine_states.get(routine_id) or {}


def progress_mode(stream: IO[str], quiet: bool) -> str:
    """``"tty"`` (redraw in place), ``"lines"`` (plain lines) or ``"off"``."""
    if quiet:
        return "off"
    isatty = getattr(stream, "isatty", None)
    return "tty" if isatty is not None and isatty() else "lines"


class Interrupts:
    """Ctrl-C while a job runs: the first pauses it, a second stops the process at once."""

    def __init__(self, flow: Flow, job: JobState, say: Callable[[str], None]) -> None:
        self.flow = flow
        self.job = job
        self.say = say
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            self.say("Stopping now. The job resumes from its last checkpoint.")
            os._exit(EXIT_INTERRUPTED)
        self.say(
            f"Pausing job {self.job.job_id}: running calls finish first "
            "(Ctrl-C again to stop at once)."
        )
        self._pause()

    def on_started(self, sender: Any, *, job_state: JobState, **_: Any) -> None:
        """Pause a job that was interrupted before it had started."""
        if self.count and job_state is self.job:
            self._pause()

    def _pause(self) -> None:
        # Before the job has started, pause() finds no running job: on_started
        # pauses it then.
        with contextlib.suppress(JobStateError):
            self.flow.pause(self.job, reason="interrupted (Ctrl-C)")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT (from the main thread only) while the block runs."""
        job_started.connect(self.on_started, sender=self.flow, weak=False)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self) if main else None
        try:
            yield
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            job_started.disconnect(self.on_started, sender=self.flow)


@attrs.frozen
class RunSettings:
    """How ``run`` and ``resume`` report and where they keep the job."""

    store: str
    as_json: bool = False
    quiet: bool = False
    #: Options the resume command needs (``--store``, ``--path``, ``--allow``).
    resume_options: tuple[str, ...] = ()


def run_job(
    flow: Flow,
    job: JobState,
    start: Callable[[SQLiteStore], JobState],
    settings: RunSettings,
    verb: str = "Running",
) -> NoReturn:
    """Run ``start(store)`` with live progress and Ctrl-C handling, then report and exit."""
    progress = Progress(flow, job, sys.stderr, progress_mode(sys.stderr, settings.quiet))
    interrupts = Interrupts(flow, job, progress.say)
    if not settings.quiet:
        progress.say(
            f"{verb} job {job.job_id} of flow '{flow.flow_id}' (store "
            f"{settings.store}). Ctrl-C pauses it."
        )

    def work() -> JobState:
        with flow, open_store(settings.store) as store:
            store.save_flow(flow)
            return start(store)

    finished = watch(work, progress, interrupts)
    report_job(finished, flow, settings, interrupted=interrupts.count > 0)


def watch(work: Callable[[], JobState], progress: Progress, interrupts: Interrupts) -> JobState:
    """Run ``work`` on a worker thread while this thread draws progress and handles Ctrl-C.

    The job runs off the main thread so Ctrl-C never interrupts a handler:
    the main thread only draws and turns Ctrl-C into a pause.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["job"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="flowforge-job", daemon=True)
    progress.attach()
    try:
        with interrupts.installed():
            worker.start()
            while worker.is_alive():
                worker.join(0.05)
                progress.tick()
    finally:
        progress.detach()
    progress.close()
    return _result(outcome)


def _result(outcome: dict[str, Any]) -> JobState:
    error = outcome.get("error")
    if error is None:
        job: JobState = outcome["job"]
        return job
    if isinstance(error, CommandError):
        raise error
    if isinstance(error, (FlowForgeError, TypeError, ValueError, LookupError)):
        raise CommandError(f"error: {error}") from None
    raise error


def report_job(
    job: JobState, flow: Flow | None, settings: RunSettings, *, interrupted: bool
) -> NoReturn:
    """Print the summary (or JSON) of a job that stopped running, and exit by its status."""
    command = resume_invocation(job, settings.resume_options)
    if settings.as_json:
        click.echo(json.dumps(job_summary(job, flow, command), indent=2))
    else:
        click.echo(describe_job(job, flow, command))
    sys.exit(exit_status(job, interrupted))


def exit_status(job: JobState, interrupted: bool) -> int:
    """The exit status for a job that stopped running."""
    if job.status == JobStatus.COMPLETED:
        return EXIT_OK
    if job.status == JobStatus.PAUSED:
        return EXIT_INTERRUPTED if interrupted else EXIT_PAUSED
    return EXIT_FAILED


def resume_invocation(job: JobState, options: Sequence[str] = ()) -> str | None:
    """The command that resumes ``job``, or ``None`` if it cannot be resumed."""
    if job.status not in (JobStatus.PAUSED, JobStatus.FAILED, JobStatus.RUNNING):
        return None
    return shlex.join(["flowforge", "resume", job.job_id, *options])


def resume_options(store: str, flow_file: FlowFile | None, allow: Sequence[str]) -> tuple[str, ...]:
    """The options ``resume`` needs to find what ``run`` found."""
    options: list[str] = []
    if store != DEFAULT_STORE:
        options += ["--store", store]
    if flow_file is not None and flow_file.local_modules:
        options += ["--path", _shown_path(flow_file.path.resolve().parent)]
    for name in allow:
        options += ["--allow", name]
    return tuple(options)


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


# -- describing jobs ---------------------------------------------------------------


def job_summary(
    job: JobState, flow: Flow | None = None, resume: str | None = None
) -> dict[str, Any]:
    """A job as plain data: what ``--json`` prints."""
    routine_ids = list(flow.routines) if flow is not None else list(job.routine_states)
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
        "routines": {rid: _routine_summary(job, rid) for rid in routine_ids},
        "errors": [_error_summary(e) for e in job.errors],
        "resume_command": resume,
    }


def _routine_summary(job: JobState, routine_id: str) -> dict[str, Any]:
    state = _state(job, routine_id)
    perf = job.tracker.get_routine_performance(routine_id)
    return {
        "status": state.get("status", "pending"),
        "activations": state.get("activations", 0),
        "failures": state.get("failures", 0),
        "skipped": state.get("skipped", 0),
        "calls": perf["total_executions"],
        "avg_execution_time": perf["avg_execution_time"],
        "stats": state.get("stats", {}),
    }


def _error_summary(error: ErrorInfo) -> dict[str, Any]:
    return {
        "routine_id": error.routine_id,
        "slot": error.slot,
        "error_type": error.error_type,
        "message": error.message,
        "strategy": error.strategy,
        "attempts": error.attempts,
        "timestamp": error.timestamp,
    }


def describe_job(job: JobState, flow: Flow | None = None, resume: str | None = None) -> str:
    """A job as text: headline, times, per-routine table, latest errors, how to resume."""
    headline = f"Job {job.job_id} of flow '{job.flow_id}': {job.status}"
    if job.reason and job.status != JobStatus.COMPLETED:
        headline += f" ({job.reason})"
    lines = [headline, ""]
    lines += [
        f"  {label:<9} {value}"
        for label, value in (
            ("created", _when(job.created_at)),
            ("started", _when(job.started_at)),
            ("finished", _when(job.finished_at)),
            ("elapsed", f"{job.tracker.elapsed:.2f} s"),
            ("pending", f"{len(job.pending):,} message(s)"),
            ("errors", f"{job.errors_total:,}"),
            ("skipped", f"{job.skipped_total:,}"),
        )
    ]
    summary = job_summary(job, flow)["routines"]
    rows = [
        [
            rid,
            s["status"],
            f"{s['activations']:,}",
            f"{s['failures']:,}",
            f"{s['avg_execution_time'] * 1000:.2f}",
            _compact(s["stats"]),
        ]
        for rid, s in summary.items()
    ]
    lines += ["", table(["ROUTINE", "STATUS", "DONE", "FAILED", "AVG MS", "STATS"], rows, "llrrrl")]
    lines += _error_lines(job)
    if resume:
        lines += ["", "Resume it with:", f"  {resume}"]
    return "\n".join(lines)


def _error_lines(job: JobState, limit: int = 5) -> list[str]:
    errors = job.errors[-limit:]
    if not errors:
        return []
    lines = ["", f"Errors ({job.errors_total:,}, latest {len(errors)}):"]
    for e in errors:
        first = (e.message.splitlines() or [""])[0]
        lines.append(f"  {e.routine_id}.{e.slot}: {e.error_type}: {first} [{e.strategy}]")
    return lines


def _compact(data: Mapping[str, Any], width: int = 48) -> str:
    text = ", ".join(f"{k}={v}" for k, v in data.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


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
        f"  executor       {_executor_text(flow)}",
        f"  error handler  {_handler_text(flow.error_handler)}",
        f"  entry          {_entry_text(entry)}"
        if entry.get("routine_id") or not any(isinstance(r, Task) for r in flow.routines.values())
        else "  entry          (none needed: every job starts every task; --param gives params)",
        "",
        f"Routines ({len(flow.routines)})",
    ]
    for rid, routine in flow.routines.items():
        lines += _routine_lines(rid, routine)
    lines += ["", f"Connections ({len(flow.connections)})"]
    lines += [f"  {_connection_text(c)}" for c in flow.connections]
    return "\n".join(lines)


def _executor_text(flow: Flow) -> str:
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
    if routine.config:
        lines.append(f"    config {json.dumps(routine.config)}")
    return lines


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


# -- commands ------------------------------------------------------------------------


def run_command(
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
    store as it runs. Ctrl-C pauses it (running calls finish first), saves it
    and prints the command that resumes it.

    Exit status: 0 completed, 1 failed or cancelled, 2 bad usage or an
    invalid flow, 3 the job paused itself, 130 paused with Ctrl-C.
    """
    loaded = _open_flow(flow_file, allow)
    flow = loaded.flow
    apply_settings(flow, settings)
    apply_executor(flow, executor, workers)
    routine_id, slot = resolve_entry(flow, entry)
    params = entry_params(flow, routine_id, param, params_file)
    problems = flow.validate(routine_id, params=params)
    errors = [p for p in problems if p.severity == "error"]
    if dry_run:
        _dry_run(loaded, routine_id, slot, params, problems, store, as_json)
    if errors:
        raise CommandError(_problem_text(flow_file, problems))
    if problems and not (quiet or as_json):
        _err(_problem_text(flow_file, problems))
    job = JobState(flow_id=flow.flow_id)

    def start(job_store: SQLiteStore) -> JobState:
        return flow.execute(routine_id, params, entry_slot=slot, job_state=job, store=job_store)

    run_job(
        flow, job, start, RunSettings(store, as_json, quiet, resume_options(store, loaded, allow))
    )


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
        "store": store,
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
            f"  executor     {_executor_text(flow)}\n  store        {store}\n"
            f"  routines     {', '.join(flow.routines)}\n"
            f"  connections  {len(flow.connections)}"
        )
        if problems:
            click.echo("\n" + _problem_text(str(loaded.path), problems))
    has_errors = any(p.severity == "error" for p in problems)
    sys.exit(EXIT_USAGE if has_errors else EXIT_OK)


def _problem_text(path: str, problems: Sequence[Problem]) -> str:
    errors = sum(p.severity == "error" for p in problems)
    lines = [f"{path}: {errors} error(s), {len(problems) - errors} warning(s):"]
    for p in problems:
        lines += [f"  {p.severity}: {p.where}: {p.message}", f"         hint: {p.hint}"]
    return "\n".join(lines)


def validate_command(flow_file: str, allow: Sequence[str], strict: bool, as_json: bool) -> None:
    """Check FLOW_FILE and list every problem, each with its place and a hint.

    Loading problems (the file's structure, routine classes, connections)
    come first; once the file loads, the flow's own checks follow (join
    slots without sources, unconnected slots and events, routines the entry
    cannot reach). Exit status 2 if there is an error (with --strict, a
    warning too), else 0.
    """
    try:
        loaded = load_flow_file(flow_file, allow)
    except SerializationError as exc:
        problems = [
            {"severity": "error", **split_place(p), "hint": hint_for(p)} for p in load_problems(exc)
        ]
        _emit_validation(flow_file, problems, as_json, _format_load_error(flow_file, exc))
        sys.exit(EXIT_USAGE)
    found = loaded.flow.validate()
    problems = [attrs.asdict(p) for p in found]
    failing = [p for p in found if p.severity == "error" or strict]
    text = (
        _problem_text(flow_file, found)
        if found
        else f"{flow_file}: flow '{loaded.flow.flow_id}' is valid ({len(loaded.flow.routines)} "
        f"routines, {len(loaded.flow.connections)} connections)."
    )
    _emit_validation(flow_file, problems, as_json, text)
    sys.exit(EXIT_USAGE if failing else EXIT_OK)


def _emit_validation(
    flow_file: str, problems: list[dict[str, Any]], as_json: bool, text: str
) -> None:
    if as_json:
        valid = not any(p["severity"] == "error" for p in problems)
        click.echo(
            json.dumps({"flow_file": flow_file, "valid": valid, "problems": problems}, indent=2)
        )
    else:
        click.echo(text)


def show_command(flow_file: str, allow: Sequence[str], as_json: bool) -> None:
    """Describe FLOW_FILE: settings, routines (slots, events, policies, config), connections."""
    loaded = _open_flow(flow_file, allow)
    if as_json:
        click.echo(json.dumps(loaded.flow.serialize(), indent=2))
    else:
        click.echo(describe_flow(loaded))


def graph_command(flow_file: str, allow: Sequence[str], fmt: str, output: str | None) -> None:
    """Draw FLOW_FILE as Mermaid or Graphviz DOT text (offline; render it with any tool)."""
    text = flow_graph(_open_flow(flow_file, allow).flow, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        _err(f"Wrote {output}")


def jobs_command(store: str, flow_id: str | None, status: str | None, as_json: bool) -> None:
    """List the jobs in the store, oldest first."""
    if not Path(store).exists():
        click.echo("[]" if as_json else f"No jobs: there is no store at {store} yet.")
        return
    with open_store(store) as job_store:
        jobs = job_store.list_jobs(flow_id=flow_id, status=status)
    if as_json:
        click.echo(json.dumps([_listing(j) for j in jobs], indent=2))
    elif not jobs:
        click.echo(f"No jobs in {store} match.")
    else:
        rows = [
            [
                j.job_id,
                str(j.flow_id),
                str(j.status),
                _when(j.created_at),
                _when(j.updated_at),
                f"{j.pending:,}",
            ]
            for j in jobs
        ]
        click.echo(
            table(["JOB", "FLOW", "STATUS", "CREATED", "UPDATED", "PENDING"], rows, "lllllr")
        )


def _listing(job: JobSummary) -> dict[str, Any]:
    data = attrs.asdict(job)
    data["status"] = str(job.status)
    return data


def status_command(job_id: str, store: str, as_json: bool) -> None:
    """Show one job: status, times, each routine's calls and stats, latest errors.

    JOB is a job id, or any prefix of one that names a single job.
    """
    with open_store(store, must_exist=True) as job_store:
        job = load_job(job_store, job_id)
    command = resume_invocation(job, () if store == DEFAULT_STORE else ("--store", store))
    if as_json:
        click.echo(json.dumps(job_summary(job, None, command), indent=2))
    else:
        click.echo(describe_job(job, None, command))


def history_command(
    job_id: str, store: str, routine: str | None, limit: int, as_json: bool
) -> None:
    """Show what a job's routines emitted (the job's history), latest last.

    A job keeps its latest entries only (the flow's retention); the count
    of older ones is shown.
    """
    with open_store(store, must_exist=True) as job_store:
        job = load_job(job_store, job_id)
    records = job.get_execution_history(routine)[-limit:] if limit else []
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in records], indent=2, default=str))
        return
    rows = [
        [_when(r.timestamp), r.routine_id, r.event_name, _clip(json.dumps(r.data, default=str), 70)]
        for r in records
    ]
    click.echo(table(["TIME", "ROUTINE", "EVENT", "DATA"], rows) if rows else "No history.")
    if job.history_dropped:
        click.echo(
            f"({job.history_dropped:,} older entries were not kept; see the flow's retention.)"
        )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def resume_command(
    job_id: str, store: str, allow: Sequence[str], path: Sequence[str], as_json: bool, quiet: bool
) -> None:
    """Continue a paused, interrupted or failed job from the store, to its end.

    The flow is rebuilt from the definition the store kept. If its routine
    classes live next to its flow file, pass that directory with --path
    (the command printed when the job paused includes it). Work done before
    the pause is not done again. Exit status as for run.
    """
    with open_store(store, must_exist=True) as job_store:
        job = load_job(job_store, job_id)
        if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            raise CommandError(
                f"Job {job.job_id} is {job.status}: there is nothing to resume.", EXIT_FAILED
            )
        flow = _stored_flow(job_store, job, allow, path)

    def start(store_: SQLiteStore) -> JobState:
        return flow.resume(job, store=store_)

    options = resume_options(store, None, allow) + tuple(o for p in path for o in ("--path", p))
    run_job(flow, job, start, RunSettings(store, as_json, quiet, options), "Resuming")


def _stored_flow(
    store: SQLiteStore, job: JobState, allow: Sequence[str], path: Sequence[str]
) -> Flow:
    allowed: list[str] = list(allowed_from(allow))
    for directory in path:
        allowed += add_search_path(Path(directory).resolve())
    try:
        return store.load_flow(str(job.flow_id), allowed_modules=tuple(allowed))
    except SerializationError as exc:
        problems = "\n".join(f"  error: {p}" for p in load_problems(exc))
        raise CommandError(
            f"Cannot rebuild flow '{job.flow_id}' of job {job.job_id}:\n{problems}\n"
            "  hint: if its routines live next to its flow file, pass that directory: "
            "--path DIR (or allow their modules with --allow MODULE)."
        ) from None
    except StoreError as exc:
        raise CommandError(
            f"Cannot load flow '{job.flow_id}' of job {job.job_id}: {exc}", EXIT_FAILED
        ) from None


def cancel_command(job_id: str, store: str, reason: str | None) -> None:
    """Mark a paused or interrupted job cancelled, so it is not resumed.

    Only the store changes; a job running in another process is not
    stopped (press Ctrl-C there).
    """
    with open_store(store, must_exist=True) as job_store:
        job = load_job(job_store, job_id)
        if job.status.finished:
            raise CommandError(
                f"Job {job.job_id} is already {job.status}; only paused or interrupted jobs "
                "can be cancelled.",
                EXIT_FAILED,
            )
        mark_cancelled(job_store, job, reason or "cancelled from the command line")
    click.echo(f"Job {job.job_id} cancelled.")


def mark_cancelled(store: SQLiteStore, job: JobState, reason: str) -> None:
    """Record ``job`` as cancelled in ``store``."""
    job.status = JobStatus.CANCELLED
    job.reason = reason
    job.finished_at = time.time()
    store.save(job)


# -- wiring ---------------------------------------------------------------------------


def _err(message: str) -> None:
    click.echo(message, err=True)


def _guarded(command: Callable[..., None]) -> Callable[..., None]:
    """Turn :class:`CommandError` into a message on stderr and its exit status."""

    def call(**kwargs: Any) -> None:
        try:
            command(**kwargs)
        except CommandError as exc:
            _err(str(exc))
            sys.exit(exc.code)
        except FlowForgeError as exc:
            _err(f"error: {exc}")
            sys.exit(EXIT_USAGE)

    call.__doc__ = command.__doc__
    return call


def _example(*lines: str) -> str:
    # \b keeps click from rewrapping the example.
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)


def _store_option() -> click.Option:
    return click.Option(
        ["--store"],
        envvar="FLOWFORGE_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        metavar="PATH",
        help="The job store, an SQLite file (env: FLOWFORGE_STORE).",
    )


def _allow_option() -> click.Option:
    return click.Option(
        ["--allow"],
        multiple=True,
        metavar="MODULE",
        help="Let the flow import routines from MODULE (repeatable; env: "
        "FLOWFORGE_ALLOW, comma separated).",
    )


def _json_option(what: str) -> click.Option:
    return click.Option(["--json", "as_json"], is_flag=True, help=f"Print {what} as JSON.")


def _job_argument() -> click.Argument:
    return click.Argument(["job_id"], metavar="JOB", shell_complete=_complete_job)


def _complete_job(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Job ids from the store, for shell completion."""
    store = ctx.params.get("store") or os.environ.get("FLOWFORGE_STORE", DEFAULT_STORE)
    if not Path(store).exists():
        return []
    try:
        with SQLiteStore(store) as job_store:
            return [j.job_id for j in job_store.list_jobs() if j.job_id.startswith(incomplete)]
    except StoreError:
        return []


def _flow_argument() -> click.Argument:
    return click.Argument(["flow_file"], type=click.Path(exists=True, dir_okay=False))


def _command(
    name: str,
    callback: Callable[..., None],
    params: list[click.Parameter],
    example: Sequence[str],
    short: str,
) -> click.Command:
    return click.Command(
        name,
        callback=_guarded(callback),
        params=params,
        help=callback.__doc__,
        short_help=short,
        epilog=_example(*example),
    )


def _run_params() -> list[click.Parameter]:
    return [
        _flow_argument(),
        click.Option(
            ["--param", "-p"],
            multiple=True,
            metavar="KEY=VALUE",
            help="An entry parameter (repeatable); VALUE is read as JSON when it "
            "parses (10, true, [1, 2]), else as text.",
        ),
        click.Option(
            ["--params-file"],
            type=click.Path(exists=True, dir_okay=False),
            help="Entry parameters from a JSON or YAML mapping.",
        ),
        click.Option(
            ["--set", "settings"],
            multiple=True,
            metavar="ROUTINE.KEY=VALUE",
            help="Set a routine's config for this run (repeatable).",
        ),
        click.Option(
            ["--entry"],
            metavar="ROUTINE[.SLOT]",
            help="Start at this routine instead of the flow file's entry.",
        ),
        click.Option(
            ["--executor"],
            type=click.Choice(EXECUTOR_CHOICES),
            help="Run handlers one at a time, on a thread pool, or in worker processes.",
        ),
        click.Option(
            ["--workers"], type=click.IntRange(min=1), help="Threads or processes in the pool."
        ),
        _store_option(),
        _allow_option(),
        click.Option(
            ["--dry-run"],
            is_flag=True,
            help="Show what would run, and check the flow, without running it.",
        ),
        _json_option("the result"),
        click.Option(["--quiet", "-q"], is_flag=True, help="No live progress."),
    ]


def build_cli() -> click.Group:
    """The ``flowforge`` click group with every command."""
    group = click.Group(
        "flowforge",
        help="Run FlowForge flow files and manage their jobs.\n\nJobs are kept in the "
        "store, flowforge.db in the working directory unless --store or FLOWFORGE_STORE says "
        "otherwise. 'flowforge COMMAND --help' shows a command's options and an example.",
        epilog=_example(
            "flowforge run examples/report_flow.yaml", "flowforge jobs", "flowforge status JOB_ID"
        ),
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    group.params.append(
        click.Option(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_print_version,
            help="Show the version and exit.",
        )
    )
    for command in _commands():
        group.add_command(command)
    return group


def _commands() -> list[click.Command]:
    fmt = click.Option(
        ["--format", "fmt"],
        type=click.Choice(["mermaid", "dot"]),
        default="mermaid",
        show_default=True,
        help="The graph language.",
    )
    return [
        _command(
            "run",
            run_command,
            _run_params(),
            [
                "flowforge run examples/report_flow.yaml",
                "flowforge run flow.yaml --param path=data.csv --executor thread --workers 8",
            ],
            "Run a job of a flow file.",
        ),
        _command(
            "validate",
            validate_command,
            [
                _flow_argument(),
                _allow_option(),
                click.Option(["--strict"], is_flag=True, help="Treat warnings as errors."),
                _json_option("the problems"),
            ],
            ["flowforge validate examples/report_flow.yaml"],
            "Check a flow file.",
        ),
        _command(
            "show",
            show_command,
            [_flow_argument(), _allow_option(), _json_option("the flow (flow-file format)")],
            ["flowforge show examples/report_flow.yaml"],
            "Describe a flow file.",
        ),
        _command(
            "graph",
            graph_command,
            [
                _flow_argument(),
                _allow_option(),
                fmt,
                click.Option(
                    ["--output", "-o"],
                    type=click.Path(dir_okay=False),
                    help="Write to this file instead of the screen.",
                ),
            ],
            ["flowforge graph examples/report_flow.yaml --format dot | dot -Tsvg > flow.svg"],
            "Draw a flow as Mermaid or DOT text.",
        ),
        _command(
            "jobs",
            jobs_command,
            [
                _store_option(),
                click.Option(["--flow-id"], help="Only this flow's jobs."),
                click.Option(
                    ["--status"],
                    type=click.Choice([str(s) for s in JobStatus]),
                    help="Only jobs with this status.",
                ),
                _json_option("the jobs"),
            ],
            ["flowforge jobs --status paused"],
            "List the jobs in the store.",
        ),
        _command(
            "status",
            status_command,
            [_job_argument(), _store_option(), _json_option("the job")],
            ["flowforge status 3f2a"],
            "Show one job.",
        ),
        _command(
            "history",
            history_command,
            [
                _job_argument(),
                _store_option(),
                click.Option(["--routine"], help="Only this routine."),
                click.Option(
                    ["--limit"],
                    type=click.IntRange(min=0),
                    default=20,
                    show_default=True,
                    help="Show the latest N entries.",
                ),
                _json_option("the entries"),
            ],
            ["flowforge history 3f2a --routine parse --limit 5"],
            "Show what a job emitted.",
        ),
        _command(
            "resume",
            resume_command,
            [
                _job_argument(),
                _store_option(),
                _allow_option(),
                click.Option(
                    ["--path"],
                    multiple=True,
                    metavar="DIR",
                    help="A directory with the flow's routine modules, usually the "
                    "flow file's (repeatable).",
                ),
                _json_option("the result"),
                click.Option(["--quiet", "-q"], is_flag=True, help="No live progress."),
            ],
            ["flowforge resume 3f2a --path examples"],
            "Continue a paused or failed job.",
        ),
        _command(
            "cancel",
            cancel_command,
            [
                _job_argument(),
                _store_option(),
                click.Option(["--reason"], help="Why, for the record."),
            ],
            ["flowforge cancel 3f2a --reason 'bad input file'"],
            "Cancel a paused job.",
        ),
    ]


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"flowforge {__version__}")
        ctx.exit()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``flowforge`` command (the console script's entry point)."""
    if click is None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(EXIT_USAGE)
    build_cli().main(args=list(argv) if argv is not None else None, prog_name="flowforge")


if __name__ == "__main__":
    main()
