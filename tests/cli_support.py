"""Helpers for the command-line tests: flow files, running ``flowforge``, reading the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowforge.cli import build_cli
from flowforge.store import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
REPORT_FLOW = REPO / "examples" / "report_flow.yaml"

SLOW_ROUTINES = '''\
import time
from pathlib import Path

from flowforge import Routine


class Note(Routine):
    """Sleeps, appends ``value`` to the file ``path``, counts, and passes it on."""

    def __init__(self):
        super().__init__()
        self.define_slot("in", handler=self.note)
        self.define_event("out", ["value"])

    def note(self, value):
        time.sleep(self.get_config("seconds", 0.05))
        with Path(self.get_config("path")).open("a") as handle:
            handle.write(f"{value}\\n")
        self._stats["noted"] = self._stats.get("noted", 0) + 1
        self.emit("out", value=value)
'''

SLOW_FLOW = """\
flow_id: slow
entry: {routine: source, params: {values: %s}}
routines:
  source: {class: "flowforge.testing:Source"}
  note: {class: "slow_notes:Note", config: {seconds: 0.05, path: "${flow_dir}/seen.txt"}}
  sink: {class: "flowforge.testing:Collect"}
connections:
  - source.out -> note.in
  - note.out -> sink.in
"""

QUICK_FLOW = """\
flow_id: quick
entry: {routine: source, params: {values: [1, 2, 3]}}
routines:
  source: {class: "flowforge.testing:Source"}
  double: {class: "flowforge.testing:Double"}
  sink: {class: "flowforge.testing:Collect"}
connections:
  - source.out -> double.in
  - double.out -> sink.in
"""

FAILING_FLOW = """\
flow_id: failing
entry: {routine: source, params: {values: [1, 2, 3]}}
routines:
  source: {class: "flowforge.testing:Source"}
  flaky: {class: "flowforge.testing:Flaky", config: {fail_times: -1}}
  sink: {class: "flowforge.testing:Collect"}
connections:
  - source.out -> flaky.in
  - flaky.out -> sink.in
"""

#: A module of task functions, for SUMS_FLOW (write it as server_tasks.py).
TASKS_MODULE = """\
def numbers(n: int) -> list[int]:
    return list(range(n))


def total(numbers: list[int]) -> int:
    return sum(numbers)
"""

SUMS_FLOW = """\
flow_id: sums
routines: {}
tasks:
  numbers: {function: "server_tasks:numbers"}
  total: {function: "server_tasks:total", depends_on: [numbers]}
"""


INVALID_FLOW = """\
flow_id: broken
executor: {kind: turbo}
routines:
  parse: {class: "nowhere.to.be.found:Parse"}
  source: {class: "flowforge.testing:Source"}
  sink: {class: "flowforge.testing:Collect"}
connections:
  - source.out -> sink.inbox
"""


def cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``flowforge ARGS`` in a subprocess from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "flowforge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        env={**os.environ, **(env or {})},
    )


def invoke(*args: str) -> Result:
    """Run ``flowforge ARGS`` in this process, through click's runner."""
    return CliRunner().invoke(build_cli(), list(args), prog_name="flowforge")


def write(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``directory/name``; returns the path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def stored_jobs(directory: Path) -> list[Any]:
    """The summaries of the jobs in ``directory``'s default store."""
    with SQLiteStore(directory / "flowforge.db") as store:
        return store.list_jobs()


def load_job(directory: Path, job_id: str) -> Any:
    """A job from ``directory``'s default store."""
    with SQLiteStore(directory / "flowforge.db") as store:
        return store.load(job_id)


def enter_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``tmp_path`` a fresh working directory, also this process's (for click's runner)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("FLOWFORGE_STORE", raising=False)
    monkeypatch.delenv("FLOWFORGE_ALLOW", raising=False)
    return tmp_path
