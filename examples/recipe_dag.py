"""Recipe: a DAG of tasks, each waiting for all of its dependencies.

A build described as tasks and their dependencies, as a workflow scheduler
would take it::

    checkout -> compile_lib --> link --> package
             -> compile_app -/          /
             -> docs ------------------/

Every task is a :class:`Task` routine whose ``after`` slot is a ``"join"``:
it runs once every task it depends on has finished, with what each of them
produced. The script runs the DAG, then shows what happens when a task
fails: the job stops, the fix is made, and resuming runs only what had not
run yet.

Run it with ``python examples/recipe_dag.py``. ``docs/cookbook/dag.rst``
explains it.
"""

from __future__ import annotations

import threading
from typing import Any

from flowforge import ErrorHandler, ErrorStrategy, Flow, Routine

#: Tasks print from several threads at once with the thread executor.
PRINT_LOCK = threading.Lock()


# [routines]
class Start(Routine):
    """Entry: starts the tasks that depend on nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.start)
        self.define_event("go", ["version"])

    def start(self, version: str) -> None:
        self.emit("go", version=version)


class Task(Routine):
    """One task: runs when every dependency has finished; emits what it produced.

    Config:
        produces: The name of the artifact it makes (default: its id).
        fail: Raise instead of working (to show a failing task).
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("after", handler=self.run, merge_strategy="join")
        self.define_event("done", ["artifact"])

    def run(self, **inputs: Any) -> None:
        if self.get_config("fail", False):
            raise RuntimeError(f"{self.routine_id} failed")
        artifact = self.get_config("produces", self.routine_id)
        with PRINT_LOCK:
            print(f"  {self.routine_id} ran with {inputs}")
        self.emit("done", artifact=artifact)


# [/routines]

# [dag]
#: Each task and the tasks it depends on.
DAG: dict[str, list[str]] = {
    "checkout": [],
    "compile_lib": ["checkout"],
    "compile_app": ["checkout"],
    "docs": ["checkout"],
    "link": ["compile_lib", "compile_app"],
    "package": ["link", "docs"],
}
PRODUCES = {
    "checkout": "src/",
    "compile_lib": "lib.o",
    "compile_app": "app.o",
    "docs": "html/",
    "link": "app",
    "package": "app.tar.gz",
}


def build_flow(
    dag: dict[str, list[str]], executor: str = "sequential", rename: bool = True
) -> Flow:
    """One Task per key of ``dag``, its ``after`` slot joined to each dependency."""
    flow = Flow(flow_id="build", executor=executor)
    flow.add_routine(Start(), "start")
    for name in dag:
        task = Task()
        task.set_config(produces=PRODUCES.get(name, name))
        flow.add_routine(task, name)
    for name, dependencies in dag.items():
        if not dependencies:
            flow.connect("start", "go", name, "after")
        for dependency in dependencies:
            # Name each input after its task, so the join's data says who sent what.
            mapping = {"artifact": dependency} if rename else None
            flow.connect(dependency, "done", name, "after", param_mapping=mapping)
    return flow


# [/dag]


def run_dag() -> None:
    # [run]
    flow = build_flow(DAG)
    flow.validate("start", strict=True)
    print("sequential:")
    job = flow.execute("start", {"version": "1.2"})
    print(f"  {job.status}; each task ran once: {all_ran_once(job, DAG)}")
    # [/run]
    # [threads]
    with build_flow(DAG, executor="thread") as threaded:
        print("threads:")
        job = threaded.execute("start", {"version": "1.2"})
    print(f"  {job.status}; each task ran once: {all_ran_once(job, DAG)}")
    # [/threads]


def all_ran_once(job: Any, dag: dict[str, list[str]]) -> bool:
    """Whether every task of ``dag`` made exactly one successful call in ``job``."""
    return all(job.get_routine_state(name)["activations"] == 1 for name in dag)


def fail_and_resume() -> None:
    # [resume]
    flow = build_flow(DAG)
    flow.get_routine("docs").set_config(fail=True)
    print("docs fails:")
    job = flow.execute("start", {"version": "1.2"})
    print(f"  {job.status}: {job.reason}")
    flow.get_routine("docs").set_config(fail=False)
    print("fixed, resumed:")
    job = flow.resume(job)
    print(f"  {job.status}; each task ran once: {all_ran_once(job, DAG)}")
    # [/resume]


def skip_and_continue() -> None:
    # [strategies]
    for strategy in (ErrorStrategy.SKIP, ErrorStrategy.CONTINUE):
        flow = build_flow(DAG)
        flow.get_routine("docs").set_config(fail=True)
        flow.get_routine("docs").set_error_handler(ErrorHandler(strategy))
        print(f"docs fails under {strategy.name}:")
        job = flow.execute("start", {"version": "1.2"})
        ran = job.get_routine_state("package")["activations"]
        print(f"  {job.status}; package ran {ran} time(s); skipped: {job_skips(job)}")
    # [/strategies]


def job_skips(job: Any) -> list[str]:
    """The routines the job recorded as skipped."""
    return [skip.routine_id for skip in job.skipped]


def mistakes() -> None:
    # [mistakes]
    flow = build_flow({"checkout": [], "lint": ["checkout"]})
    flow.add_routine(Task(), "orphan")  # added, but connected to nothing
    for problem in flow.validate("start"):
        print(f"{problem.severity}: {problem.where}: {problem.message}")
    # [/mistakes]
    # [no-rename]
    print("without param_mapping:")
    build_flow(DAG, rename=False).execute("start", {"version": "1.2"})
    # [/no-rename]


if __name__ == "__main__":
    run_dag()
    fail_and_resume()
    skip_and_continue()
    mistakes()
