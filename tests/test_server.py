"""The REST API of ``flowforge serve``, through a real uvicorn server on a loopback port.

One server (with a token and two worker threads) serves the whole module
over an SQLite store; the tests talk HTTP to it with the standard library.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cli_support import (
    FAILING_FLOW,
    QUICK_FLOW,
    SLOW_FLOW,
    SLOW_ROUTINES,
    SUMS_FLOW,
    TASKS_MODULE,
    cli,
    invoke,
    write,
)
from server_support import serving

from flowforge import JobState
from flowforge.server import _app, create_app
from flowforge.store import JobBrief, MemoryStore, SQLiteStore

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Api:
    """A tiny HTTP client for the server under test."""

    def __init__(self, port: int) -> None:
        self.port = port

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request; the status and the decoded JSON (or text) answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = dict(AUTH if headers is None else headers)
        if data is not None:
            sent["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        text = response.read().decode()
        connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(text) if "json" in kind and text else text

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """The answer of a request that must succeed with ``status``."""
        got, answer = self.call(method, path, body)
        assert got == status, answer
        return answer

    def wait_status(self, job_id: str, *statuses: str) -> dict[str, Any]:
        """Poll the job until its status is one of ``statuses``."""
        deadline = time.monotonic() + 30
        while True:
            job = self.ok("GET", f"/api/jobs/{job_id}")
            if job["status"] in statuses:
                return dict(job)
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stayed {job['status']}, not {statuses}")
            time.sleep(0.05)

    def events(self, job_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Read the job's Server-Sent Events until the stream ends."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", f"/api/jobs/{job_id}/events", headers=AUTH)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        events, name = [], ""
        for line in response:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                name = text[7:]
            elif text.startswith("data: "):
                events.append((name, json.loads(text[6:])))
        connection.close()
        return events


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flow files: quick, failing, and slow (40 values of 0.05 s) with its routine module."""
    directory = tmp_path_factory.mktemp("flows")
    write(directory, "slow_notes.py", SLOW_ROUTINES)
    write(directory, "slow.yaml", SLOW_FLOW % list(range(40)))
    write(directory, "quick.yaml", QUICK_FLOW)
    write(directory, "failing.yaml", FAILING_FLOW)
    return directory


@pytest.fixture(scope="module")
def api(flows_dir: Path) -> Iterator[Api]:
    """The server, on a free loopback port, for the whole module."""
    store = SQLiteStore(flows_dir / "jobs.db", lease_seconds=5)
    app = create_app(store, [flows_dir], TOKEN, workers=2, max_body=4096, poll=0.05)
    with serving(app) as port:
        yield Api(port)
    store.close()


def test_health_needs_no_token(api: Api) -> None:
    """GET /api/health answers ok and the version without a token."""
    status, answer = api.call("GET", "/api/health", headers={})
    assert (status, answer["status"]) == (200, "ok")
    assert answer["version"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
@pytest.mark.parametrize("path", ["/api/jobs", "/api/flows", "/api/openapi.json", "/api/docs"])
def test_routes_refuse_a_missing_or_wrong_token(
    api: Api, path: str, headers: dict[str, str]
) -> None:
    """Every /api route but health answers 401 with a JSON error without the right token."""
    status, answer = api.call("GET", path, headers=headers)
    assert status == 401
    assert answer["error"]["type"] == "unauthorized"


def test_the_token_cookie_is_accepted(api: Api) -> None:
    """The flowforge_token cookie stands for the bearer header (the dashboard's way)."""
    status, _ = api.call("GET", "/api/jobs", headers={"Cookie": f"flowforge_token={TOKEN}"})
    assert status == 200


def test_flows_are_listed_with_their_routines_and_entry(api: Api) -> None:
    """GET /api/flows lists each flow's id, routines and entry."""
    flows = {f["flow_id"]: f for f in api.ok("GET", "/api/flows")["flows"]}
    assert set(flows) == {"quick", "failing", "slow"}
    assert flows["quick"]["routines"] == ["source", "double", "sink"]
    assert flows["quick"]["entry"]["routine_id"] == "source"


def test_a_flow_definition_and_its_graph(api: Api) -> None:
    """A flow's document and its Mermaid and DOT graphs are served."""
    assert api.ok("GET", "/api/flows/quick")["flow_id"] == "quick"
    assert api.ok("GET", "/api/flows/quick/graph?format=mermaid").startswith("flowchart LR")
    assert "digraph" in api.ok("GET", "/api/flows/quick/graph?format=dot")
    status, answer = api.call("GET", "/api/flows/quick/graph?format=png")
    assert status == 422 and "format" in answer["error"]["message"]


def test_unknown_flow_job_and_route_are_json_404(api: Api) -> None:
    """Unknown flows, jobs and routes answer 404 with a JSON error."""
    paths = ("/api/flows/nope", "/api/jobs/nope", "/api/jobs/nope/events", "/api/nothing-here")
    for path in paths:
        status, answer = api.call("GET", path)
        assert status == 404, path
        assert answer["error"]["type"] == "not_found"


def test_a_wrong_method_is_a_json_405(api: Api) -> None:
    """A route called with the wrong method answers 405 in JSON."""
    status, answer = api.call("PUT", "/api/jobs")
    assert status == 405 and answer["error"]["type"] == "method_not_allowed"


def test_a_created_job_runs_to_completion(api: Api) -> None:
    """POST creates a queued job (201, URL); the server's workers run it to completion."""
    created = api.ok("POST", "/api/flows/quick/jobs", {"params": {"values": [5, 6]}}, 201)
    assert created["url"] == f"/api/jobs/{created['job_id']}"
    job = api.wait_status(created["job_id"], "completed")
    assert job["routines"]["double"]["calls"] == 2
    assert job["outputs"] == {}
    assert job["errors"] == []


@pytest.fixture
def queue_only(tmp_path: Path) -> Iterator[tuple[Api, Path]]:
    """A server that runs no jobs itself (workers=0), over a flow of tasks."""
    write(tmp_path, "server_tasks.py", TASKS_MODULE)
    write(tmp_path, "sums.yaml", SUMS_FLOW)
    store = SQLiteStore(tmp_path / "jobs.db", lease_seconds=5)
    with serving(create_app(store, [tmp_path], TOKEN, workers=0, poll=0.05)) as port:
        yield Api(port), tmp_path
    store.close()


def test_without_workers_a_job_waits_for_a_worker_process_and_shows_task_outputs(
    queue_only: tuple[Api, Path],
) -> None:
    """With workers=0 a created job stays queued until a `flowforge worker` process runs
    it; the job then shows each task's output."""
    api, directory = queue_only
    job_id = api.ok("POST", "/api/flows/sums/jobs", {"params": {"n": 4}}, 201)["job_id"]
    time.sleep(0.5)  # the server's own worker, if it wrongly had one, would have run it
    assert api.ok("GET", f"/api/jobs/{job_id}")["status"] == "queued"
    worker = cli(
        "worker",
        "--store",
        str(directory / "jobs.db"),
        "--flows",
        str(directory),
        "--drain",
        cwd=directory,
    )
    assert worker.returncode == 0, worker.stderr
    job = api.wait_status(job_id, "completed")
    assert job["outputs"] == {"numbers": [0, 1, 2, 3], "total": 6}


def test_a_chosen_job_id_is_kept_and_a_taken_one_is_409(api: Api) -> None:
    """A job_id in the body names the job; the same id again is a 409."""
    api.ok("POST", "/api/flows/quick/jobs", {"job_id": "mine-1"}, 201)
    status, answer = api.call("POST", "/api/flows/quick/jobs", {"job_id": "mine-1"})
    assert status == 409 and "mine-1" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, "JSON"),
        (b"[1, 2]", 422, "body"),
        (b'{"params": [1]}', 422, "params"),
        (b'{"job_id": "a b"}', 422, "job_id"),
        (b'{"job_id": 7}', 422, "job_id"),
        (b'{"deadline": -1}', 422, "deadline"),
        (b'{"deadline": "soon"}', 422, "deadline"),
        (b'{"colour": "red"}', 422, "colour"),
        (b'{"params": {"values": [NaN]}}', 400, "NaN"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(
    api: Api, raw: bytes, status: int, field: str
) -> None:
    """A body that is not JSON is 400; a wrong field is 422 naming it."""
    got, answer = api.call("POST", "/api/flows/quick/jobs", raw=raw)
    assert got == status
    assert field in answer["error"]["message"]


def test_an_oversized_body_is_413(api: Api) -> None:
    """A body over max_body answers 413 and creates nothing."""
    before = api.ok("GET", "/api/jobs?limit=1")["total"]
    big = {"params": {"values": ["x" * 100] * 100}}
    status, answer = api.call("POST", "/api/flows/quick/jobs", big)
    assert status == 413 and answer["error"]["type"] == "too_large"
    assert api.ok("GET", "/api/jobs?limit=1")["total"] == before


def test_jobs_are_listed_newest_first_paged_and_filtered(api: Api) -> None:
    """GET /api/jobs pages newest first with a total, filtered by flow and status."""
    ids = [api.ok("POST", "/api/flows/failing/jobs", {}, 201)["job_id"] for _ in range(3)]
    page = api.ok("GET", "/api/jobs?flow_id=failing&limit=2")
    assert page["total"] >= 3
    assert [j["job_id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = api.ok("GET", "/api/jobs?flow_id=failing&limit=2&offset=1")
    assert rest["jobs"][0]["job_id"] == ids[1]
    for job in api.ok("GET", "/api/jobs?status=queued")["jobs"]:
        assert job["status"] == "queued"


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=abc", "limit"), ("offset=-1", "offset"), ("status=x", "status")],
)
def test_bad_list_queries_are_422_naming_the_param(api: Api, query: str, field: str) -> None:
    """A bad limit, offset or status is a 422 naming it."""
    status, answer = api.call("GET", f"/api/jobs?{query}")
    assert status == 422 and answer["error"]["message"].startswith(field)


def test_pause_resume_cancel_and_delete_a_running_job(api: Api) -> None:
    """Pause (202, then 409), resume, cancel (then 409), and delete (409 live, then 204)."""
    job_id = api.ok("POST", "/api/flows/slow/jobs", {}, 201)["job_id"]
    api.wait_status(job_id, "running")
    assert api.ok("POST", f"/api/jobs/{job_id}/pause", {"reason": "lunch"}, 202)
    assert api.wait_status(job_id, "paused")["reason"] == "lunch"
    status, answer = api.call("POST", f"/api/jobs/{job_id}/pause")
    assert status == 409 and answer["error"]["type"] == "conflict"
    api.ok("POST", f"/api/jobs/{job_id}/resume", None, 202)
    api.wait_status(job_id, "queued", "running")
    status, _ = api.call("DELETE", f"/api/jobs/{job_id}")
    assert status == 409
    api.ok("POST", f"/api/jobs/{job_id}/cancel", None, 202)
    api.wait_status(job_id, "cancelled")
    assert api.call("POST", f"/api/jobs/{job_id}/cancel")[0] == 409
    assert api.call("POST", f"/api/jobs/{job_id}/resume")[0] == 409
    assert api.call("DELETE", f"/api/jobs/{job_id}")[0] == 204
    assert api.call("GET", f"/api/jobs/{job_id}")[0] == 404


def test_a_deadline_cancels_a_job_that_runs_too_long(api: Api) -> None:
    """A job created with a deadline is cancelled once it passes."""
    job_id = api.ok("POST", "/api/flows/slow/jobs", {"deadline": 0.5}, 201)["job_id"]
    assert "deadline" in api.wait_status(job_id, "cancelled")["reason"]


def test_events_stream_progress_failures_and_status_until_the_end(api: Api) -> None:
    """The SSE stream of a failing job has progress, failures, statuses, and ends."""
    job_id = api.ok("POST", "/api/flows/failing/jobs", {}, 201)["job_id"]
    events = api.events(job_id)
    names = [name for name, _ in events]
    assert names[-1] == "end"
    assert "progress" in names
    failures = [data for name, data in events if name == "failure"]
    assert failures and failures[0]["routine_id"] == "flaky" and failures[0]["traceback"]
    statuses = [data["status"] for name, data in events if name == "status"]
    assert statuses[-1] == events[-1][1]["status"] == "failed"


def test_every_stream_of_a_job_however_late_sees_it_through(api: Api) -> None:
    """Streams opened while a job runs each get its state, its changes and the end."""
    job_id = api.ok("POST", "/api/flows/slow/jobs", {}, 201)["job_id"]
    seen: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    readers = [
        threading.Thread(target=lambda i=i: seen.update({i: api.events(job_id)})) for i in range(3)
    ]
    readers[0].start()
    api.wait_status(job_id, "running")
    for reader in readers[1:]:
        reader.start()
    for reader in readers:
        reader.join(30)
    assert sorted(seen) == [0, 1, 2]
    assert [d["status"] for n, d in seen[0] if n == "status"][-2:] == ["running", "completed"]
    for events in seen.values():
        assert events[0][0] == "progress"
        assert [d["status"] for n, d in events if n == "status"][-1] == "completed"
        assert events[-1] == ("end", {"job_id": job_id, "status": "completed"})
        last = [data for name, data in events if name == "progress"][-1]
        assert (last["routines"]["sink"]["calls"], last["pending"]) == (40, 0)


class Scripted(MemoryStore):
    """A store whose job takes the given statuses (``"paused:why"`` with a reason), one per
    read, counting the reads."""

    def __init__(self, *statuses: str) -> None:
        super().__init__()
        self.statuses = list(statuses)
        self.reads = 0

    def load_brief(self, job_id: str) -> JobBrief:
        """The job with its next status (the last one stays)."""
        self.reads += 1
        status, _, reason = (
            self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        ).partition(":")
        job = JobState(flow_id="f", job_id=job_id, status=status, reason=reason or None)
        return JobBrief(job, 0)


def _service(store: Scripted) -> _app._Service:
    return _app._Service(store, {}, None, _app.MAX_BODY, None)


async def _drain(stream: AsyncIterator[str]) -> list[str]:
    return [event.split("\n")[0] async for event in stream]


def test_one_store_read_per_poll_feeds_every_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three streams of a job get the same events from one read of the store per poll."""
    monkeypatch.setattr(_app, "_SSE_POLL", 0.01)
    store = Scripted("queued", "running", "running", "completed")
    service = _service(store)

    async def follow() -> list[list[str]]:
        return await asyncio.gather(*(_drain(_app._event_stream(service, "j")) for _ in range(3)))

    streams = asyncio.run(follow())
    expected = ["event: progress", "event: status", "event: status", "event: status", "event: end"]
    assert streams == [expected] * 3
    assert store.reads == 4
    assert service.watches == {}


def test_a_status_event_is_sent_when_the_status_changes_not_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new reason under the same status sends no second status event."""
    monkeypatch.setattr(_app, "_SSE_POLL", 0.01)
    stream = _app._event_stream(_service(Scripted("paused:lunch", "paused:tea", "cancelled")), "j")
    events = asyncio.run(_drain(stream))
    assert events == ["event: progress", "event: status", "event: status", "event: end"]


def test_the_reader_stops_when_its_last_stream_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing a job's only stream stops its reader and forgets it."""
    monkeypatch.setattr(_app, "_SSE_POLL", 0.01)
    store = Scripted("running")
    service = _service(store)

    async def leave() -> tuple[dict[str, Any], bool]:
        stream = _app._event_stream(service, "j")
        await anext(stream)
        reader = service.watches["j"]._task
        assert reader is not None
        await stream.aclose()
        left = dict(service.watches)
        await asyncio.wait([reader])
        return left, reader.cancelled()

    assert asyncio.run(leave()) == ({}, True)


def test_a_stream_that_falls_behind_ends_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream more than the backlog behind is ended; the job's other streams get every event."""
    monkeypatch.setattr(_app, "_SSE_POLL", 0.01)
    monkeypatch.setattr(_app, "_SSE_BACKLOG", 4)
    store = Scripted("queued", "running", "paused", "running", "completed")
    service = _service(store)

    async def race() -> tuple[list[str], list[str]]:
        slow = _app._event_stream(service, "j")
        quick = asyncio.create_task(_drain(_app._event_stream(service, "j")))
        first = await anext(slow)
        everything = await quick
        return [first.split("\n")[0], *await _drain(slow)], everything

    slow, quick = asyncio.run(race())
    assert quick == ["event: progress"] + ["event: status"] * 5 + ["event: end"]
    assert slow[-1] != "event: end" and len(slow) < len(quick)


def test_a_job_shows_its_errors_with_tracebacks_and_its_history(api: Api) -> None:
    """A finished job lists its routine failures with tracebacks; history pages."""
    job_id = api.ok("POST", "/api/flows/failing/jobs", {}, 201)["job_id"]
    job = api.wait_status(job_id, "completed", "failed")
    assert job["errors"] and "Traceback" in job["errors"][0]["traceback"]
    history = api.ok("GET", f"/api/jobs/{job_id}/history?routine=source&limit=1")
    assert history["total"] >= 1 and len(history["entries"]) == 1
    status, answer = api.call("GET", f"/api/jobs/{job_id}/history?routine=nope")
    assert status == 422 and answer["error"]["message"].startswith("routine")


def test_the_openapi_document_covers_every_route(api: Api) -> None:
    """/api/openapi.json describes every route of the table, and /api/docs is a page."""
    document = api.ok("GET", "/api/openapi.json")
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]["/api/jobs/{job_id}"]) == {"get", "delete"}
    assert "/api/jobs/{job_id}/events" in document["paths"]
    assert len(document["paths"]) == 14
    page = api.ok("GET", "/api/docs")
    assert "/api/openapi.json" in page and "<script" in page
    assert "https://" not in page and "//cdn" not in page


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    """flowforge serve --host 0.0.0.0 without a token exits 2 and says why."""
    result = cli("serve", "--host", "0.0.0.0", "--store", "memory://", cwd=tmp_path)
    assert result.returncode == 2
    assert "without a token" in result.stderr


@pytest.mark.parametrize("path", ["/", "/jobs/anything", "/flows", "/flows/quick"])
def test_the_dashboard_pages_are_served_without_a_token(api: Api, path: str) -> None:
    """Every dashboard page is the same HTML shell, loading the shipped script and styles."""
    status, page = api.call("GET", path, headers={})
    assert status == 200
    assert '<script src="/static/dashboard.js">' in page


@pytest.mark.parametrize("asset", ["dashboard.js", "dashboard.css"])
def test_the_dashboard_assets_ship_with_the_package_and_use_no_cdn(api: Api, asset: str) -> None:
    """The script and styles are served from the package and load nothing from elsewhere."""
    status, text = api.call("GET", f"/static/{asset}", headers={})
    assert status == 200 and len(text) > 500
    assert "https://" not in text and "//cdn" not in text


def test_serve_freezes_what_it_loaded_before_it_serves(
    flows_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve leaves what it loaded out of the collector's full passes before it serves."""
    frozen: list[int] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: frozen.append(gc.get_freeze_count()))
    gc.unfreeze()
    try:
        result = invoke("serve", str(flows_dir / "quick.yaml"), "--store", str(tmp_path / "s.db"))
    finally:
        gc.unfreeze()
    assert result.exit_code == 0, result.output
    assert frozen and frozen[0] > 0


def test_serve_runs_the_api_and_the_jobs_until_sigterm(flows_dir: Path, tmp_path: Path) -> None:
    """flowforge serve answers with its token, runs a job, and exits 0 on SIGTERM."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "token").write_text(TOKEN + "\n")
    args = ["serve", str(flows_dir / "quick.yaml"), "--port", str(port), "-q"]
    args += ["--token-file", str(tmp_path / "token"), "--store", str(tmp_path / "serve.db")]
    server = subprocess.Popen(
        [sys.executable, "-m", "flowforge.cli", *args], stderr=subprocess.PIPE, text=True
    )
    try:
        api = Api(port)
        deadline = time.monotonic() + 30
        while True:
            try:
                if api.call("GET", "/api/health", headers={})[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve never answered"
            time.sleep(0.05)
        assert api.call("GET", "/api/jobs", headers={})[0] == 401
        job_id = api.ok("POST", "/api/flows/quick/jobs", {}, 201)["job_id"]
        assert api.wait_status(job_id, "completed")["routines"]["sink"]["calls"] == 3
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors
