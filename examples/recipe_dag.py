"""Recipe: a DAG of tasks, each waiting for all of its dependencies.

A build described as tasks and their dependencies, as a workflow scheduler
would take it::

    checkout -> compile_lib --> link --> package
             -> compile_app -/          /
             -> docs ------------------/

Every task is a plain function made a task with :meth:`Flow.task`: it runs
once, when every task it depends on has succeeded, with their results under
their names. The script runs the DAG, then shows what a failing task does
under each strategy, how a fixed job resumes, and the mistakes the flow
catches before anything runs.

Run it with ``python examples/recipe_dag.py``. ``docs/cookbook/dag.rst``
explains it.
"""

from __future__ import annotations

import threading
from typing import Any

from flowforge import DefinitionError, Flow, Skip

#: Tasks print from several threads at once with the thread executor.
PRINT_LOCK = threading.Lock()
#: Tasks that fail when they run (to show a failing task).
BROKEN: set[str] = set()


def ran(name: str, **inputs: Any) -> None:
    """Say that ``name`` ran, with what; fail if it is broken."""
    if name in BROKEN:
        raise RuntimeError(f"{name} failed")
    with PRINT_LOCK:
        print(f"  {name} ran with {inputs}")


# [tasks]
def checkout(version: str) -> str:
    ran("checkout", version=version)
    return "src/"


def compile_lib(checkout: str) -> str:
    ran("compile_lib", checkout=checkout)
    return "lib.o"


def compile_app(checkout: str) -> str:
    ran("compile_app", checkout=checkout)
    return "app.o"


def docs(checkout: str, skip_docs: bool = False) -> str:
    if skip_docs:
        raise Skip("docs not wanted")
    ran("docs", checkout=checkout)
    return "html/"


def link(compile_lib: str, compile_app: str) -> str:
    ran("link", compile_lib=compile_lib, compile_app=compile_app)
    return "app"


def package(link: str, docs: str, version: str) -> str:
    ran("package", link=link, docs=docs)
    return f"app-{version}.tar.gz"


# [/tasks]


# [dag]
def build_flow(executor: str = "sequential", docs_strategy: str | None = None) -> Flow:
    """The build as a flow of tasks."""
    flow = Flow(flow_id="build", executor=executor)
    flow.task(package, depends_on=["link", "docs"])  # names may come before their tasks
    flow.task(checkout)
    flow.task(compile_lib, depends_on=["checkout"])
    flow.task(compile_app, depends_on=["checkout"])
    flow.task(docs, depends_on=["checkout"], error_strategy=docs_strategy)
    flow.task(link, depends_on=["compile_lib", "compile_app"])
    return flow


# [/dag]


def statuses(job: Any, flow: Flow) -> dict[str, str]:
    """Each task's status in ``job``."""
    return {name: job.task_status(name) for name in flow.routines}


def run_dag() -> None:
    # [run]
    flow = build_flow()
    flow.validate(strict=True)
    print("sequential:")
    job = flow.execute(entry_params={"version": "1.2"})
    print(f"  {job.status}: {job.output('package')}")
    # [/run]
    # [threads]
    with build_flow(executor="thread") as threaded:
        print("threads:")
        job = threaded.execute(entry_params={"version": "1.2"})
    print(f"  {job.status}: {job.outputs['package']}")
    # [/threads]


def fail_and_resume() -> None:
    # [resume]
    flow = build_flow()
    BROKEN.add("docs")
    print("docs fails:")
    job = flow.execute(entry_params={"version": "1.2"})
    print(f"  {job.status}: {job.reason}")
    print(f"  docs {job.task_status('docs')}, package {job.task_status('package')}")
    BROKEN.clear()
    print("fixed, resumed:")
    job = flow.resume(job)
    print(f"  {job.status}: {job.output('package')}")
    # [/resume]


def skip_and_continue() -> None:
    # [strategies]
    BROKEN.add("docs")
    for strategy in ("continue", "skip"):
        flow = build_flow(docs_strategy=strategy)
        print(f"docs fails under {strategy}:")
        job = flow.execute(entry_params={"version": "1.2"})
        print(f"  {job.status}; link {job.task_status('link')}")
        print(f"  skipped: {[(s.routine_id, s.reason) for s in job.skipped]}")
    BROKEN.clear()
    # [/strategies]
    # [skip]
    print("docs skips itself:")
    job = build_flow().execute(entry_params={"version": "1.2", "skip_docs": True})
    print(f"  {job.status}; {statuses(job, build_flow())}")
    # [/skip]


def mistakes() -> None:
    # [mistakes]
    flow = build_flow()
    try:
        flow.task(checkout, name="fetch", depends_on=["package"])
        flow.connect("fetch", "done", "checkout", "input")
        flow.execute(entry_params={"version": "1.2"})
    except DefinitionError as error:
        print(f"refused: {error}")
    try:
        build_flow().execute(entry_params={})
    except DefinitionError as error:
        print(f"refused: {error}")
    # [/mistakes]


if __name__ == "__main__":
    run_dag()
    fail_and_resume()
    skip_and_continue()
    mistakes()
