"""What every command shares: exit statuses, errors, options, output streams.

Data goes to stdout, messages and progress to stderr. On a terminal the
output is drawn with rich (colours, tables); piped, it is plain text.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.logging import RichHandler

from ..errors import FlowForgeError
from ..store import StoreError, open_store, parse_store_url

DEFAULT_STORE = "flowforge.db"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(Exception):
    """A command cannot go on; it prints ``message`` on stderr and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- output ----------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A rich console on the current stdout (or stderr); plain text when it is not a terminal."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def on_terminal(*, stderr: bool = False) -> bool:
    """Whether stdout (or stderr) is a terminal rich may draw on."""
    return console(stderr=stderr).is_terminal


def err(message: str) -> None:
    """Write a message line to stderr."""
    click.echo(message, err=True)


def guarded(command: F) -> F:
    """Turn :class:`CommandError` (and any FlowForge error) into a message and an exit status."""

    @functools.wraps(command)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CommandError as exc:
            err(str(exc))
            sys.exit(exc.code)
        except FlowForgeError as exc:
            err(f"error: {exc}")
            sys.exit(EXIT_USAGE)

    return call  # type: ignore[return-value]


def example(*lines: str) -> str:
    """A command's epilog: an example, kept as written."""
    # \b keeps click from rewrapping the example.
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)


# -- logging (-v) ----------------------------------------------------------------------

_LOG_LEVELS = {1: logging.INFO, 2: logging.DEBUG}
_HANDLER_NAME = "flowforge-cli"


def route_logging(verbosity: int) -> None:
    """Send FlowForge's log records to stderr: ``1`` INFO and up, ``2`` or more DEBUG."""
    logger = logging.getLogger("flowforge")
    for old in list(logger.handlers):
        if old.get_name() == _HANDLER_NAME:
            logger.removeHandler(old)
    if verbosity <= 0:
        logger.setLevel(logging.NOTSET)
        return
    handler: logging.Handler
    if on_terminal(stderr=True):
        handler = RichHandler(console=console(stderr=True), show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.set_name(_HANDLER_NAME)
    logger.addHandler(handler)
    logger.setLevel(_LOG_LEVELS.get(verbosity, logging.DEBUG))


# -- options shared by several commands -------------------------------------------------


def store_option(f: F) -> F:
    """``--store URL`` (env ``FLOWFORGE_STORE``)."""
    return click.option(
        "--store",
        envvar="FLOWFORGE_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        metavar="URL",
        help="The job store: an SQLite file (a path or sqlite:///PATH), "
        "postgresql://user:pw@host/db, or memory:// (env: FLOWFORGE_STORE; prefer it for "
        "a URL with a password).",
    )(f)


def allow_option(f: F) -> F:
    """``--allow MODULE`` (repeatable; env ``FLOWFORGE_ALLOW``)."""
    return click.option(
        "--allow",
        multiple=True,
        metavar="MODULE",
        help="Let the flow import routines from MODULE (repeatable; env: "
        "FLOWFORGE_ALLOW, comma separated).",
    )(f)


def lease_option(f: F) -> F:
    """``--lease-seconds S``: how long a job's lease lasts without a heartbeat."""
    return click.option(
        "--lease-seconds",
        type=click.FloatRange(min=0, min_open=True),
        default=30.0,
        show_default=True,
        help="How long a job's lease lasts without a heartbeat: after that, a job of a "
        "worker that died goes to another worker.",
    )(f)


def json_option(what: str) -> Callable[[F], F]:
    """``--json``: print ``what`` as JSON."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def quiet_option(f: F) -> F:
    """``--quiet``/``-q``."""
    return click.option("--quiet", "-q", is_flag=True, help="No live progress and no warnings.")(f)


def param_option(f: F) -> F:
    """``--param KEY=VALUE`` (repeatable)."""
    return click.option(
        "--param",
        "-p",
        "param",
        multiple=True,
        metavar="KEY=VALUE",
        help="An entry parameter (repeatable); VALUE is read as JSON when it "
        "parses (10, true, [1, 2]), else as text.",
    )(f)


def flow_argument(f: F) -> F:
    """The ``FLOW_FILE`` argument."""
    return click.argument("flow_file", type=click.Path(exists=True, dir_okay=False))(f)


def job_argument(f: F) -> F:
    """The ``JOB`` argument, completed from the store."""
    return click.argument("job_id", metavar="JOB", shell_complete=_complete_job)(f)


def _complete_job(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Job ids from the store, for shell completion."""
    store = ctx.params.get("store") or os.environ.get("FLOWFORGE_STORE", DEFAULT_STORE)
    try:
        parsed = parse_store_url(store)
        if parsed.kind == "sqlite" and not Path(parsed.target).exists():
            return []
        options = {} if parsed.kind == "memory" else {"readonly": True}
        with open_store(store, **options) as job_store:
            return [j.job_id for j in job_store.list_jobs() if j.job_id.startswith(incomplete)]
    except StoreError:
        return []
