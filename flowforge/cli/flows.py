"""``flowforge validate|show|graph FLOW``: check, describe and draw flow files."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    allow_option,
    err,
    example,
    flow_argument,
    guarded,
    json_option,
)
from ._describe import describe_flow, file_hint, flow_graph, problem_report
from ._loading import LOAD_FAILURES, format_load_error, load_flow_file, load_problems, open_flow


@click.command(
    "validate",
    short_help="Check a flow file.",
    epilog=example("flowforge validate examples/report_flow.yaml"),
)
@flow_argument
@allow_option
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@json_option("the problems")
@guarded
def validate(flow_file: str, allow: Sequence[str], strict: bool, as_json: bool) -> None:
    """Check FLOW_FILE and list every problem, each with its place and a hint.

    Loading problems (the file's structure, routine classes, connections)
    come first; once the file loads, the flow's own checks follow (join
    slots without sources, unconnected slots and events, routines the entry
    cannot reach). Exit status 2 if there is an error (with --strict, a
    warning too), else 0.
    """
    try:
        loaded = load_flow_file(flow_file, allow)
    except LOAD_FAILURES as exc:
        found = load_problems(flow_file, exc)
        text = format_load_error(flow_file, found)
        _emit_validation(flow_file, [p.as_dict() for p in found], as_json, text)
        sys.exit(EXIT_USAGE)
    flow = loaded.flow
    problems = flow.validate()
    failing = [p for p in problems if p.severity == "error" or strict]
    text = (
        problem_report(flow_file, problems)
        if problems
        else f"{flow_file}: flow '{flow.flow_id}' is valid ({len(flow.routines)} "
        f"routines, {len(flow.connections)} connections)."
    )
    as_data = [
        {"severity": p.severity, "where": p.where, "message": p.message, "hint": file_hint(p.hint)}
        for p in problems
    ]
    _emit_validation(flow_file, as_data, as_json, text)
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


@click.command(
    "show",
    short_help="Describe a flow file.",
    epilog=example("flowforge show examples/report_flow.yaml"),
)
@flow_argument
@allow_option
@json_option("the flow (flow-file format)")
@guarded
def show(flow_file: str, allow: Sequence[str], as_json: bool) -> None:
    """Describe FLOW_FILE: settings, routines (slots, events, policies, config), connections."""
    loaded = open_flow(flow_file, allow)
    if as_json:
        click.echo(json.dumps(loaded.flow.serialize(), indent=2))
    else:
        click.echo(describe_flow(loaded))


@click.command(
    "graph",
    short_help="Draw a flow as Mermaid or DOT text.",
    epilog=example("flowforge graph examples/report_flow.yaml --format dot | dot -Tsvg > flow.svg"),
)
@flow_argument
@allow_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="The graph language.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write to this file instead of the screen.",
)
@guarded
def graph(flow_file: str, allow: Sequence[str], fmt: str, output: str | None) -> None:
    """Draw FLOW_FILE as Mermaid or Graphviz DOT text (offline; render it with any tool)."""
    text = flow_graph(open_flow(flow_file, allow).flow, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        err(f"Wrote {output}")


COMMANDS = (validate, show, graph)
