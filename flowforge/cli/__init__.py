"""The ``flowforge`` command: run flow files and steer their jobs from a terminal.

Commands (``flowforge COMMAND --help`` shows each one's options and an
example):

``run FLOW``
    Run a job of a flow file, with live progress, then a summary. Ctrl-C
    pauses the job, saves it, and prints the command that resumes it.
``validate FLOW``, ``show FLOW``, ``graph FLOW``
    Check a flow file (every problem, with hints), describe it, or draw it
    as Mermaid or Graphviz text.
``jobs``, ``status JOB``, ``history JOB``, ``resume JOB``, ``pause JOB``,
``cancel JOB``, ``delete JOB``, ``prune``
    List, inspect, continue, stop and delete the jobs in the store; ``pause``
    and ``cancel`` stop a job running in any process that shares the store.
``submit FLOW``, ``worker``
    Queue a job for workers; run queued jobs (several workers share a store,
    taking over the jobs of one that died once its leases expire).
``serve [FLOW|DIR ...]``
    Serve the REST API over the store (the ``server`` extra), running the
    jobs started through it.

Jobs are kept in a store, by default the SQLite file ``flowforge.db`` in the
working directory (``--store URL`` or the ``FLOWFORGE_STORE`` environment
variable choose another: a path, ``sqlite:///PATH``, ``postgresql://...``),
so ``run`` then ``status`` just works. A store is always printed without its
password. A job id may be shortened to any prefix that names one job.

Where routine classes come from
    A flow file names its routine classes by import path
    (``report_routines:ReadOrders``). The command puts the flow file's
    directory first on ``sys.path`` and lets the flow import the modules and
    packages found there, so a flow file and the module beside it work
    together without installing anything. Other modules must be importable
    and allowed: ``--allow MODULE`` (repeatable) or ``FLOWFORGE_ALLOW``
    (names separated by commas). The store records, with the flow's
    definition, where its routine classes were imported from, so ``resume``
    finds them again without being told.

Flow-file parameters
    In the entry's ``params`` and in routine ``config``, the text
    ``${flow_dir}`` stands for the flow file's directory, so a flow file can
    name the data files beside it wherever it is run from.

Exit status
    0 the job completed; 1 it failed or was cancelled (or a command about a
    job failed); 2 bad usage, an invalid flow file, or an unknown job; 3 the
    job paused itself; 130 the job was paused with Ctrl-C.

Output
    Data goes to stdout, messages and progress to stderr; ``--json`` prints
    data for tools. On a terminal the output is drawn with rich (colours,
    tables, live progress); piped, it is plain text. ``-v`` (``-vv``) shows
    FlowForge's log on stderr.

Layout
    One module per command group (``run``, ``flows``, ``jobs``,
    ``resume``, ``worker``, ``serve``), each listing its click commands in ``COMMANDS``; a new
    module is picked up by :func:`build_cli` on its own.

Without the ``cli`` extra (click and rich), ``flowforge`` says how to
install it and exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["Progress", "build_cli", "main"]

INSTALL_HINT = "flowforge: the command line needs the 'cli' extra: pip install 'flowforge[cli]'"
_EXTRA = ("click", "rich")
_missing: ImportError | None = None

try:
    from ._app import build_cli
    from ._running import Progress
except ImportError as exc:  # the [cli] extra is not installed; main() says so
    if exc.name is None or exc.name.partition(".")[0] not in _EXTRA:
        raise
    _missing = exc


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``flowforge`` command (the console script's entry point)."""
    if _missing is not None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(2)
    build_cli().main(args=list(argv) if argv is not None else None, prog_name="flowforge")
