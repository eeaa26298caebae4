// The jobs page (live list, filters, search by id) and a job's page (lanes, reasons, progress, cost, video, logs,
// and the controls for an operator).

import { API, ApiError, api, canWrite, poll, runControl, toast, token } from "./core.js";
import { h, replace, seconds, usd, pct, when } from "./dom.js";
import { buildLanes, drawLanes } from "./lanes.js";

const STATES = ["received", "primary_submitting", "primary_submitted", "primary_running", "fallback_requested",
  "vm_launching", "vm_running", "succeeded", "failed", "cancelled"];
const METHODS = ["vertex", "vm", "hedge"];
const TERMINAL = ["succeeded", "failed", "cancelled"];
const JOB_ID = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
const filters = { state: "", method: "", since: "", search: "" }; // kept while the tab is open

export function stateBadge(state) {
  return h("span", { class: `badge state-${state}` }, state.replaceAll("_", " "));
}

function progressBar(fraction) {
  if (fraction === null || fraction === undefined) return h("span", { class: "muted" }, "–");
  return h("span", { class: "progress", title: pct(fraction) },
    h("span", { class: "track" }, h("span", { class: "fill", style: `width:${Math.round(fraction * 100)}%` })),
    h("span", { class: "pct" }, pct(fraction)));
}

export function jobLink(jobId) {
  return h("a", { href: `#/job/${encodeURIComponent(jobId)}`, class: "job-link" }, jobId);
}

// ------------------------------------------------------------ the list

export function jobsPage(root) {
  const select = (name, values) => h("select", { name, onchange: (e) => { filters[name] = e.target.value; poller.now(); } },
    h("option", { value: "" }, `every ${name}`), values.map((v) => h("option", { value: v, selected: filters[name] === v }, v)));
  const search = h("input", { type: "search", name: "search", placeholder: "search by job id", value: filters.search,
    oninput: (e) => { filters.search = e.target.value.trim().toLowerCase(); show(); } });
  const since = h("select", { name: "since", onchange: (e) => { filters.since = e.target.value; poller.now(); } },
    [["", "any time"], ["1h", "last hour"], ["24h", "last 24 h"], ["7d", "last 7 days"]].map(([v, label]) =>
      h("option", { value: v, selected: filters.since === v }, label)));
  const count = h("span", { class: "muted", id: "jobs-count" });
  const body = h("tbody");
  root.append(h("h1", {}, "Jobs"),
    h("div", { class: "filters" }, select("state", STATES), select("method", METHODS), since, search, count),
    h("table", { id: "jobs", class: "table" },
      h("thead", {}, h("tr", {}, ["job", "state", "method", "GPU", "progress", "age", "estimate", "actual", "last change"]
        .map((c) => h("th", {}, c)))), body));

  let rows = [], extra = null;
  const show = () => {
    const match = rows.filter((r) => (!filters.method || r.method === filters.method) &&
      (!filters.search || r.job_id.includes(filters.search)));
    if (!match.length && extra && extra.job_id === filters.search) match.push(extra);
    replace(count, `${match.length} shown of ${rows.length} loaded`);
    replace(body, match.length ? match.map(jobRow) : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "no jobs")));
  };
  const load = async () => {
    const query = new URLSearchParams({ limit: "200" });
    if (filters.state) query.set("state", filters.state);
    if (filters.since) query.set("since", filters.since);
    rows = (await api(`?${query}`)).jobs;
    extra = null;
    // An id typed in full that is not among the newest: ask for it by name.
    if (JOB_ID.test(filters.search) && !rows.some((r) => r.job_id === filters.search)) {
      extra = await api(`/${filters.search}`).catch((error) => (error instanceof ApiError && error.status === 404 ? null
        : Promise.reject(error)));
    }
    show();
  };
  const poller = poll(load);
}

function jobRow(r) {
  return h("tr", { "data-job": r.job_id, "data-state": r.state },
    h("td", {}, jobLink(r.job_id)), h("td", {}, stateBadge(r.state)), h("td", {}, r.method),
    h("td", {}, [r.gpu, r.provisioning].filter(Boolean).join(" ") || "–"), h("td", {}, progressBar(r.progress)),
    h("td", {}, seconds(r.age_s)), h("td", { class: "num" }, usd(r.estimated_cost_usd)),
    h("td", { class: "num" }, usd(r.actual_cost_usd)), h("td", { class: "note", title: r.last_note }, r.error || r.last_note));
}

// ------------------------------------------------------------ one job

export function jobPage(root, jobId) {
  const part = (id) => h("section", { id, class: "part" });
  const parts = Object.fromEntries(["head", "controls", "progress", "lanes", "reasons", "cost", "media", "timeline"]
    .map((id) => [id, part(`job-${id}`)]));
  root.append(h("p", {}, h("a", { href: "#/jobs" }, "← jobs")), ...Object.values(parts));
  const media = mediaPart(parts.media, jobId);
  let costFor = null;
  const load = async () => {
    const job = await api(`/${encodeURIComponent(jobId)}`);
    document.title = `Fast Render · ${job.job_id} ${job.state}`;
    renderHead(parts.head, job);
    renderControls(parts.controls, job, () => poller.now());
    renderProgress(parts.progress, job);
    replace(parts.lanes, h("h2", {}, "Timeline"), drawLanes(buildLanes(job)));
    renderReasons(parts.reasons, job);
    media.update(job);
    renderTimeline(parts.timeline, job);
    const key = `${job.state}|${job.updated_at}`;
    if (costFor !== key && (costFor === null || TERMINAL.includes(job.state))) { // the report once, and at the end
      costFor = key;
      renderCost(parts.cost, job, await jobCost(job).catch((error) => ({ error: error.message })));
    }
  };
  const poller = poll(load);
}

function renderHead(el, job) {
  replace(el, h("h1", {}, job.job_id, " ", stateBadge(job.state)),
    h("dl", { class: "facts" }, fact("method", job.method), fact("GPU", [job.gpu, job.provisioning, job.zone]
      .filter(Boolean).join(" · ") || "–"), fact("attempt", job.attempt), fact("video length", seconds(job.video_length_s)),
    fact("created", when(job.created_at)), fact("last change", when(job.updated_at)),
    job.error ? fact("error", job.error) : null));
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", { "data-fact": name }, value ?? "–")];
}

function renderControls(el, job, after) {
  if (!canWrite()) return replace(el); // a read-only viewer sees no control at all
  const terminal = TERMINAL.includes(job.state);
  const button = (action, label, options = {}) => h("button", { type: "button", "data-action": action,
    class: action === "cancel" ? "danger" : "", onclick: () => runControl(job.job_id, action, { ...options, done: after }) },
  label);
  const launchFields = async () => [
    { name: "gpu", label: "GPU or CPU-only machine", options: [["", "the selector's choice"], ...(await catalogGpus()).map((g) => [g, g])] },
    { name: "provisioning", label: "provisioning", options: [["", "the selector's choice"], ["spot", "spot"],
      ["on-demand", "on-demand"]] }];
  replace(el, h("div", { class: "controls" },
    ["failed", "cancelled"].includes(job.state) ? button("retry", "Retry") : null,
    !terminal && !["vm_launching", "vm_running"].includes(job.state)
      ? button("launch", "Launch a VM", { fields: launchFields }) : null,
    !terminal ? button("cancel", "Cancel") : null));
}

let gpus = null;

async function catalogGpus() { // the catalog's options (GPUs and CPU-only machines), for the launch's choice
  // The speeds report lists them (in_catalog), and names only learned after them; any option may be launched.
  gpus ??= (await api("/speeds")).speeds.filter((g) => g.in_catalog).map((g) => g.gpu);
  return gpus;
}

function renderProgress(el, job) {
  const beat = job.heartbeat;
  replace(el, h("h2", {}, "Progress"), progressBar(job.progress), " ",
    job.frames_total ? `${job.frames_done} of ${job.frames_total} frames` : "",
    beat ? h("span", { class: "muted" }, ` · ${beat.rendered_by || "renderer"} ${beat.stage}, heartbeat ` +
      `${seconds(beat.age_s)} old${beat.fps ? `, ${beat.fps} frames/s` : ""}`) : h("span", { class: "muted" },
      TERMINAL.includes(job.state) ? "" : " · no heartbeat yet"));
}

function renderReasons(el, job) {
  const items = [];
  if (job.primary.error) items.push(["the primary", job.primary.error]);
  for (const previous of job.primary.previous || []) if (previous.error) items.push(["an earlier primary", previous.error]);
  if (job.fallback.why) items.push(["the VM's GPU", job.fallback.why]);
  for (const t of job.fallback.tried || []) {
    items.push([`refused insert (pass ${t.pass})`, `${t.gpu} ${t.provisioning} in ${t.zone}: ${t.kind}${t.detail ? ` (${t.detail})` : ""}`]);
  }
  if (job.fallback.hedge_failed) items.push(["hedge not launched", job.fallback.hedge_failed]);
  if (job.fallback.preemptions) items.push(["preemptions", String(job.fallback.preemptions)]);
  replace(el, h("h2", {}, "Decisions and their reasons"), items.length
    ? h("dl", { class: "reasons" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))
    : h("p", { class: "muted" }, "no decision yet beyond the timeline below"));
}

function renderTimeline(el, job) {
  const start = Date.parse(job.timeline[0].at);
  const details = (e) => Object.entries(e).filter(([k]) => !["status", "at", "note", "operator"].includes(k))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  replace(el, h("h2", {}, "Every change"), h("table", { class: "table", id: "timeline" },
    h("thead", {}, h("tr", {}, ["at", "", "state", "why", "by", "details"].map((c) => h("th", {}, c)))),
    h("tbody", {}, job.timeline.map((e) => h("tr", {}, h("td", {}, when(e.at).slice(11, 19)),
      h("td", { class: "num muted" }, `+${((Date.parse(e.at) - start) / 1000).toFixed(1)} s`), h("td", {}, stateBadge(e.status)),
      h("td", {}, e.note), h("td", {}, e.operator || ""), h("td", { class: "muted small" }, details(e)))))));
}

// The cost report's row for this job: billed VM time and Vertex runs, against the launch's estimate.
async function jobCost(job) {
  const hours = Math.ceil((Date.now() - Date.parse(job.created_at)) / 3600e3) + 1;
  const report = await api(`/cost?since=${hours}h`);
  return report.jobs.find((j) => j.job_id === job.job_id) || { missing: true };
}

function renderCost(el, job, cost) {
  if (cost.error || cost.missing) {
    return replace(el, h("h2", {}, "Cost"), h("p", { class: "muted" }, cost.error ||
      "not in the cost report yet"), h("p", {}, `estimate ${usd(job.estimated_cost_usd)}, renderer's figure ${usd(job.actual_cost_usd)}`));
  }
  replace(el, h("h2", {}, "Cost"), h("dl", { class: "facts", id: "job-cost-facts" },
    fact("estimated", usd(cost.estimate_usd)), fact("actual", usd(cost.actual_usd) + (cost.open ? " (still billing)" : "")),
    fact("estimate's error", pct(cost.estimate_error, true)),
    fact("VM", `${usd(cost.vm_usd)} for ${seconds(cost.vm_s)}`), fact("Vertex AI", `${usd(cost.vertex_usd)} for ${seconds(cost.vertex_s)}`),
    fact("on Vertex AI instead", `${usd(cost.vertex_equivalent_usd)}${cost.vertex_equivalent_basis ? ` (${cost.vertex_equivalent_basis})` : ""}`),
    fact("saving", `${usd(cost.saving_usd)} (${pct(cost.saving_fraction)})`)),
  cost.notes && cost.notes.length ? h("p", { class: "muted" }, cost.notes.join("; ")) : null);
}

// The video and the logs: made once, so that a playing video is not restarted by the next refresh.
function mediaPart(el, jobId) {
  const video = h("div", { id: "video" }), logs = h("div", { id: "logs" });
  let shown; // undefined: nothing drawn yet
  replace(el, h("h2", {}, "Video and logs"), video, logs);
  replace(logs, h("p", {}, h("code", {}, `avmonitor logs ${jobId}`), " ",
    h("button", { type: "button", id: "show-logs", onclick: () => showLogs(logs, jobId) }, "Show the logs")));
  return {
    update(job) {
      if (job.video === shown) return;
      shown = job.video;
      if (!job.video) return replace(video, h("p", { class: "muted" }, "no video yet"));
      replace(video, h("p", {}, "Video: ", h("code", { class: "video-uri" }, job.video), " ",
        h("button", { type: "button", id: "play", onclick: () => play(video, jobId) }, "Play")),
      h("p", { class: "muted small" }, h("code", {}, `gcloud storage cp ${job.video} .`)));
    },
  };
}

async function play(el, jobId) {
  try {
    // The video route needs the token like every other: fetch it, and play it from memory.
    const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
    const response = await fetch(`${API}/${encodeURIComponent(jobId)}/video`, { headers, credentials: "omit" });
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || `HTTP ${response.status}`);
    const player = h("video", { controls: true, src: URL.createObjectURL(await response.blob()), class: "player" });
    el.querySelector(".player")?.remove();
    el.append(player);
  } catch (error) {
    toast(`cannot play the video: ${error.message}`, "error");
  }
}

async function showLogs(el, jobId) {
  try {
    const { lines } = await api(`/${encodeURIComponent(jobId)}/logs?limit=300`);
    el.querySelector("pre")?.remove();
    el.append(h("pre", { class: "log" }, lines.map((l) => h("span", { class: `sev-${(l.severity || "").toLowerCase()}` },
      `${(l.time || "").slice(11, 23)} ${l.source.padEnd(22)} ${l.message}\n`))));
  } catch (error) {
    toast(`cannot read the logs: ${error.message}`, "error");
  }
}
