"""The load check of ``flowforge serve``: pollers and event streams while jobs run.

A real ``flowforge serve`` (uvicorn, on a free loopback port, a token, an
SQLite store in a temporary directory, ``--workers`` threads running the
jobs) is started in a subprocess. Then, at once:

- ``JOBS`` jobs of ``src -> slow -> double -> total`` run (flowforge.testing
  Source, Sleep and Double, and :class:`Total` below, which sums what it gets
  into its stats), each sleeping a little per item so they last most of the run;
- ``POLLERS`` client threads, each on one keep-alive ``http.client``
  connection, poll ``GET /api/jobs`` (every fifth request ``GET
  /api/jobs/{id}``) with ``THINK`` seconds between requests, as dashboards do;
- ``STREAMS`` clients read the jobs' ``GET /api/jobs/{id}/events`` streams.

Every loop is bounded by the run's duration (30 s; 3 s and fewer clients
with ``--quick``). Afterwards the run must show no HTTP error, every job
completed with its exact total, and every event stream complete: its status
events are ``[queued,] running, completed`` with none missing, its last
progress event shows every item through, and it ends with ``end``.
Otherwise the workload raises. The rows are the polls' rate, their p50 and
p99 latency (target p99 < 50 ms), the events received and the errors.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowforge import Routine

_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TOKEN = "load-check-token"
#: Seconds a poller waits between two requests.
THINK = 0.1
#: Each job's values start at a multiple of this, so every job has its own total.
SPAN = 10_000

FLOW = """\
flow_id: load
entry: {routine: src, params: {values: [1]}}
routines:
  src: {class: "flowforge.testing:Source"}
  slow: {class: "flowforge.testing:Sleep", config: {seconds: %(seconds)s}}
  double: {class: "flowforge.testing:Double"}
  total: {class: "benchmarks.service_bench:Total"}
connections:
  - src.out -> slow.in
  - slow.out -> double.in
  - double.out -> total.in
"""


class Total(Routine):
    """Adds up the values it receives in ``stats['total']``, counting them in ``stats['count']``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("in", handler=self.add)

    def add(self, value: int) -> None:
        """Add the value to the job's total."""
        self._stats["total"] = self._stats.get("total", 0) + value
        self._stats["count"] = self._stats.get("count", 0) + 1


class Client:
    """One keep-alive HTTP connection to the server, with the token."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The status and decoded JSON answer of one request."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        text = response.read()
        return response.status, json.loads(text) if text else None

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


class Load:
    """What the clients saw: latencies, errors and each stream's events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.streams: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []

    def error(self, message: str) -> None:
        """Note a failed request or a broken stream."""
        with self.lock:
            self.errors.append(message)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(directory: Path, workers: int) -> Iterator[int]:
    """``flowforge serve`` over an SQLite store in ``directory`` until the block ends; its port."""
    port = free_port()
    (directory / "token").write_text(TOKEN)
    command = [
        sys.executable,
        "-m",
        "flowforge.cli",
        "serve",
        str(directory / "flows"),
        "--store",
        f"sqlite:///{directory / 'jobs.db'}",
        "--port",
        str(port),
        "--token-file",
        str(directory / "token"),
        "--workers",
        str(workers),
        "--allow",
        "benchmarks.service_bench",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
    proc = subprocess.Popen(command, env=env, cwd=_ROOT)
    try:
        _wait_until_up(proc, port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_until_up(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flowforge serve exited {proc.returncode} before serving")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("flowforge serve did not start listening within 60 s")


def poll(port: int, job_ids: list[str], until: float, load: Load) -> None:
    """Poll the job list (and every fifth time one job) until ``until``."""
    client = Client(port)
    latencies = []
    n = 0
    try:
        while time.monotonic() < until:
            path = f"/api/jobs/{job_ids[n % len(job_ids)]}" if n % 5 == 4 else "/api/jobs"
            start = time.perf_counter()
            try:
                status, _ = client.call("GET", path)
            except (OSError, http.client.HTTPException) as exc:
                load.error(f"GET {path}: {exc!r}")
                client.close()
                client = Client(port)
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                load.error(f"GET {path}: HTTP {status}")
            n += 1
            time.sleep(THINK)
    finally:
        client.close()
    with load.lock:
        load.latencies.extend(latencies)


def stream(port: int, job_id: str, timeout: float, load: Load) -> None:
    """Read the job's event stream to its end (or the socket's ``timeout``)."""
    client = Client(port, timeout)
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        client.connection.request("GET", f"/api/jobs/{job_id}/events", headers=client.headers)
        response = client.connection.getresponse()
        if response.status != 200:
            load.error(f"events of {job_id}: HTTP {response.status}")
            return
        name = ""
        for line in response:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                name = text[7:]
            elif text.startswith("data: "):
                events.append((name, json.loads(text[6:])))
    except (OSError, http.client.HTTPException) as exc:
        load.error(f"events of {job_id}: {exc!r}")
    finally:
        client.close()
        with load.lock:
            load.streams.append((job_id, events))


def stream_problem(events: list[tuple[str, dict[str, Any]]], items: int) -> str | None:
    """What is wrong with one job's stream, or None when it is complete."""
    statuses = [data["status"] for name, data in events if name == "status"]
    if statuses not in (["queued", "running", "completed"], ["running", "completed"]):
        return f"status changes {statuses}"
    if not events or events[-1][0] != "end" or events[-1][1]["status"] != "completed":
        return f"last event {events[-1] if events else None}, not the end of a completed job"
    progress = [data for name, data in events if name == "progress"]
    calls = progress[-1]["routines"]["total"]["calls"] if progress else None
    if calls != items:
        return f"last progress shows {calls} of {items} items through"
    return None


def job_problem(detail: dict[str, Any], index: int, items: int) -> str | None:
    """What is wrong with one finished job's result, or None when it is exact."""
    values = range(index * SPAN, index * SPAN + items)
    expected = {"total": 2 * sum(values), "count": items}
    stats = detail["routines"]["total"]["stats"]
    if detail["status"] != "completed" or detail["errors"]:
        return f"status {detail['status']}, errors {detail['errors']}"
    if stats != expected:
        return f"stats {stats}, expected {expected}"
    return None


def check(port: int, job_ids: list[str], items: int, load: Load) -> list[str]:
    """Every problem the run left: errors, wrong results, incomplete streams."""
    problems = list(load.errors)
    client = Client(port)
    try:
        for index, job_id in enumerate(job_ids):
            status, detail = client.call("GET", f"/api/jobs/{job_id}")
            problem = f"HTTP {status}" if status != 200 else job_problem(detail, index, items)
            if problem:
                problems.append(f"job {job_id}: {problem}")
    finally:
        client.close()
    for job_id, events in load.streams:
        problem = stream_problem(events, items)
        if problem:
            problems.append(f"events of {job_id}: {problem}")
    return problems


def run_load(
    jobs: int, pollers: int, streams: int, seconds: float
) -> tuple[Load, float, int, list[str]]:
    """Run the load; what the clients saw, the pollers' seconds, the stream count, problems."""
    item_seconds = 0.1 if seconds >= 10 else 0.05
    items = max(1, int(seconds * 0.8 / item_seconds))
    load = Load()
    with tempfile.TemporaryDirectory(prefix="flowforge-load-") as tmp:
        directory = Path(tmp)
        (directory / "flows").mkdir()
        (directory / "flows" / "load.yaml").write_text(FLOW % {"seconds": item_seconds})
        with server(directory, jobs) as port:
            job_ids = _submit(port, jobs, items)
            started = time.monotonic()
            until = started + seconds
            threads = [
                threading.Thread(target=stream, args=(port, job_ids[i % jobs], 2 * seconds, load))
                for i in range(streams)
            ]
            threads += [
                threading.Thread(target=poll, args=(port, job_ids, until, load))
                for _ in range(pollers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(3 * seconds + 30)
            elapsed = time.monotonic() - started
            problems = check(port, job_ids, items, load)
    if len(load.streams) != streams:
        problems.append(f"{streams - len(load.streams)} event streams never finished")
    return load, min(elapsed, seconds), items, problems


def _submit(port: int, jobs: int, items: int) -> list[str]:
    client = Client(port)
    try:
        ids = []
        for index in range(jobs):
            values = list(range(index * SPAN, index * SPAN + items))
            status, answer = client.call(
                "POST", "/api/flows/load/jobs", {"params": {"values": values}}
            )
            if status != 201:
                raise RuntimeError(f"submitting a load job answered HTTP {status}: {answer}")
            ids.append(answer["job_id"])
        return ids
    finally:
        client.close()


def rows(quick: bool) -> list[dict[str, Any]]:
    """Poll rate and latency, events received and errors; raises if the run was not clean."""
    jobs, pollers, streams, seconds = (2, 5, 2, 3.0) if quick else (10, 50, 20, 30.0)
    load, elapsed, items, problems = run_load(jobs, pollers, streams, seconds)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise RuntimeError(f"the service load check found {len(problems)} problem(s):\n  {shown}")
    cuts = statistics.quantiles(load.latencies, n=100, method="inclusive")
    events = sum(len(events) for _, events in load.streams)
    setting = (
        f"{pollers} pollers ({THINK * 1000:.0f} ms apart), {streams} event streams, "
        f"{jobs} jobs of {items} items, {elapsed:.0f} s on loopback"
    )
    out = [
        _row("requests", "polls answered per second", len(load.latencies) / elapsed, "req/s"),
        _row("p50", "median poll latency", cuts[49] * 1000, "ms"),
        _row("p99", "99th percentile poll latency", cuts[98] * 1000, "ms", ("<", 50.0)),
        _row("sse-events", "server-sent events received, all streams complete", events, "events"),
        _row("errors", "HTTP errors and broken streams", len(load.errors), "errors", ("<=", 0)),
    ]
    return [{**row, "note": setting} for row in out]


def _row(
    figure: str, label: str, value: float, unit: str, target: tuple[str, float] | None = None
) -> dict[str, Any]:
    return {
        "name": f"service.{figure}",
        "label": label,
        "value": value,
        "unit": unit,
        "target": None if target is None else {"op": target[0], "limit": target[1]},
        "note": "",
    }
