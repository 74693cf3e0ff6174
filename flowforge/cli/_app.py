"""The ``flowforge`` click group, assembled from the command modules of this package.

Every public module of :mod:`flowforge.cli` (a name without a leading
underscore) holds one command group and lists its click commands in
``COMMANDS``; the group picks them all up, so a new group of commands is one
new file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import click

from .. import __version__
from ._common import example, route_logging


def command_modules() -> list[ModuleType]:
    """The public modules of this package, each with its ``COMMANDS``."""
    package = importlib.import_module(__package__ or "flowforge.cli")
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )
    return [importlib.import_module(f"{package.__name__}.{name}") for name in names]


def build_cli() -> click.Group:
    """The ``flowforge`` click group with every command."""
    group = click.Group(
        "flowforge",
        help="Run FlowForge flow files and manage their jobs.\n\nJobs are kept in the "
        "store, flowforge.db in the working directory unless --store or FLOWFORGE_STORE names "
        "another (a path, sqlite:///PATH or postgresql://...). 'flowforge COMMAND --help' "
        "shows a command's options and an example.",
        epilog=example(
            "flowforge run examples/report_flow.yaml", "flowforge jobs", "flowforge status JOB_ID"
        ),
        context_settings={"help_option_names": ["-h", "--help"]},
        params=[
            click.Option(
                ["--version"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_print_version,
                help="Show the version and exit.",
            ),
            click.Option(
                ["--verbose", "-v"],
                count=True,
                expose_value=False,
                callback=_verbosity,
                help="Show FlowForge's log on stderr: -v for INFO, -vv for DEBUG.",
            ),
        ],
    )
    for module in command_modules():
        for command in module.COMMANDS:
            group.add_command(command)
    return group


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"flowforge {__version__}")
        ctx.exit()


def _verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if not ctx.resilient_parsing:
        route_logging(value)
