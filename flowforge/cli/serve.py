"""``flowforge serve``: the REST API (:func:`flowforge.server.create_app`) on uvicorn.

The server runs the jobs submitted through it on ``--workers`` threads
(claimed under a lease, as ``flowforge worker`` does), or leaves them to
separate ``flowforge worker`` processes with ``--workers 0``. It refuses to
listen beyond the loopback interface without a token (``--token-file`` or
``FLOWFORGE_TOKEN``). It needs the ``server`` extra (starlette, uvicorn).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import ipaddress
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ._common import (
    CommandError,
    allow_option,
    err,
    example,
    guarded,
    lease_option,
    quiet_option,
    store_option,
)
from ._store import open_store, shown

TOKEN_ENV = "FLOWFORGE_TOKEN"
SERVER_HINT = "flowforge serve needs the 'server' extra: pip install 'flowforge[server]'"


@click.command(
    "serve",
    short_help="Serve the REST API over a store, and run its jobs.",
    epilog=example(
        "flowforge serve flows/ --store jobs.db",
        "flowforge serve flows/ --store postgresql://flowforge@db/flowforge \\",
        "    --host 0.0.0.0 --token-file /run/secrets/flowforge --workers 0",
    ),
)
@click.argument("flows", nargs=-1, type=click.Path(exists=True), metavar="[FLOW_FILE|DIR]...")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="The port (0: any free one).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    help=f"A file holding the API token (env: {TOKEN_ENV} holds the token itself).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="How many jobs the server runs at once; 0 leaves them to `flowforge worker`.",
)
@lease_option
@click.option(
    "--max-body",
    type=click.IntRange(min=1),
    default=1 << 20,
    show_default=True,
    help="The largest request body, in bytes (larger ones get 413).",
)
@allow_option
@quiet_option
@guarded
def serve(
    flows: Sequence[str],
    store: str,
    host: str,
    port: int,
    token_file: str | None,
    workers: int,
    lease_seconds: float,
    max_body: int,
    allow: Sequence[str],
    quiet: bool,
) -> None:
    """Serve the REST API for the flows in FLOW_FILE or DIR (several may be given).

    Jobs started through the API are queued in --store and run by this
    server (--workers) or by `flowforge worker` processes on the same
    store. The API is described at /api/docs. SIGTERM or Ctrl-C stops the
    server; its running jobs pause and go back to the queue.
    """
    try:
        import uvicorn

        from ..server import create_app
    except ImportError:
        raise CommandError(SERVER_HINT) from None
    token = _token(token_file)
    if token is None and not _loopback(host):
        raise CommandError(
            f"Refusing to listen on {host} without a token: anyone who reaches it could run "
            f"jobs. Give --token-file PATH (or {TOKEN_ENV}), or listen on 127.0.0.1."
        )
    options: dict[str, Any] = {"lease_seconds": lease_seconds}
    with open_store(store, **options) as job_store:
        app = create_app(
            job_store,
            flows,
            token,
            workers=workers,
            allow=allow,
            max_body=max_body,
            quiet=quiet,
        )
        if not quiet:
            err(
                f"Serving {shown(store)} on http://{host}:{port}/api/docs with {workers} "
                "worker(s). Ctrl-C stops it."
            )
        config = uvicorn.Config(app, host=host, port=port, log_level="warning" if quiet else "info")
        server = uvicorn.Server(config)
        # What was loaded so far lives as long as the server: leave it out of the
        # full collections, which would otherwise stall every request for tens of ms.
        gc.freeze()
        # uvicorn re-raises SIGTERM once it has shut down; a clean stop exits 0 instead.
        server.capture_signals = functools.partial(_stopping_on_signals, server)  # type: ignore[method-assign]
        server.run()


@contextlib.contextmanager
def _stopping_on_signals(server: Any) -> Iterator[None]:
    """SIGTERM or Ctrl-C asks the server to stop (a second time, at once)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        server.force_exit = server.should_exit
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _token(token_file: str | None) -> str | None:
    if token_file is not None:
        token = Path(token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise CommandError(f"--token-file {token_file} is empty; put the token in it.")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


COMMANDS = (serve,)
