"""Running a job from the command line: live progress, Ctrl-C, the final report.

The job runs on a worker thread; the main thread draws progress and turns
Ctrl-C (SIGINT) or SIGTERM into a pause, so a handler is never interrupted
and the job is never left ``running``; a second signal stops at once, and
the job resumes from its last checkpoint. Progress is drawn in
place with rich on a terminal (a bar of the work done so far, each routine's
calls and failures), as one plain line a second when stderr is piped, and
not at all with ``--quiet``.
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
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

import attrs
import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..errors import FlowForgeError, JobStateError
from ..flow import Flow
from ..job_state import JobState, JobStatus
from ..signals import job_started, routine_failed, routine_finished
from ..store import Store
from ._common import (
    DEFAULT_STORE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PAUSED,
    CommandError,
)
from ._describe import job_summary, print_job, routine_run
from ._store import has_password, open_store, shown

if TYPE_CHECKING:
    from types import FrameType

#: Why a job paused when Ctrl-C paused it.
CTRL_C_REASON = "interrupted by Ctrl-C"
SIGTERM_REASON = "interrupted by SIGTERM"


class Progress:
    """Live progress of one job: messages processed per routine, errors, elapsed time.

    Signal receivers (on the job's thread) only count; :meth:`tick`, called
    from the main thread, redraws at most ``interval`` seconds apart: in
    place on a terminal (``mode="tty"``), else as one plain line
    (``"lines"``); ``"off"`` draws nothing.
    """

    def __init__(self, flow: Flow, job: JobState, stream: IO[str], mode: str) -> None:
        self.flow = flow
        self.job = job
        self.stream = stream
        self.mode = mode
        self.interval = 0.1 if mode == "tty" else 1.0
        self.started = time.monotonic()
        self._last = self.started
        self._live: Live | None = None
        self.done = {rid: routine_run(job, rid).activations for rid in flow.routines}
        self.failed = {rid: routine_run(job, rid).failures for rid in flow.routines}

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
        """Write a line of its own, above the live drawing on a terminal."""
        if self._live is not None:
            self._live.console.print(message, markup=False, highlight=False)
            return
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final numbers on a terminal, and leave them there."""
        if self.mode == "tty":
            self.draw(time.monotonic())
        if self._live is not None:
            self._live.stop()
            self._live = None

    def draw(self, now: float) -> None:
        """Write the current numbers."""
        elapsed = now - self.started
        pending = self.flow.pending_count(self.job)
        errors = self.job.errors_total
        if self.mode == "tty":
            self._live_display().update(self._block(elapsed, pending, errors), refresh=True)
            return
        counts = ", ".join(
            f"{rid} {n}" + (f" ({self.failed[rid]} failed)" if self.failed.get(rid) else "")
            for rid, n in self.done.items()
        )
        self.stream.write(f"[{elapsed:6.1f}s] {counts} | pending {pending} | errors {errors}\n")
        self.stream.flush()

    def _live_display(self) -> Live:
        if self._live is None:
            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._live = Live(
                console=console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self._live

    def _block(self, elapsed: float, pending: int, errors: int) -> RenderableType:
        done = sum(self.done.values()) + sum(self.failed.values())
        head = Table.grid(padding=(0, 1))
        head.add_row(
            ProgressBar(total=max(done + pending, 1), completed=done, width=24),
            Text(f"{elapsed:.1f} s · {pending:,} pending · {errors:,} error(s)"),
        )
        title = Text(f"{self.flow.flow_id} · job {self.job.job_id[:12]}", style="bold")
        rows = Table.grid(padding=(0, 2))
        busiest = max(self.done.values(), default=0) or 1
        for rid, n in self.done.items():
            failed = self.failed.get(rid, 0)
            rows.add_row(
                Text(f"  {rid}"),
                Text(f"{n:>10,}"),
                ProgressBar(total=busiest, completed=n, width=20),
                Text(f"{failed:,} failed", style="red") if failed else Text(""),
            )
        return Group(title, head, rows)


def progress_mode(stream: IO[str], quiet: bool) -> str:
    """``"tty"`` (redraw in place), ``"lines"`` (plain lines) or ``"off"``."""
    if quiet:
        return "off"
    isatty = getattr(stream, "isatty", None)
    return "tty" if isatty is not None and isatty() else "lines"


class Interrupts:
    """Ctrl-C or SIGTERM while a job runs: the first pauses it, a second stops the
    process at once."""

    def __init__(self, flow: Flow, job: JobState, say: Callable[[str], None]) -> None:
        self.flow = flow
        self.job = job
        self.say = say
        self.count = 0
        self.reason = CTRL_C_REASON

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            self.say("Stopping now. The job resumes from its last checkpoint.")
            os._exit(EXIT_INTERRUPTED)
        what = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        if signum == signal.SIGTERM:
            self.reason = SIGTERM_REASON
        self.say(
            f"Pausing job {self.job.job_id} ({what}): running calls finish first "
            f"({what} again to stop at once)."
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
            self.flow.pause(self.job, reason=self.reason)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM (from the main thread only) while the block runs."""
        job_started.connect(self.on_started, sender=self.flow, weak=False)
        main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, self) for sig in _PAUSING} if main else {}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            job_started.disconnect(self.on_started, sender=self.flow)


#: The signals that pause a job run from the command line.
_PAUSING = (signal.SIGINT, signal.SIGTERM)


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
    start: Callable[[Store], JobState],
    settings: RunSettings,
    verb: str = "Running",
) -> NoReturn:
    """Run ``start(store)`` with live progress and Ctrl-C handling, then report and exit."""
    progress = Progress(flow, job, sys.stderr, progress_mode(sys.stderr, settings.quiet))
    interrupts = Interrupts(flow, job, progress.say)
    if not settings.quiet:
        progress.say(
            f"{verb} job {job.job_id} of flow '{flow.flow_id}' (store "
            f"{shown(settings.store)}). Ctrl-C pauses it."
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
        print_job(job, flow, command)
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
    env = [o for o in options if o.startswith(_ENV)]
    rest = [o for o in options if not o.startswith(_ENV)]
    return " ".join([*env, shlex.join(["flowforge", "resume", job.job_id, *rest])])


_ENV = "FLOWFORGE_STORE="


def resume_options(store: str, allow: Sequence[str]) -> tuple[str, ...]:
    """The options ``resume`` needs to find what ``run`` found.

    No ``--path``: the store records where the flow's routines came from.
    A store URL with a password is never printed: the command then names
    ``FLOWFORGE_STORE`` (with the password hidden) for the user to set.
    """
    options: list[str] = []
    if has_password(store):
        options.append(f"{_ENV}{shlex.quote(shown(store))}")
    elif store != DEFAULT_STORE:
        options += ["--store", store]
    for name in allow:
        options += ["--allow", name]
    return tuple(options)
