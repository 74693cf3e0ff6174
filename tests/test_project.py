"""The project's own files: the test settings apply, and packaging says what it ships."""

from __future__ import annotations

import ast
import shutil
import subprocess
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict[str, Any]:
    """The parsed ``pyproject.toml``."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def make_dry_run(target: str) -> str:
    """The commands ``make -n target`` would run in the project root."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", target, "PYTHON=python3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_pytest_settings_are_in_the_table_every_allowed_pytest_reads() -> None:
    """The settings sit in [tool.pytest.ini_options]: pytest 8 ignores [tool.pytest]."""
    table = pyproject()["tool"]["pytest"]
    assert set(table) == {"ini_options"}
    assert "pytest>=8" in pyproject()["project"]["optional-dependencies"]["test"]


def test_the_timeout_applies(request: pytest.FixtureRequest) -> None:
    """pytest-timeout reads the 60-second limit."""
    assert float(request.config.getini("timeout")) == 60


def test_a_warning_in_a_test_is_an_error() -> None:
    """filterwarnings = error turns a warning into an exception."""
    with pytest.raises(UserWarning, match="probe"):
        warnings.warn("probe", UserWarning, stacklevel=1)


def test_markers_are_strict() -> None:
    """An unregistered marker is an error, not a silent typo."""
    with pytest.raises(pytest.fail.Exception, match="not found in `markers`"):
        _ = pytest.mark.not_a_registered_marker


def test_the_test_extra_brings_coverage() -> None:
    """``pytest --cov`` works after installing the test extra."""
    assert "pytest-cov" in pyproject()["project"]["optional-dependencies"]["test"]


def test_the_license_file_is_the_apache_license() -> None:
    """LICENSE holds the Apache License 2.0 that the metadata names."""
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_make_dev_install_installs_the_dev_extra() -> None:
    """``make dev-install``, the founding documents' command, is the editable install."""
    assert 'python3 -m pip install -e ".[dev]"' in make_dry_run("dev-install")


def test_make_coverage_measures_the_package() -> None:
    """``make coverage`` runs pytest with coverage of flowforge and lists missed lines."""
    assert "python3 -m pytest --cov=flowforge --cov-report=term-missing" in make_dry_run("coverage")


def test_make_docs_builds_through_the_docs_makefile() -> None:
    """``make docs`` runs docs/Makefile's html and doctest builders, warnings as errors."""
    commands = make_dry_run("docs")
    assert "python3 -m sphinx -M html" in commands
    assert "python3 -m sphinx -M doctest" in commands
    assert "-W --keep-going" in commands


def load_time_imports() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """flowforge's import graph: module -> the modules it imports when loaded.

    Imports under ``if TYPE_CHECKING`` are left out; imports inside functions
    are returned apart, as ``(importer, imported)`` pairs.
    """
    package = ROOT / "flowforge"
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in names}
    in_functions: list[tuple[str, str]] = []

    def imported(node: ast.Import | ast.ImportFrom, here: str) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
        module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
        found = [f"{module}.{alias.name}" for alias in node.names]
        return [name if name in names else str(module) for name in found]

    def visit(name: str, here: str, nodes: list[ast.stmt], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                visit(name, here, node.orelse, in_function)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for target in imported(node, here):
                    if target in names and target != name:
                        if in_function:
                            in_functions.append((name, target))
                        else:
                            graph[name].add(target)
            else:
                inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit(name, here, children, inner)

    for name, path in names.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        visit(name, here, ast.parse(path.read_text(encoding="utf-8")).body, False)
    return graph, in_functions


def test_flowforge_has_no_import_cycles() -> None:
    """No module imports, at load time, a module that imports it back (docs/design.rst)."""
    graph, _ = load_time_imports()
    done: set[str] = set()

    def cycle_from(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for target in sorted(graph[name]):
            found = cycle_from(target, [*path, name])
            if found:
                return found
        done.add(name)
        return None

    assert [cycle for name in sorted(graph) if (cycle := cycle_from(name, []))] == []


def test_the_only_imports_in_functions_are_of_optional_dependencies() -> None:
    """No import is tucked into a function to dodge a cycle (docs/design.rst)."""
    _, in_functions = load_time_imports()
    assert sorted(in_functions) == [
        ("flowforge.cli.serve", "flowforge.server"),  # starlette, the server extra
        ("flowforge.store._url", "flowforge.store.postgres"),
        ("flowforge.testing", "flowforge._store_conformance"),
    ]
