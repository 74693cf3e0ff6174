"""A live pipeline: a producer thread feeds parse -> enrich -> write, stopped and resumed.

A producer thread submits lines into an open job (``Flow.start(keep_open=True)``)
of a three-stage :meth:`Flow.pipeline <flowforge.Flow.pipeline>`:

- ``parse`` turns a line into a record;
- ``enrich`` calls a (simulated) flaky service, 4 calls at a time, retried
  on failure;
- ``write`` appends each record to a file, one at a time.

Each stage's slot has a ``capacity``, so the producer blocks instead of
piling up items. The job is checkpointed to a SQLite store, so ``submit``
returns only once the line is stored. Half-way, the script sends itself
SIGTERM (Ctrl-C does the same): the job pauses cleanly, the producer stops,
and the job is then started again from the store, open, and fed the rest.
Every line is written exactly once.

Run it with ``python examples/live_pipeline.py`` (POSIX signals).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobHandle, JobStateError, Routine
from flowforge.store import SQLiteStore

LINES = [f"item-{n},{n * 3}" for n in range(120)]


class Parse(Routine):
    """``"name,value"`` -> a record."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("line", handler=self.parse, capacity=20)
        self.define_event("record", ["name", "value"])

    def parse(self, line: str) -> None:
        name, value = line.split(",")
        self.emit("record", name=name, value=int(value))


class Enrich(Routine):
    """Adds a score from a service that fails every seventh call once."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("record", handler=self.enrich, capacity=20)
        self.define_event("enriched", ["name", "value", "score"])
        self.max_concurrency = 4
        self.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=3, retry_delay=0.0))
        self._calls = 0
        self._lock = threading.Lock()

    def enrich(self, name: str, value: int) -> None:
        with self._lock:
            self._calls += 1
            flaky = self._calls % 7 == 0
        if flaky:
            raise ConnectionError("service busy")
        self.emit("enriched", name=name, value=value, score=value % 10)


class Write(Routine):
    """Appends ``name value score`` to the file in its config."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("row", handler=self.write, capacity=20)

    def write(self, name: str, value: int, score: int) -> None:
        with open(self.get_config("path"), "a", encoding="utf-8") as out:
            out.write(f"{name} {value} {score}\n")


def build(path: Path) -> Flow:
    """The pipeline, writing to ``path``."""
    flow = Flow.pipeline(
        "live-lines",
        [("parse", Parse()), ("enrich", Enrich()), ("write", Write())],
        executor="thread",
        max_workers=6,
    )
    flow.get_routine("write").set_config(path=str(path))
    return flow


def produce(handle: JobHandle, lines: list[str], sent: list[int], stop_at: int | None) -> None:
    """Submit lines from ``sent[0]`` on until done or the job stops taking input.

    At line ``stop_at`` it sends this process SIGTERM, as a supervisor would.
    """
    while sent[0] < len(lines):
        if sent[0] == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
            handle.wait(10)  # the signal pauses the job
        try:
            handle.submit({"line": lines[sent[0]]})
        except JobStateError:
            return  # paused: the rest is sent after the resume
        sent[0] += 1
    handle.close()


def run(handle: JobHandle, sent: list[int], stop_at: int | None) -> None:
    """Feed the job from a thread; pause it on SIGTERM or Ctrl-C; wait, showing progress."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handle.pause(f"signal {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    producer = threading.Thread(target=produce, args=(handle, LINES, sent, stop_at))
    producer.start()
    try:
        while not handle.done():
            handle.wait(0.05)
    finally:
        producer.join()
        for sig, old in previous.items():
            signal.signal(sig, old)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, db = Path(tmp) / "out.txt", Path(tmp) / "jobs.db"
        sent = [0]
        with SQLiteStore(db) as store:
            handle = build(out).start(keep_open=True, store=store)
            run(handle, sent, stop_at=len(LINES) // 2)
            job = handle.job_state
            print(f"paused: {job.status}, {job.reason}; open: {job.open}")
        with SQLiteStore(db) as store:
            saved = store.load(job.job_id)
            handle = build(out).start(job_state=saved, store=store)
            run(handle, sent, stop_at=None)
            print(f"resumed: {handle.status}, {sent[0]} lines submitted")
        written = out.read_text().splitlines()
        names = sorted(line.split()[0] for line in written)
        once = names == sorted(line.split(",")[0] for line in LINES)
        print(f"{len(written)} lines written; each exactly once: {once}")


if __name__ == "__main__":
    main()
