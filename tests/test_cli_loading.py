"""``flowforge`` reading flow files: broken and hostile files, problems and their hints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from cli_support import QUICK_FLOW, cli, enter_workdir, invoke, write

from flowforge import Flow
from flowforge.errors import SerializationError

NOT_ALLOWED_TWICE = """\
flow_id: twice
routines:
  a: {class: "tabnanny:Thing"}
  b: {class: "tabnanny:Thing"}
connections: []
"""

LOOSE_FLOW = QUICK_FLOW.replace("  - double.out -> sink.in\n", "")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory."""
    return enter_workdir(tmp_path, monkeypatch)


@attrs.frozen
class FakeProblem:
    """A loading problem as the loader reports it in ``SerializationError.problems``."""

    severity: str
    where: str
    message: str
    hint: str


def failing_load(error: BaseException) -> Any:
    """A stand-in for Flow.load that raises ``error``."""

    def load(cls: type[Flow], path: Any, *, allowed_modules: tuple[str, ...] = ()) -> Flow:
        raise error

    return classmethod(load)


def test_deeply_nested_file_exits_2_naming_the_file(workdir: Path) -> None:
    """A document nested thousands deep: exit 2, one message naming the file, no traceback."""
    write(workdir, "deep.yaml", "flow_id: deep\nroutines: " + "[" * 5000 + "]" * 5000 + "\n")
    result = cli("run", "deep.yaml", cwd=workdir)
    assert result.returncode == 2
    assert "deep.yaml: cannot load the flow" in result.stderr
    assert "too deeply" in result.stderr
    assert "Traceback" not in result.stderr


def test_file_that_is_not_utf8_exits_2_naming_the_file(workdir: Path) -> None:
    """Latin-1 text: exit 2, saying the file is not UTF-8."""
    (workdir / "latin.yaml").write_bytes("flow_id: caf\xe9\nroutines: {}\n".encode("latin-1"))
    result = invoke("validate", "latin.yaml")
    assert result.exit_code == 2
    assert "latin.yaml: cannot load the flow" in result.stdout
    assert "not UTF-8" in result.stdout


@pytest.mark.parametrize(
    "error",
    [RecursionError("too deep"), MemoryError(), SerializationError("alias bomb refused")],
    ids=["recursion", "memory", "serialization"],
)
def test_any_loading_failure_is_one_message_and_exit_2(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """What escapes the loader (an alias bomb's MemoryError, ...) is reported, not raised."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    monkeypatch.setattr(Flow, "load", failing_load(error))
    result = invoke("show", "quick.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("quick.yaml: cannot load the flow (1 problem(s)):")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_loader_problems_are_printed_one_by_one(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SerializationError.problems: each printed with its place and the loader's hint."""
    write(workdir, "quick.yaml", QUICK_FLOW)
    error = SerializationError("2 problems")
    error.problems = [  # type: ignore[attr-defined]
        FakeProblem("error", "flow.retention", "expected int, got str 'lots'", "Use a number."),
        FakeProblem("error", "flow.routines.x", "unknown field(s) 'klass'", "See the docs."),
    ]
    monkeypatch.setattr(Flow, "load", failing_load(error))
    data = json.loads(invoke("validate", "quick.yaml", "--json").stdout)
    assert [(p["where"], p["hint"]) for p in data["problems"]] == [
        ("flow.retention", "Use a number."),
        ("flow.routines.x", "See the flow-file reference for the keys each section takes."),
    ]


def test_yaml_syntax_error_names_the_file(workdir: Path) -> None:
    """A YAML syntax error points into the flow file, not into "<unicode string>"."""
    write(workdir, "bad.yaml", "flow_id: x\nroutines: [a\n")
    result = invoke("validate", "bad.yaml")
    assert result.exit_code == 2
    assert 'in "bad.yaml", line 2' in result.stdout
    assert "<unicode string>" not in result.stdout


def test_a_module_not_allowed_is_reported_once(workdir: Path) -> None:
    """Two routines from one module that is not allowed: one problem naming both places."""
    write(workdir, "twice.yaml", NOT_ALLOWED_TWICE)
    data = json.loads(invoke("validate", "twice.yaml", "--json").stdout)
    [problem] = data["problems"]
    assert "module 'tabnanny' is not allowed" in problem["message"]
    assert "also used at flow.routines.b.class" in problem["message"]
    assert "--allow MODULE" in problem["hint"]


def test_a_missing_module_is_reported_once(workdir: Path) -> None:
    """Two routines from one module that does not exist: one problem naming both places."""
    write(workdir, "twice.yaml", NOT_ALLOWED_TWICE.replace("tabnanny:", "elsewhere_mod:"))
    data = json.loads(invoke("validate", "twice.yaml", "--json").stdout)
    [problem] = data["problems"]
    assert "module 'elsewhere_mod' does not exist" in problem["message"]
    assert "also used at flow.routines.b.class" in problem["message"]


def test_validation_hints_are_in_flow_file_terms(workdir: Path) -> None:
    """A warning about a flow file suggests a connection line, not Python code."""
    write(workdir, "loose.yaml", LOOSE_FLOW)
    result = invoke("validate", "loose.yaml")
    assert "add 'double.out -> TARGET.SLOT' to the flow file's connections" in result.stdout
    assert "flow.connect(" not in result.stdout


def test_quiet_run_prints_no_warnings(workdir: Path) -> None:
    """run -q of a flow with warnings keeps stderr empty; without -q they are shown."""
    write(workdir, "loose.yaml", LOOSE_FLOW)
    assert "warning: double.out" in cli("run", "loose.yaml", cwd=workdir).stderr
    quiet = cli("run", "loose.yaml", "-q", cwd=workdir)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
