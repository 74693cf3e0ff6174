"""The FlowForge service: a REST API and a web dashboard over a job store (``server`` extra).

:func:`create_app` builds an ASGI application (Starlette) that ``flowforge
serve`` runs on uvicorn. JSON goes in and out; every error is
``{"error": {"type": ..., "message": ...}}`` with status 400, 401, 404, 405,
409, 413 or 422 (a malformed body names the field), never a traceback. The
routes are listed in ``docs/guide/service.rst`` and served as an OpenAPI
document at ``/api/openapi.json`` with a page at ``/api/docs``.

Jobs created through the API are queued in the store (:meth:`Flow.submit
<flowforge.Flow.submit>`); the app runs them itself on ``workers`` threads
(the same worker as ``flowforge worker``), or leaves them to separate
``flowforge worker`` processes when ``workers=0``. Pause and cancel go
through the store (:meth:`Store.request_pause
<flowforge.store.Store.request_pause>`), so they reach a job wherever it runs.

Showing jobs reads little: the job list is one page from the store
(:meth:`Store.page_jobs <flowforge.store.Store.page_jobs>`), a job's page
and its Server-Sent Events read it without its bulk
(:meth:`Store.load_brief <flowforge.store.Store.load_brief>`), and a job's
events are read once per poll for every client that follows it.

``GET /`` serves the dashboard (``/jobs/{job_id}``, ``/flows``,
``/flows/{flow_id}``): static HTML, JavaScript and CSS shipped in this
package, which read the API; its pages need no token, their data does.

With a ``token``, every ``/api`` route except ``GET /api/health`` needs
``Authorization: Bearer <token>`` (or the ``flowforge_token`` cookie).
"""

from __future__ import annotations

from ._app import MAX_BODY, create_app

__all__ = ["MAX_BODY", "create_app"]
