"use strict";
// The FlowForge dashboard: every page is this script reading location.pathname.
const main = document.getElementById("main");

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function svgEl(tag, props, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(props || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

class Unauthorized extends Error {}

async function api(path, options) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...(options || {}),
  });
  if (response.status === 401) {
    showLogin();
    throw new Unauthorized("a token is needed");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body.error.message);
  return body;
}

function showLogin() {
  const input = el("input", { id: "token", type: "password", placeholder: "API token" });
  const form = el("form", { id: "login", class: "inline" },
    el("label", { for: "token" }, "Token "), input,
    el("button", { id: "login-button", type: "submit" }, "Log in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim().replace(/[;\s]/g, "");
    document.cookie = `flowforge_token=${token}; path=/; SameSite=Strict`;
    location.reload();
  });
  main.replaceChildren(el("h1", {}, "Log in"),
    el("p", {}, "This server needs its API token."), form);
}

function statusSpan(status, id) {
  return el("span", { class: `status s-${status}`, id }, status);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function duration(job) {
  if (!job.started_at) return "";
  const end = job.finished_at || Date.now() / 1000;
  return `${(end - job.started_at).toFixed(1)} s`;
}

function message(text) {
  document.getElementById("message").textContent = text || "";
}

// -- the graph ------------------------------------------------------------------

function layers(routines, edges) {
  const depth = Object.fromEntries(routines.map((r) => [r, 0]));
  for (let round = 0; round < routines.length; round++) {
    for (const [from, to] of edges) {
      if (from !== to && depth[to] < depth[from] + 1) depth[to] = depth[from] + 1;
    }
  }
  return depth;
}

function drawGraph(flow, runs) {
  const depth = layers(flow.routines, flow.edges);
  const rows = {};
  const place = {};
  for (const rid of flow.routines) {
    const column = Math.min(depth[rid], flow.routines.length);
    rows[column] = (rows[column] || 0) + 1;
    place[rid] = { x: 10 + column * 190, y: 10 + (rows[column] - 1) * 66 };
  }
  const width = 20 + 190 * (Math.max(0, ...Object.values(place).map((p) => p.x)) / 190 + 1);
  const height = 20 + Math.max(...Object.values(rows), 1) * 66;
  const svg = svgEl("svg", { id: "graph", width, height, viewBox: `0 0 ${width} ${height}` });
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 8, markerHeight: 8, orient: "auto" }, svgEl("path", { d: "M0,0 L10,5 L0,10 z" }));
  svg.append(svgEl("defs", {}, marker));
  for (const [from, to] of flow.edges) {
    const a = place[from], b = place[to];
    if (!a || !b) continue;
    svg.append(svgEl("path", { class: "edge",
      d: `M${a.x + 150},${a.y + 23} C${a.x + 170},${a.y + 23} ${b.x - 20},${b.y + 23} ${b.x},${b.y + 23}` }));
  }
  for (const rid of flow.routines) {
    const p = place[rid];
    const title = svgEl("text", { x: p.x + 8, y: p.y + 18 });
    title.textContent = rid;
    const counts = svgEl("text", { x: p.x + 8, y: p.y + 36, id: `count-${rid}` });
    svg.append(svgEl("g", { class: "node n-pending", id: `node-${rid}`, "data-routine": rid },
      svgEl("rect", { x: p.x, y: p.y, width: 150, height: 46 }), title, counts));
  }
  if (runs) paintGraph(runs);
  return svg;
}

function paintGraph(runs) {
  for (const [rid, run] of Object.entries(runs)) {
    const node = document.getElementById(`node-${rid}`);
    if (!node) continue;
    node.setAttribute("class", `node n-${run.status}`);
    node.setAttribute("data-status", run.status);
    document.getElementById(`count-${rid}`).textContent =
      `${run.calls} calls · ${run.failures} failed`;
  }
}

// -- the jobs page ----------------------------------------------------------------

async function jobsPage() {
  const flows = (await api("/api/flows")).flows;
  const flowFilter = el("select", { id: "filter-flow" }, el("option", { value: "" }, "every flow"),
    flows.map((f) => el("option", { value: f.flow_id }, f.flow_id)));
  const statuses = ["queued", "running", "paused", "completed", "failed", "cancelled"];
  const statusFilter = el("select", { id: "filter-status" },
    el("option", { value: "" }, "every status"), statuses.map((s) => el("option", { value: s }, s)));
  const body = el("tbody");
  const total = el("p", { id: "total" });
  main.replaceChildren(el("h1", {}, "Jobs"),
    el("form", { class: "inline" }, "Flow ", flowFilter, "Status ", statusFilter), total,
    el("table", { id: "jobs" }, el("thead", {}, el("tr", {},
      ["Job", "Flow", "Status", "Started", "Duration", "Progress"].map((h) => el("th", {}, h)))),
    body));
  async function refresh() {
    const query = new URLSearchParams({ limit: "100" });
    if (flowFilter.value) query.set("flow_id", flowFilter.value);
    if (statusFilter.value) query.set("status", statusFilter.value);
    const page = await api(`/api/jobs?${query}`);
    total.textContent = `${page.total} job(s)`;
    body.replaceChildren(...page.jobs.map((job) => el("tr", { "data-job": job.job_id },
      el("td", {}, el("a", { href: `/jobs/${job.job_id}`, class: "job-link" }, job.job_id)),
      el("td", {}, job.flow_id), el("td", {}, statusSpan(job.status)),
      el("td", {}, when(job.started_at)), el("td", {}, duration(job)),
      el("td", {}, job.status === "running" || job.pending ? `${job.pending} pending` : ""))));
  }
  flowFilter.addEventListener("change", refresh);
  statusFilter.addEventListener("change", refresh);
  await refresh();
  setInterval(() => refresh().catch(() => {}), 1000);
}

// -- a job's page -------------------------------------------------------------------

async function jobPage(jobId) {
  const job = await api(`/api/jobs/${jobId}`);
  const flow = (await api("/api/flows")).flows.find((f) => f.flow_id === job.flow_id) ||
    { routines: Object.keys(job.routines), edges: [] };
  const act = (action) => async () => {
    try {
      await api(`/api/jobs/${jobId}/${action}`, { method: "POST", body: "{}" });
      message(`${action} requested`);
    } catch (error) {
      if (!(error instanceof Unauthorized)) message(error.message);
    }
  };
  main.replaceChildren(
    el("h1", {}, `Job ${jobId}`),
    el("p", {}, "Flow ", el("a", { href: `/flows/${job.flow_id}` }, job.flow_id), " · status ",
      statusSpan(job.status, "job-status"), " ", el("span", { id: "job-reason" })),
    el("p", {},
      el("button", { id: "pause", onclick: act("pause") }, "Pause"),
      el("button", { id: "resume", onclick: act("resume") }, "Resume"),
      el("button", { id: "cancel", onclick: act("cancel") }, "Cancel"),
      el("span", { id: "message", class: "message" })),
    drawGraph(flow, job.routines),
    el("h2", {}, "Routines"), el("table", { id: "routines" }),
    el("h2", {}, "Errors"), el("div", { id: "errors" }),
    el("h2", {}, "Outputs"), el("pre", { id: "outputs" }),
    el("h2", {}, "History"), el("table", { id: "history" }));
  showJob(job);
  await showHistory(jobId);
  const events = new EventSource(`/api/jobs/${jobId}/events`);
  events.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    paintGraph(data.routines);
    showRoutines(data.routines);
  });
  const reload = async () => { showJob(await api(`/api/jobs/${jobId}`)); await showHistory(jobId); };
  events.addEventListener("status", () => reload().catch(() => {}));
  events.addEventListener("failure", () => reload().catch(() => {}));
  events.addEventListener("end", () => { events.close(); reload().catch(() => {}); });
}

function showJob(job) {
  const status = document.getElementById("job-status");
  status.textContent = job.status;
  status.className = `status s-${job.status}`;
  document.getElementById("job-reason").textContent = job.reason ? `(${job.reason})` : "";
  paintGraph(job.routines);
  showRoutines(job.routines);
  document.getElementById("errors").replaceChildren(...(job.errors.length ? job.errors.map((e) =>
    el("div", { class: "error-box" },
      el("p", {}, el("b", {}, `${e.routine_id}.${e.slot}`), `: ${e.error_type}: ${e.message}`),
      el("pre", { class: "traceback" }, e.traceback || ""))) : [el("p", {}, "None.")]));
  document.getElementById("outputs").textContent = JSON.stringify(job.outputs, null, 2);
}

function showRoutines(runs) {
  document.getElementById("routines").replaceChildren(
    el("tr", {}, ["Routine", "Status", "Calls", "Failures", "Skipped"].map((h) => el("th", {}, h))),
    ...Object.entries(runs).map(([rid, r]) => el("tr", { "data-routine": rid },
      el("td", {}, rid), el("td", {}, statusSpan(r.status)), el("td", {}, String(r.calls)),
      el("td", {}, String(r.failures)), el("td", {}, String(r.skipped)))));
}

async function showHistory(jobId) {
  const history = await api(`/api/jobs/${jobId}/history?limit=50`);
  const first = Math.max(0, history.total - 50);
  const page = first ? await api(`/api/jobs/${jobId}/history?limit=50&offset=${first}`) : history;
  document.getElementById("history").replaceChildren(
    el("tr", {}, ["When", "Routine", "Event", "Data"].map((h) => el("th", {}, h))),
    ...page.entries.map((r) => el("tr", {}, el("td", {}, when(r.timestamp)),
      el("td", {}, r.routine_id), el("td", {}, r.event_name),
      el("td", {}, el("code", {}, JSON.stringify(r.data))))));
}

// -- the flows page -------------------------------------------------------------------

async function flowsPage(flowId) {
  const flows = (await api("/api/flows")).flows.filter((f) => !flowId || f.flow_id === flowId);
  if (flowId && !flows.length) throw new Error(`No flow '${flowId}'.`);
  main.replaceChildren(el("h1", {}, flowId ? `Flow ${flowId}` : "Flows"),
    ...flows.map((flow) => flowSection(flow)));
}

function flowSection(flow) {
  const params = el("textarea", { id: `params-${flow.flow_id}`, rows: 4 });
  params.value = JSON.stringify((flow.entry && flow.entry.params) || {}, null, 2);
  const jobId = el("input", { id: `job-id-${flow.flow_id}`, placeholder: "job id (optional)" });
  const form = el("form", { class: "start", "data-flow": flow.flow_id },
    el("label", {}, "Params (JSON)"), params, jobId,
    el("button", { type: "submit", id: `start-${flow.flow_id}` }, "Start a job"),
    el("span", { id: "message", class: "message" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = { params: JSON.parse(params.value || "{}") };
      if (jobId.value.trim()) body.job_id = jobId.value.trim();
      const job = await api(`/api/flows/${flow.flow_id}/jobs`,
        { method: "POST", body: JSON.stringify(body) });
      location.href = `/jobs/${job.job_id}`;
    } catch (error) {
      if (!(error instanceof Unauthorized)) form.querySelector(".message").textContent = error.message;
    }
  });
  return el("section", { class: "flow" },
    el("h2", {}, el("a", { href: `/flows/${flow.flow_id}` }, flow.flow_id)),
    drawGraph(flow, null), form);
}

async function route() {
  const path = location.pathname.replace(/\/+$/, "");
  const job = path.match(/^\/jobs\/([^/]+)$/);
  const flow = path.match(/^\/flows\/([^/]+)$/);
  if (job) return jobPage(decodeURIComponent(job[1]));
  if (path === "/flows") return flowsPage(null);
  if (flow) return flowsPage(decodeURIComponent(flow[1]));
  return jobsPage();
}

route().catch((error) => {
  if (!(error instanceof Unauthorized)) {
    main.replaceChildren(el("p", { class: "message", id: "page-error" }, String(error.message)));
  }
});
