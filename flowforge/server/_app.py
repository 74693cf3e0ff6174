"""The routes of :func:`create_app`, their validation and their errors."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..cli._common import CommandError
from ..cli._describe import flow_graph, job_summary
from ..cli._loading import entry_params, open_flow, resolve_entry
from ..cli.worker import Worker, flow_files
from ..errors import JobStateError, SerializationError
from ..flow import Flow
from ..job_state import JobState, JobStatus
from ..store import JobBrief, JobNotFoundError, Store
from ._openapi import DOCS_PAGE, openapi_document

#: The largest request body accepted by default (bytes); larger ones get 413.
MAX_BODY = 1 << 20
#: The most job summaries or history entries one page holds.
MAX_LIMIT = 1000
COOKIE = "flowforge_token"
#: The dashboard's HTML, JavaScript and CSS (no CDN: everything it needs ships here).
STATIC = Path(__file__).parent / "static"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_SSE_POLL = 0.2
T = TypeVar("T")
#: Events a subscriber may fall behind by before its stream is closed (it reconnects).
_SSE_BACKLOG = 1000

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A request that cannot be served: its status, error type and message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, default=str)
    return Response(body, status, headers=headers, media_type="application/json")


def _error(status: int, kind: str, message: str) -> Response:
    return _json({"error": {"type": kind, "message": message}}, status)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@attrs.define
class _Service:
    store: Store
    flows: dict[str, Flow]
    token: str | None
    max_body: int
    worker: Worker | None
    _timers: list[threading.Timer] = attrs.field(factory=list)
    #: The event feeds of the jobs clients follow now, by job id.
    watches: dict[str, _Watch] = attrs.field(factory=dict)

    # -- plumbing -----------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > self.max_body:
                raise self._too_large()
        if not data.strip():
            return {}
        try:
            parsed = json.loads(data, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "bad_request", f"The body is not valid JSON: {exc}.") from None
        if not isinstance(parsed, dict):
            raise ApiError(
                422, "invalid", f"body: expected a JSON object, got {type(parsed).__name__}."
            )
        return parsed

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "too_large", f"The body is larger than {self.max_body} bytes (serve --max-body)."
        )

    def flow(self, flow_id: str) -> Flow:
        flow = self.flows.get(flow_id)
        if flow is None:
            known = ", ".join(sorted(self.flows)) or "(none)"
            raise ApiError(404, "not_found", f"No flow '{flow_id}'. The flows are: {known}.")
        return flow

    def load(self, job_id: str) -> JobState:
        """The whole job (to resume it or read its history); 404 if there is none."""
        return _found(self.store.load, job_id)

    def brief(self, job_id: str) -> JobBrief:
        """The job without its bulk (see :meth:`Store.load_brief`): what showing it needs."""
        return _found(self.store.load_brief, job_id)

    # -- flows --------------------------------------------------------------

    def flow_list(self) -> dict[str, Any]:
        return {
            "flows": [
                {
                    "flow_id": flow_id,
                    "routines": list(flow.routines),
                    "entry": flow.entry,
                    "edges": sorted(
                        {
                            (c.event.routine_label(), c.slot.routine_label())
                            for c in flow.connections
                        }
                    ),
                    "url": f"/api/flows/{flow_id}",
                }
                for flow_id, flow in sorted(self.flows.items())
            ]
        }

    def create_job(self, flow_id: str, body: dict[str, Any]) -> dict[str, Any]:
        flow = self.flow(flow_id)
        params, job_id, deadline = _job_request(body)
        try:
            routine_id, slot = resolve_entry(flow, None)
        except CommandError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
        merged = {**entry_params(flow, routine_id, (), None), **params}
        job = JobState(job_id=job_id, flow_id=flow.flow_id) if job_id else None
        try:
            queued = flow.submit(
                merged,
                store=self.store,
                entry_routine_id=routine_id,
                entry_slot=slot,
                job_state=job,
            )
        except JobStateError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        except SerializationError as exc:
            raise ApiError(422, "invalid", f"params: {exc}") from None
        if deadline is not None:
            self._cancel_after(queued.job_id, deadline)
        return {**self.summary(queued), "url": f"/api/jobs/{queued.job_id}"}

    def _cancel_after(self, job_id: str, seconds: float) -> None:
        def cancel() -> None:
            with contextlib.suppress(Exception):  # it ended or went away meanwhile
                self.store.request_cancel(job_id, f"deadline of {seconds:g} s passed")

        timer = threading.Timer(seconds, cancel)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    # -- jobs ---------------------------------------------------------------

    def summary(self, job: JobState) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "flow_id": job.flow_id,
            "status": str(job.status),
            "reason": job.reason,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "pending": len(job.pending),
            "url": f"/api/jobs/{job.job_id}",
        }

    def job_list(self, query: Mapping[str, str]) -> dict[str, Any]:
        flow_id = query.get("flow_id") or None
        status = query.get("status") or None
        if status is not None and status not in {s.value for s in JobStatus}:
            statuses = ", ".join(s.value for s in JobStatus)
            raise ApiError(422, "invalid", f"status: expected one of {statuses}, got {status!r}.")
        limit, offset = _page(query, 50)
        page = self.store.page_jobs(flow_id, status, limit=limit, offset=offset)
        jobs = [
            {
                "job_id": j.job_id,
                "flow_id": j.flow_id,
                "status": str(j.status),
                "reason": j.reason,
                "created_at": j.created_at,
                "updated_at": j.updated_at,
                "started_at": j.started_at,
                "finished_at": j.finished_at,
                "pending": j.pending,
                "url": f"/api/jobs/{j.job_id}",
            }
            for j in page.jobs
        ]
        return {"jobs": jobs, "total": page.total, "limit": limit, "offset": offset}

    def job_detail(self, job_id: str) -> dict[str, Any]:
        brief = self.brief(job_id)
        job = brief.job
        detail = self.job_view(brief)
        detail.pop("resume_command", None)
        lease = self.store.lease(job.job_id)
        live = lease is not None and lease.live()
        detail["runner"] = lease.owner if live and lease is not None else None
        detail["outputs"] = job.outputs
        detail["url"] = f"/api/jobs/{job.job_id}"
        return detail

    def job_view(self, brief: JobBrief) -> dict[str, Any]:
        """:func:`job_summary` of a brief job, its pending count filled in."""
        detail = job_summary(brief.job, self.flows.get(str(brief.job.flow_id)))
        detail["pending"] = brief.pending
        return detail

    def history(self, job_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        job = self.load(job_id)
        routine = query.get("routine") or None
        if routine is not None and routine not in job.routine_ids():
            raise ApiError(422, "invalid", f"routine: job {job_id} has no routine {routine!r}.")
        limit, offset = _page(query, 100)
        records = job.get_execution_history(routine)
        entries = [attrs.asdict(r) for r in records[offset : offset + limit]]
        return {"entries": entries, "total": len(records), "limit": limit, "offset": offset}

    def control(self, job_id: str, action: str, reason: str | None) -> dict[str, Any]:
        job = self.load(job_id) if action == "resume" else self.brief(job_id).job
        try:
            if action == "resume":
                self._resume(job)
            elif action == "pause":
                self.store.request_pause(job.job_id, reason)
            else:
                self.store.request_cancel(job.job_id, reason)
        except JobStateError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return {"job_id": job.job_id, "requested": action, "url": f"/api/jobs/{job.job_id}"}

    def _resume(self, job: JobState) -> None:
        if job.status not in (JobStatus.PAUSED, JobStatus.FAILED):
            raise ApiError(
                409,
                "conflict",
                f"Cannot resume job {job.job_id}: it is {job.status}; only a paused or failed "
                "job can be resumed.",
            )
        job.status = JobStatus.QUEUED
        job.reason = None
        self.store.save(job)

    def delete(self, job_id: str) -> None:
        job = self.brief(job_id).job
        if not job.status.finished:
            raise ApiError(
                409,
                "conflict",
                f"Cannot delete job {job.job_id}: it is {job.status}. Cancel it first "
                f"(POST /api/jobs/{job.job_id}/cancel).",
            )
        try:
            self.store.delete(job.job_id)
        except JobStateError as exc:
            raise ApiError(409, "conflict", str(exc)) from None


def _found(read: Callable[[str], T], job_id: str) -> T:
    """``read(job_id)``, or a 404 ApiError for an id that names no job."""
    if not _ID.match(job_id):
        raise ApiError(404, "not_found", f"No job '{job_id}'.")
    try:
        return read(job_id)
    except JobNotFoundError:
        raise ApiError(404, "not_found", f"No job '{job_id}'.") from None


def _job_request(body: dict[str, Any]) -> tuple[dict[str, Any], str | None, float | None]:
    unknown = sorted(set(body) - {"params", "job_id", "deadline"})
    if unknown:
        raise ApiError(
            422, "invalid", f"{unknown[0]}: unknown field; the fields are params, job_id, deadline."
        )
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(422, "invalid", f"params: expected an object, got {type(params).__name__}.")
    job_id = body.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not _ID.match(job_id)):
        raise ApiError(
            422,
            "invalid",
            f"job_id: expected up to 128 letters, digits and '_.:-', got {job_id!r}.",
        )
    deadline = body.get("deadline")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
        or not 0 < deadline < 1e9
    ):
        raise ApiError(
            422, "invalid", f"deadline: expected seconds greater than 0, got {deadline!r}."
        )
    return params, job_id, None if deadline is None else float(deadline)


def _page(query: Mapping[str, str], default: int) -> tuple[int, int]:
    limit = _integer(query, "limit", default, 1, MAX_LIMIT)
    offset = _integer(query, "offset", 0, 0, 10**9)
    return limit, offset


def _integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(
            422, "invalid", f"{name}: expected an integer from {low} to {high}, got {text!r}."
        )
    return int(text)


Handler = Callable[[Request, _Service], Awaitable[Response]]


def _endpoint(service: _Service, handler: Handler, *, public: bool = False) -> Any:
    async def endpoint(request: Request) -> Response:
        if not public and not service.authorized(request):
            return _error(
                401, "unauthorized", "This server needs a token: send Authorization: Bearer TOKEN."
            )
        try:
            return await handler(request, service)
        except ApiError as exc:
            return _error(exc.status, exc.kind, exc.message)

    return endpoint


# -- handlers ---------------------------------------------------------------------------


async def _health(request: Request, service: _Service) -> Response:
    return _json({"status": "ok", "version": __version__})


async def _flows(request: Request, service: _Service) -> Response:
    return _json(service.flow_list())


async def _flow(request: Request, service: _Service) -> Response:
    return _json(service.flow(request.path_params["flow_id"]).serialize())


async def _graph(request: Request, service: _Service) -> Response:
    flow = service.flow(request.path_params["flow_id"])
    fmt = request.query_params.get("format", "mermaid")
    if fmt not in ("mermaid", "dot"):
        raise ApiError(422, "invalid", f"format: expected mermaid or dot, got {fmt!r}.")
    return Response(flow_graph(flow, fmt), media_type="text/plain")


async def _create(request: Request, service: _Service) -> Response:
    body = await service.body(request)
    flow_id = request.path_params["flow_id"]
    created = await run_in_threadpool(service.create_job, flow_id, body)
    return _json(created, 201, headers={"Location": created["url"]})


async def _jobs(request: Request, service: _Service) -> Response:
    return _json(await run_in_threadpool(service.job_list, request.query_params))


async def _job(request: Request, service: _Service) -> Response:
    return _json(await run_in_threadpool(service.job_detail, request.path_params["job_id"]))


async def _history(request: Request, service: _Service) -> Response:
    job_id = request.path_params["job_id"]
    return _json(await run_in_threadpool(service.history, job_id, request.query_params))


def _control(action: str) -> Handler:
    async def handler(request: Request, service: _Service) -> Response:
        body = await service.body(request)
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ApiError(422, "invalid", f"reason: expected a string, got {reason!r}.")
        job_id = request.path_params["job_id"]
        done = await run_in_threadpool(service.control, job_id, action, reason)
        return _json(done, 202)

    return handler


async def _delete(request: Request, service: _Service) -> Response:
    await run_in_threadpool(service.delete, request.path_params["job_id"])
    return Response(status_code=204)


async def _events(request: Request, service: _Service) -> Response:
    job_id = request.path_params["job_id"]
    await run_in_threadpool(service.brief, job_id)  # 404 before the stream starts
    return StreamingResponse(
        _event_stream(service, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(service: _Service, job_id: str) -> AsyncIterator[str]:
    watch = service.watches.get(job_id)
    if watch is None:
        watch = service.watches[job_id] = _Watch(service, job_id)
    queue = watch.subscribe()
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        watch.unsubscribe(queue)


@attrs.define(eq=False)
class _Watch:
    """One job's event feed: one reader polls the store and fans its events out.

    However many clients follow a job, the store is read once per poll. A
    new subscriber first gets the events that bring it up to date (the
    latest progress, the failures kept, the status), then every event after,
    in order. The reader stops when the job ends or is deleted, or when the
    last subscriber leaves; streams end with it.
    """

    service: _Service
    job_id: str
    _subscribers: list[asyncio.Queue[str | None]] = attrs.field(init=False, factory=list)
    _progress: str | None = attrs.field(init=False, default=None)
    _failures: list[str] = attrs.field(init=False, factory=list)
    _status: str | None = attrs.field(init=False, default=None)
    _status_name: str | None = attrs.field(init=False, default=None)
    _errors_seen: int = attrs.field(init=False, default=0)
    _task: asyncio.Task[None] | None = attrs.field(init=False, default=None)

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(_SSE_BACKLOG)
        for event in (self._progress, *self._failures, self._status):
            if event is not None:
                queue.put_nowait(event)
        self._subscribers.append(queue)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"flowforge-events-{self.job_id}")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._close()

    async def _run(self) -> None:
        try:
            while self._subscribers:
                try:
                    brief = await run_in_threadpool(self.service.store.load_brief, self.job_id)
                except JobNotFoundError:
                    self._publish(_sse("end", {"job_id": self.job_id, "status": "deleted"}))
                    return
                self._update(brief)
                if brief.job.status.finished:
                    self._publish(
                        _sse("end", {"job_id": self.job_id, "status": str(brief.job.status)})
                    )
                    return
                await asyncio.sleep(_SSE_POLL)
        except Exception:
            logger.exception("Reading the events of job %s failed; its streams end", self.job_id)
        finally:
            self._close()

    def _update(self, brief: JobBrief) -> None:
        summary = self.service.job_view(brief)
        self._progress_changes(brief.pending, summary["routines"])
        self._new_failures(brief.job, summary["errors"])
        self._status_changes(brief.job)

    def _progress_changes(self, pending: int, routines: dict[str, dict[str, Any]]) -> None:
        counts = {
            rid: {k: r[k] for k in ("status", "calls", "failures", "skipped")}
            for rid, r in routines.items()
        }
        progress = _sse("progress", {"job_id": self.job_id, "pending": pending, "routines": counts})
        if progress != self._progress:
            self._progress = progress
            self._publish(progress)

    def _new_failures(self, job: JobState, errors: list[dict[str, Any]]) -> None:
        # Counted by the job's total, not the kept list, which drops its oldest past retention.
        fresh = min(job.errors_total - self._errors_seen, len(errors))
        self._errors_seen = job.errors_total
        for error in errors[len(errors) - fresh :]:
            failure = _sse("failure", {"job_id": self.job_id, **error})
            self._failures.append(failure)
            self._publish(failure)
        del self._failures[: -max(1, job.retention)]

    def _status_changes(self, job: JobState) -> None:
        if str(job.status) != self._status_name:
            self._status_name = str(job.status)
            self._status = _sse(
                "status", {"job_id": self.job_id, "status": self._status_name, "reason": job.reason}
            )
            self._publish(self._status)

    def _publish(self, event: str) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a client that stopped reading: it reconnects to catch up
                self._subscribers.remove(queue)
                _end(queue)

    def _close(self) -> None:
        if self.service.watches.get(self.job_id) is self:
            del self.service.watches[self.job_id]
        for queue in self._subscribers:
            _end(queue)
        self._subscribers.clear()


def _end(queue: asyncio.Queue[str | None]) -> None:
    """Make the stream reading ``queue`` end after what it already holds."""
    while True:
        try:
            queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def _openapi(request: Request, service: _Service) -> Response:
    return _json(openapi_document(__version__))


async def _docs(request: Request, service: _Service) -> Response:
    return HTMLResponse(DOCS_PAGE)


_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/api/flows", _flows),
    ("GET", "/api/flows/{flow_id}", _flow),
    ("GET", "/api/flows/{flow_id}/graph", _graph),
    ("POST", "/api/flows/{flow_id}/jobs", _create),
    ("GET", "/api/jobs", _jobs),
    ("GET", "/api/jobs/{job_id}", _job),
    ("DELETE", "/api/jobs/{job_id}", _delete),
    ("GET", "/api/jobs/{job_id}/history", _history),
    ("POST", "/api/jobs/{job_id}/pause", _control("pause")),
    ("POST", "/api/jobs/{job_id}/resume", _control("resume")),
    ("POST", "/api/jobs/{job_id}/cancel", _control("cancel")),
    ("GET", "/api/jobs/{job_id}/events", _events),
    ("GET", "/api/openapi.json", _openapi),
    ("GET", "/api/docs", _docs),
)


async def _dashboard(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "error")
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error."
    return _error(status, kind, f"{request.method} {request.url.path}: {detail}")


def create_app(
    store: Store,
    flows: Iterable[Flow | str | os.PathLike[str]] = (),
    token: str | None = None,
    *,
    workers: int = 1,
    allow: Iterable[str] = (),
    max_body: int = MAX_BODY,
    poll: float = 0.2,
    quiet: bool = True,
) -> Starlette:
    """The FlowForge REST API over ``store``, as an ASGI application.

    Args:
        store: The job store (:func:`flowforge.store.open_store`); the app does
            not close it.
        flows: The flows it can start jobs of: :class:`~flowforge.Flow`
            objects, flow files, or directories of flow files.
        token: When given, every ``/api`` route but ``GET /api/health``
            needs ``Authorization: Bearer <token>``.
        workers: How many queued jobs the app runs at once on its own
            threads (claimed from the store under a lease, as ``flowforge
            worker`` does); ``0`` leaves them to ``flowforge worker``.
        allow: Modules the flows' routine classes may be imported from
            (as ``--allow``).
        max_body: The largest request body, in bytes; larger ones get 413.
        poll: Seconds between the workers' looks for queued jobs.
        quiet: Whether the workers keep from logging each job to stderr.

    Example:
        >>> from flowforge.server import create_app
        >>> from flowforge.store import open_store
        >>> app = create_app(open_store("memory://"), workers=0)
        >>> sorted(r.path for r in app.routes)[:3]
        ['/', '/api/docs', '/api/flows']
    """
    allowed = tuple(allow)
    paths: dict[str, Path] = {}
    by_id: dict[str, Flow] = {}
    for item in flows:
        if isinstance(item, Flow):
            by_id[item.flow_id] = item
            continue
        for flow_id, path in flow_files([os.fspath(item)], allowed).items():
            paths.setdefault(flow_id, path)
            by_id.setdefault(flow_id, open_flow(str(path), allowed).flow)
    worker = (
        Worker(store, paths, allowed, workers, poll, drain=False, quiet=quiet) if workers else None
    )
    service = _Service(store, by_id, token, max_body, worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            for timer in service._timers:
                timer.cancel()
            if worker is not None:
                worker.stop()
                await run_in_threadpool(worker.join)

    # The dashboard's pages are public; the data they show comes from the API, behind the token.
    pages = ("/", "/jobs/{job_id}", "/flows", "/flows/{flow_id}")
    routes: list[BaseRoute] = [Route(path, _dashboard, methods=["GET"]) for path in pages]
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    routes.append(Route("/api/health", _endpoint(service, _health, public=True), methods=["GET"]))
    routes += [
        Route(path, _endpoint(service, handler), methods=[method])
        for method, path, handler in _ROUTES
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
        lifespan=lifespan,
    )
