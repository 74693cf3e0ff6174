"""Recipe: a stage pipeline with per-stage concurrency and graceful shutdown.

Many items go through three stages, built with ``Flow.pipeline``::

    source -> fetch -> enrich -> write

``fetch`` waits on a (simulated) remote service, so it runs 8 calls at once;
``enrich`` runs 4; ``write`` appends to one file, so it runs one at a time.
The thread executor runs the calls; each routine's ``max_concurrency`` is its
stage's limit. ``Flow.start`` runs the job in the background.

Half-way through, the process receives SIGTERM, as it would from a
supervisor or ``kill``. The job pauses gracefully: no new call starts, the
calls in flight finish, and everything not yet done stays in the job, which
is saved as JSON. A new flow (as after a restart) resumes it. Every item is
written exactly once.

Run it with ``python examples/recipe_pipeline.py`` (POSIX signals: Linux,
macOS). ``docs/cookbook/pipeline.rst`` explains it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from flowforge import Flow, JobHandle, JobState, Routine, signals

ITEMS = 200


# [routines]
class Stage(Routine):
    """A routine that notes the most calls it ever had running at once (``peak``)."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0
        self._running = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Count this call as running while the block runs."""
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1


class Source(Routine):
    """Entry: emits ``item(n)`` for ``n`` in ``range(count)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.start)
        self.define_event("item", ["n"])

    def start(self, count: int) -> None:
        for n in range(count):
            self.emit("item", n=n)


class Fetch(Stage):
    """Gets a record for ``n`` from a slow service (sleeps ``latency`` seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.fetch)
        self.define_event("record", ["n", "record"])

    def fetch(self, n: int) -> None:
        with self.running():
            time.sleep(self.get_config("latency", 0.01))
            self.emit("record", n=n, record={"id": n, "name": f"item-{n}"})


class Enrich(Stage):
    """Adds a computed field to the record."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.enrich)
        self.define_event("record", ["n", "record"])

    def enrich(self, n: int, record: dict[str, Any]) -> None:
        with self.running():
            time.sleep(0.002)
            self.emit("record", n=n, record={**record, "square": n * n})


class Write(Stage):
    """Appends each record as a JSON line to the file named by the ``path`` config."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.write)

    def write(self, record: dict[str, Any]) -> None:
        with self.running(), open(self.get_config("path"), "a") as out:
            out.write(json.dumps(record) + "\n")
        self._stats["written"] = self._stats.get("written", 0) + 1


# [/routines]


# [build]
LIMITS = {"fetch": 8, "enrich": 4, "write": 1}


def build_flow(path: Path) -> Flow:
    """The pipeline on a pool of 16 threads, each stage with its own limit."""
    stages = [("source", Source()), ("fetch", Fetch()), ("enrich", Enrich()), ("write", Write())]
    for name, routine in stages:
        routine.max_concurrency = LIMITS.get(name, 1)
    flow = Flow.pipeline("pipeline", stages, executor="thread", max_workers=16)
    flow.get_routine("write").set_config(path=str(path))
    return flow


# [/build]


# [shutdown]
def run_gracefully(handle: JobHandle) -> JobState:
    """Wait for the job ``handle`` runs in the background; SIGTERM or Ctrl-C pauses it.

    Python runs signal handlers on the main thread, which here only waits: the
    job runs in the handle's own thread. A signal pauses the job: no new call
    starts, the calls in flight finish, the rest stays in the job.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handle.pause(f"{signal.Signals(signum).name} received")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not handle.done():
            handle.wait(0.05)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return handle.wait()


# [/shutdown]


def send_sigterm_after(flow: Flow, written: int) -> None:
    """Stand-in for a supervisor: SIGTERM this process once ``written`` items are written."""
    done = [0]

    def on_finished(sender: Flow, routine_id: str, **_: Any) -> None:
        if routine_id == "write":
            done[0] += 1
            if done[0] == written:
                os.kill(os.getpid(), signal.SIGTERM)

    signals.routine_finished.connect(on_finished, sender=flow, weak=False)


def main(workdir: Path) -> None:
    output, job_file = workdir / "records.jsonl", workdir / "job.json"
    # [run]
    flow = build_flow(output)
    send_sigterm_after(flow, written=50)
    job = run_gracefully(flow.start("source", {"count": ITEMS}))
    written = job.get_routine_state("write")["stats"]["written"]
    print(f"{job.status} ({job.reason}): {written} written, {len(job.pending)} message(s) pending")
    peaks = {stage: flow.get_routine(stage).peak for stage in LIMITS}
    print(f"peak calls at once: {peaks}, limits: {LIMITS}")
    print("every stage within its limit:", all(peaks[s] <= LIMITS[s] for s in LIMITS))
    job_file.write_text(json.dumps(job.serialize()))
    flow.close()

    # After a restart: a new flow, the job from its file.
    flow = build_flow(output)
    job = JobState.from_dict(json.loads(job_file.read_text()))
    job = run_gracefully(flow.start(job_state=job))
    flow.close()
    print(f"resumed: {job.status}, {job.get_routine_state('write')['stats']['written']} written")
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    ids = sorted(record["id"] for record in lines)
    print(f"{len(lines)} line(s) in the file; every item exactly once: {ids == list(range(ITEMS))}")
    # [/run]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        main(Path(directory))
