"""The OpenAPI document of the REST API, written from its route table, and its page."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_FLOW_ID = {"name": "flow_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]
_REASON_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"reason": {"type": "string"}}}
        }
    },
}
_JOB_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "params": {"type": "object", "description": "The entry routine's params."},
                    "job_id": {"type": "string", "maxLength": 128},
                    "deadline": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "description": "Seconds after which the job is cancelled.",
                    },
                },
            }
        }
    },
}

#: (method, path, summary, parameters, request body, success status, error statuses)
ROUTES: tuple[tuple[str, str, str, list[Any], Any, str, tuple[str, ...]], ...] = (
    ("get", "/api/health", "Liveness and version (no token needed).", [], None, "200", ()),
    ("get", "/api/flows", "The flows this server can run.", [], None, "200", ("401",)),
    ("get", "/api/flows/{flow_id}", "A flow's definition.", [_FLOW_ID], None, "200", ("404",)),
    (
        "get",
        "/api/flows/{flow_id}/graph",
        "The flow's graph as Mermaid or DOT text.",
        [_FLOW_ID, {"name": "format", "in": "query", "schema": {"enum": ["mermaid", "dot"]}}],
        None,
        "200",
        ("404", "422"),
    ),
    (
        "post",
        "/api/flows/{flow_id}/jobs",
        "Queue a job of the flow; 201 with its summary and URL.",
        [_FLOW_ID],
        _JOB_BODY,
        "201",
        ("400", "404", "409", "413", "422"),
    ),
    (
        "get",
        "/api/jobs",
        "Job summaries, newest first, with a total.",
        [
            {"name": "flow_id", "in": "query", "schema": {"type": "string"}},
            {"name": "status", "in": "query", "schema": {"type": "string"}},
            *_PAGE,
        ],
        None,
        "200",
        ("422",),
    ),
    (
        "get",
        "/api/jobs/{job_id}",
        "A job: status, times, routines, errors with tracebacks, outputs.",
        [_JOB_ID],
        None,
        "200",
        ("404",),
    ),
    (
        "delete",
        "/api/jobs/{job_id}",
        "Delete a finished job.",
        [_JOB_ID],
        None,
        "204",
        ("404", "409"),
    ),
    (
        "get",
        "/api/jobs/{job_id}/history",
        "The job's kept history.",
        [_JOB_ID, {"name": "routine", "in": "query", "schema": {"type": "string"}}, *_PAGE],
        None,
        "200",
        ("404", "422"),
    ),
    *(
        (
            "post",
            f"/api/jobs/{{job_id}}/{action}",
            f"Ask the job to {action} (202); 409 when its state does not allow it.",
            [_JOB_ID],
            _REASON_BODY,
            "202",
            ("404", "409", "413"),
        )
        for action in ("pause", "resume", "cancel")
    ),
    (
        "get",
        "/api/jobs/{job_id}/events",
        "Server-Sent Events (progress, failure, status, end) until the job ends.",
        [_JOB_ID],
        None,
        "200",
        ("404",),
    ),
    ("get", "/api/openapi.json", "This document.", [], None, "200", ()),
    ("get", "/api/docs", "This document as a page.", [], None, "200", ()),
)


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, parameters, body, ok, errors in ROUTES:
        operation: dict[str, Any] = {
            "summary": summary,
            "parameters": parameters,
            "responses": {ok: {"description": "Success."}, **{e: _ERROR for e in errors}},
        }
        if body is not None:
            operation["requestBody"] = body
        if path == "/api/health":
            operation["security"] = []
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "FlowForge", "version": version},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": 'An error: {"error": {"type": ..., "message": ...}}.',
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"type": "string"},
                                            "message": {"type": "string"},
                                        },
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }


#: A self-contained page (no CDN) that renders /api/openapi.json.
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FlowForge API</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}
.op{border:1px solid #ccc;border-radius:4px;margin:.5em 0;padding:.5em}
.m{font-weight:bold;text-transform:uppercase;display:inline-block;width:4.5em}
code{background:#f4f4f4;padding:0 .2em}
</style></head><body>
<h1>FlowForge API</h1><p id="version"></p><div id="ops">Loading /api/openapi.json ...</div>
<script>
fetch("/api/openapi.json", {credentials: "same-origin"}).then(r => r.json()).then(doc => {
  document.getElementById("version").textContent = "Version " + doc.info.version;
  const ops = document.getElementById("ops"); ops.textContent = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const div = document.createElement("div"); div.className = "op";
      const m = document.createElement("span"); m.className = "m"; m.textContent = method;
      const p = document.createElement("code"); p.textContent = path;
      const s = document.createElement("p"); s.textContent = op.summary;
      const params = (op.parameters || []).map(x => x.name + " (" + x.in + ")").join(", ");
      const q = document.createElement("p"); q.textContent = params ? "Parameters: " + params : "";
      const codes = document.createElement("p");
      codes.textContent = "Responses: " + Object.keys(op.responses).join(", ");
      div.append(m, p, s, q, codes); ops.append(div);
    }
  }
}).catch(e => { document.getElementById("ops").textContent = "Cannot load the document: " + e; });
</script></body></html>
"""
