// The VMs (live; orphans and stale heartbeats flagged), the costs and the speeds.

import { api, poll } from "./core.js";
import { h, num, pct, replace, seconds, usd } from "./dom.js";
import { jobLink, stateBadge } from "./jobs.js";
import { COLORS, color, hbars, stackedBars, strip } from "./svg.js";

const SLOW_POLL_MS = 10000; // the cost report asks Vertex AI about every job: not every 3 s

// ------------------------------------------------------------ VMs

let staleAfter = ""; // "": the watchdog's own heartbeat timeout

export function vmsPage(root) {
  const summary = h("p", { id: "vms-summary" });
  const body = h("tbody");
  const stale = h("select", { name: "stale_after", onchange: (e) => { staleAfter = e.target.value; poller.now(); } },
    [["", "the watchdog's limit"], ["5s", "5 s"], ["30s", "30 s"], ["2m", "2 min"]].map(([v, label]) =>
      h("option", { value: v, selected: v === staleAfter }, label)));
  root.append(h("h1", {}, "VMs"), h("div", { class: "filters" }, "flag a heartbeat as stale after ", stale), summary,
    h("table", { id: "vms", class: "table" },
    h("thead", {}, h("tr", {}, ["VM", "zone", "status", "GPU", "age", "job", "job state", "attempt", "price", "so far",
      "heartbeat", "progress", "flags"].map((c) => h("th", {}, c)))), body));
  const poller = poll(async () => {
    const { vms } = await api(staleAfter ? `/vms?stale_after=${staleAfter}` : "/vms");
    const orphans = vms.filter((v) => v.orphan).length, stale = vms.filter((v) => v.stale).length;
    replace(summary, `${vms.length} VM${vms.length === 1 ? "" : "s"} labelled as ours · `, h("span", { class: orphans ? "flag orphan" : "" },
      `${orphans} orphaned`), " · ", h("span", { class: stale ? "flag stale" : "" }, `${stale} with a stale heartbeat`));
    replace(body, vms.length ? vms.map((v) => h("tr", { "data-vm": v.name, class: [v.orphan && "orphan", v.stale && "stale"]
      .filter(Boolean).join(" ") },
    h("td", {}, v.name), h("td", {}, v.zone), h("td", {}, v.status), h("td", {}, `${v.gpu || "–"} ${v.provisioning}`),
    h("td", {}, seconds(v.age_s)), h("td", {}, v.job_id ? jobLink(v.job_id) : "–"),
    h("td", {}, v.job_state ? stateBadge(v.job_state) : "no job"), h("td", {}, v.attempt ?? "–"),
    h("td", { class: "num" }, v.price_per_hour ? `${usd(v.price_per_hour)}/h` : "–"),
    h("td", { class: "num" }, usd(v.cost_so_far_usd)), h("td", {}, v.heartbeat_age_s === null ? "none" : seconds(v.heartbeat_age_s)),
    h("td", {}, pct(v.progress)), h("td", {},
      v.orphan ? h("span", { class: "flag orphan", title: "no job has this VM as its current attempt: delete it" }, "orphan") : null,
      v.stale ? h("span", { class: "flag stale", title: "its heartbeat is older than the watchdog's limit" }, "stale heartbeat")
        : null))) : h("tr", {}, h("td", { colspan: 13, class: "muted" }, "no VMs running")));
  });
}

// ------------------------------------------------------------ costs

let costSince = "7d";

export function costsPage(root) {
  const since = h("select", { name: "since", onchange: (e) => { costSince = e.target.value; poller.now(); } },
    [["24h", "last 24 h"], ["7d", "last 7 days"], ["30d", "last 30 days"]].map(([v, label]) =>
      h("option", { value: v, selected: v === costSince }, label)));
  const out = h("div", { id: "costs" });
  root.append(h("h1", {}, "Costs"), h("div", { class: "filters" }, "jobs created in the ", since), out);
  const poller = poll(async () => renderCosts(out, await api(`/cost?since=${costSince}`)), SLOW_POLL_MS);
}

function renderCosts(el, report) {
  const t = report.totals, jobs = report.jobs, days = report.days.map((d) => d.day);
  const byDay = (fn) => days.map((day) => ({ label: day.slice(5), values: fn(jobs.filter((j) => j.day === day)) }));
  const sum = (rows, key) => rows.reduce((total, j) => total + (j[key] || 0), 0);

  const perMethod = stackedBars(byDay((rows) => Object.fromEntries(["vertex", "vm", "hedge"].map((m) =>
    [m, sum(rows.filter((j) => j.method === m), "actual_usd")]))),
  [{ key: "vertex", label: "Vertex AI", color: COLORS.vertex }, { key: "vm", label: "VM", color: COLORS.vm },
    { key: "hedge", label: "hedge (both)", color: COLORS.hedge }], { format: usd, id: "cost-per-day" });

  const saving = stackedBars(byDay((rows) => {
    const compared = rows.filter((j) => j.saving_usd !== null);
    const paid = sum(compared, "actual_usd"), equivalent = sum(compared, "vertex_equivalent_usd");
    return { paid: Math.min(paid, equivalent), saved: Math.max(0, equivalent - paid), over: Math.max(0, paid - equivalent) };
  }), [{ key: "paid", label: "paid", color: COLORS.actual }, { key: "saved", label: "saved against Vertex AI",
    color: COLORS.equivalent }, { key: "over", label: "over Vertex AI", color: COLORS.fail }], { format: usd, id: "saving" });

  const mix = new Map();
  for (const j of jobs) {
    const gpu = j.rendered_by === "vertex" ? "Vertex AI" : j.gpu ? `${j.gpu}${j.provisioning === "spot" ? " spot" : ""}` : "none";
    const row = mix.get(gpu) || { jobs: 0, usd: 0 };
    mix.set(gpu, { jobs: row.jobs + 1, usd: row.usd + (j.actual_usd || 0) });
  }
  const gpuMix = hbars([...mix].sort((a, b) => b[1].jobs - a[1].jobs).map(([gpu, row], i) => ({ label: gpu, value: row.jobs,
    text: `${row.jobs} job${row.jobs === 1 ? "" : "s"} · ${usd(row.usd)}`, color: color(i) })), { id: "gpu-mix" });

  const errors = jobs.filter((j) => j.estimate_error !== null);
  const worst = [...errors].sort((a, b) => Math.abs(b.estimate_error) - Math.abs(a.estimate_error)).slice(0, 5);

  replace(el,
    h("div", { class: "cards" },
      card("spent", usd(t.actual_usd), `${t.jobs} jobs · ${t.open} still billing · ${t.unpriced} without a price`),
      card("saving against Vertex AI", `${usd(t.saving_usd)} (${pct(t.saving_fraction)})`,
        `of ${usd(t.vertex_equivalent_usd)} on ${report.vertex_shape}, over ${t.compared} succeeded jobs`),
      card("estimated", usd(t.estimate_usd), `median error of the estimate ${pct(t.median_estimate_error, true)}`)),
    h("div", { class: "grid2" },
      h("figure", {}, h("figcaption", {}, "Spend per day by method (jobs created that day, UTC)"), perMethod),
      h("figure", {}, h("figcaption", {}, "Against rendering the same jobs on Vertex AI"), saving),
      h("figure", {}, h("figcaption", {}, "GPU mix: who rendered the jobs"), gpuMix),
      h("figure", {}, h("figcaption", {}, `The estimate's error (actual / estimate − 1), ${errors.length} finished jobs`),
        strip(errors.map((j) => j.estimate_error), { format: (v) => pct(v, true), median: t.median_estimate_error, id: "estimate-error" }),
        worst.length ? h("table", { class: "table small" }, h("thead", {}, h("tr", {}, ["the furthest off", "estimate",
          "actual", "error"].map((c) => h("th", {}, c)))), h("tbody", {}, worst.map((j) => h("tr", {},
          h("td", {}, jobLink(j.job_id)), h("td", { class: "num" }, usd(j.estimate_usd)), h("td", { class: "num" }, usd(j.actual_usd)),
          h("td", { class: "num" }, pct(j.estimate_error, true)))))) : null)),
    h("h2", {}, "Per day"), h("table", { class: "table", id: "cost-days" },
      h("thead", {}, h("tr", {}, ["day", "jobs", "VM", "Vertex AI", "actual", "estimate", "on Vertex AI", "saving", "%",
        "median error"].map((c) => h("th", {}, c)))),
      h("tbody", {}, [...report.days, { day: "total", ...t }].map((d) => h("tr", { class: d.day === "total" ? "total" : "" },
        h("td", {}, d.day), h("td", { class: "num" }, d.jobs), ...["vm_usd", "vertex_usd", "actual_usd", "estimate_usd",
          "vertex_equivalent_usd", "saving_usd"].map((k) => h("td", { class: "num" }, usd(d[k]))),
        h("td", { class: "num" }, pct(d.saving_fraction)), h("td", { class: "num" }, pct(d.median_estimate_error, true)))))));
}

function card(label, value, detail) {
  return h("div", { class: "card" }, h("div", { class: "card-label" }, label), h("div", { class: "card-value" }, value),
    h("div", { class: "muted small" }, detail));
}

// ------------------------------------------------------------ speeds

export function speedsPage(root) {
  const out = h("div", { id: "speeds" });
  root.append(h("h1", {}, "Speeds"), h("p", { class: "muted" }, "Seconds of render per second of video, by GPU and CPU-only machine: " +
    "what the catalog assumes (the runtime model's for a 180 s video, or under speed_factor pricing the speed factors) against what " +
    "renders measured (the selector uses the learned figure once it has enough samples)."),
  out);
  poll(async () => {
    const { speeds } = await api("/speeds");
    const rows = speeds.flatMap((g) => [
      { label: `${g.gpu} catalog`, value: g.catalog_s_per_s, color: COLORS.catalog },
      { label: `${g.gpu} learned`, value: g.learned_s_per_s, color: COLORS.learned,
        text: g.learned_s_per_s === null ? null : `${num(g.learned_s_per_s)} (${g.samples} samples)` }]);
    replace(out, hbars(rows, { format: (v) => num(v), width: 640, id: "speeds-chart" }),
      h("table", { class: "table", id: "speeds-table" }, h("thead", {}, h("tr", {}, ["option", "catalog s/s", "learned s/s",
        "samples", "learned vs catalog", "used by the selector"].map((c) => h("th", {}, c)))),
      h("tbody", {}, speeds.map((g) => h("tr", { "data-gpu": g.gpu }, h("td", {}, g.gpu), h("td", { class: "num" }, num(g.catalog_s_per_s)),
        h("td", { class: "num" }, num(g.learned_s_per_s)), h("td", { class: "num" }, g.samples),
        h("td", { class: "num" }, pct(g.learned_vs_catalog, true)), h("td", {}, g.used_by_selector ? "yes" : "no"))))));
  }, SLOW_POLL_MS);
}
