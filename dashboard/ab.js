// The experiments (A/B): each arm's jobs, time to video, cost per video minute and failure rate, with their
// 95% intervals, and the report's verdict (GET /status/ab, operators.ab.ab_report).

import { ApiError, api, poll } from "./core.js";
import { h, pct, replace, seconds, usd } from "./dom.js";
import { color, intervals } from "./svg.js";

export function experimentsPage(root) {
  const out = h("div", { id: "experiments" });
  root.append(h("h1", {}, "Experiments"), out);
  poll(async () => {
    let report;
    try {
      report = await api("/ab");
    } catch (error) {
      if (error instanceof ApiError && error.status === 501) { // not deployed: say so, and keep the page alive
        replace(out, h("p", { class: "notice", id: "ab-missing" }, error.message));
        return;
      }
      throw error;
    }
    replace(out, report.experiments.length ? report.experiments.map(experiment)
      : h("p", { class: "muted" }, "no experiment has jobs yet"));
  }, 10000);
}

const ci = (interval, format) => (interval ? `${format(interval[0])} – ${format(interval[1])}` : "–");

function experiment(e) {
  const arms = e.arms;
  const chart = (label, pick, format, floor = null) => h("figure", {}, h("figcaption", {}, label), intervals(arms.map((arm, i) => {
    const { value, interval } = pick(arm);
    return { label: arm.name, value, lo: interval ? interval[0] : null, hi: interval ? interval[1] : null, color: color(i) };
  }), { format, floor }));
  return h("section", { class: "experiment", "data-experiment": e.name },
    h("h2", {}, e.name, " ", h("span", { class: "badge" }, e.active === false ? "inactive"
      : e.share !== undefined ? `active, ${pct(e.share)} of new jobs` : "active")),
    e.description ? h("p", {}, e.description) : null,
    h("p", { class: "verdict" }, "Verdict: ", h("strong", {}, e.verdict)),
    h("table", { class: "table arms" }, h("thead", {}, h("tr", {}, ["arm", "jobs", "succeeded", "failed",
      "time to video (median)", "p90", "95% interval", "cost per video minute", "95% interval", "failure rate", "95% interval"]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, arms.map((arm) => h("tr", { "data-arm": arm.name }, h("td", {}, arm.name), h("td", { class: "num" }, arm.jobs),
      h("td", { class: "num" }, arm.succeeded), h("td", { class: "num" }, arm.failed),
      h("td", { class: "num" }, seconds(arm.time_to_video_s.median)), h("td", { class: "num" }, seconds(arm.time_to_video_s.p90)),
      h("td", { class: "num ci" }, ci(arm.time_to_video_s.ci95, seconds)),
      h("td", { class: "num" }, usd(arm.cost_per_video_minute_usd.mean)),
      h("td", { class: "num ci" }, ci(arm.cost_per_video_minute_usd.ci95, usd)),
      h("td", { class: "num" }, pct(arm.failure_rate.value)), h("td", { class: "num ci" }, ci(arm.failure_rate.ci95, pct)))))),
    h("div", { class: "grid3" },
      chart("time to video: median and 95% interval", (a) => ({ value: a.time_to_video_s.median, interval: a.time_to_video_s.ci95 }),
        seconds, 0),
      chart("cost per video minute: mean and 95% interval", (a) => ({ value: a.cost_per_video_minute_usd.mean,
        interval: a.cost_per_video_minute_usd.ci95 }), usd, 0),
      chart("failure rate and 95% interval", (a) => ({ value: a.failure_rate.value, interval: a.failure_rate.ci95 }), pct, 0)));
}
