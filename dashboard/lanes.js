// A job's timeline drawn as lanes: its states, each run on the primary (Vertex AI), each VM attempt
// (a hedge when it started while the primary still ran), from GET /status/<job_id> (operators.views.job_detail).

import { epochOf } from "./dom.js";
import { COLORS, s, ticks, title } from "./svg.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const HEDGE_FAILURES = ["queued", "overrun", "manual"]; // functions/state.py: the primary may still deliver
const STATE_COLORS = {
  received: "#bab0ac", primary_submitting: "#a0cbe8", primary_submitted: "#a0cbe8", primary_running: "#4e79a7",
  fallback_requested: "#ffbe7d", vm_launching: "#8cd17d", vm_running: "#59a14f", succeeded: "#2e7d32",
  failed: "#e15759", cancelled: "#79706e",
};

// The lanes as data: [{key, label, segments: [{from, to, color, label}], marks: [{at, kind, label, note}]}].
export function buildLanes(job, now = Date.now() / 1000) {
  const entries = job.timeline.map((entry) => ({ ...entry, t: epochOf(entry.at) }));
  const terminal = TERMINAL.includes(job.state);
  const vmEnds = job.vm_attempts.map((a) => epochOf(a.ended_at ?? a.deleted_at)).filter(Boolean);
  const end = terminal ? Math.max(entries[entries.length - 1].t, ...vmEnds, job.fallback.deleted_at || 0) : now;
  const start = entries[0].t;

  const state = { key: "state", label: "state", segments: [], marks: [] };
  entries.forEach((entry, i) => {
    const to = i + 1 < entries.length ? entries[i + 1].t : end;
    state.segments.push({ from: entry.t, to: Math.max(to, entry.t), color: STATE_COLORS[entry.status] || "#ccc",
      label: `${entry.status}: ${entry.note}` });
    if (entry.operator) state.marks.push({ at: entry.t, kind: "operator", label: entry.operator, note: entry.note });
  });

  const primaries = primaryRuns(entries, job, end);
  const vms = vmLanes(entries, job, end, primaries);
  return { start, end, open: !terminal, lanes: [state, ...primaries, ...vms] };
}

function primaryRuns(entries, job, end) {
  const runs = [];
  let run = null;
  const close = (at, kind, label, note) => {
    run.segments[run.segments.length - 1].to = at;
    run.marks.push({ at, kind, label, note });
    run.end = at;
    run = null;
  };
  for (const entry of entries) {
    if (entry.status === "primary_submitting" || (entry.status === "primary_submitted" && !run)) {
      if (run) close(entry.t, "retry", "again", entry.note);
      run = { key: runs.length ? `primary-${runs.length + 1}` : "primary",
        label: runs.length ? `primary, run ${runs.length + 1}` : "primary (Vertex AI)",
        segments: [{ from: entry.t, to: end, color: "#a0cbe8", label: "queued on Vertex AI" }], marks: [], end: null };
      runs.push(run);
      continue;
    }
    if (!run) continue;
    if (entry.status === "primary_running") {
      run.segments[run.segments.length - 1].to = entry.t;
      run.segments.push({ from: entry.t, to: end, color: COLORS.vertex, label: "running on Vertex AI" });
    } else if (entry.status === "fallback_requested" && entry.failure && !HEDGE_FAILURES.includes(entry.failure)) {
      close(entry.t, "failure", entry.failure, entry.note);
    } else if (entry.status === "fallback_requested") {
      run.marks.push({ at: entry.t, kind: "hedge", label: `hedge (${entry.failure || "operator"})`, note: entry.note });
    } else if (entry.status === "received") {
      close(entry.t, "failure", "retry", entry.note); // a passing fault: submitted again
    } else if (entry.status === "succeeded") {
      const won = job.result.rendered_by === "vertex";
      close(entry.t, won ? "video" : "stopped", won ? "video" : "stopped", won ? entry.note : "the VM delivered first");
    } else if (TERMINAL.includes(entry.status)) {
      close(entry.t, entry.status === "failed" ? "failure" : "stopped", entry.status, entry.note);
    }
  }
  if (run) run.marks.push({ at: end, kind: "open", label: "running", note: "still with Vertex AI" });
  return runs;
}

function vmLanes(entries, job, end, primaries) {
  const attempts = new Map(job.vm_attempts.map((a) => [a.attempt, a]));
  const launching = entries.filter((e) => e.status === "vm_launching");
  const numbers = [...new Set([...launching.map((e) => e.attempt), ...attempts.keys()])].filter((n) => n != null);
  numbers.sort((a, b) => a - b);
  return numbers.map((n) => {
    const attempt = attempts.get(n);
    const asked = launching.find((e) => e.attempt === n);
    const from = asked ? asked.t : epochOf(attempt.launched_at);
    const hedge = primaries.some((p) => p.segments[0].from <= from && (p.end === null || p.end > from));
    const lane = { key: `vm-${n}`, segments: [], marks: [],
      label: `${hedge ? "hedge VM" : "VM"} attempt ${n}${attempt ? ` · ${attempt.gpu} ${attempt.provisioning}` : ""}` };
    if (!attempt || !attempt.launched_at) { // asked for, never running: why is the next change's note
      const next = entries.find((e) => e.t > from && e.status !== "vm_launching");
      const to = next ? next.t : end;
      lane.segments.push({ from, to, color: "#8cd17d", label: "launching" });
      lane.marks.push(next ? { at: to, kind: "failure", label: next.status === "failed" ? "not launched" : next.status,
        note: next.note } : { at: to, kind: "open", label: "launching", note: "" });
      return lane;
    }
    const launched = epochOf(attempt.launched_at);
    if (launched > from) lane.segments.push({ from, to: launched, color: "#8cd17d", label: "choosing and inserting" });
    const current = attempt.end === "current" || attempt.end === job.state;
    let stop = epochOf(attempt.ended_at ?? attempt.deleted_at ?? (current ? job.fallback.deleted_at : null));
    const isOpen = stop === null && !TERMINAL.includes(job.state);
    if (stop === null) stop = end;
    lane.segments.push({ from: launched, to: stop, color: hedge ? COLORS.hedge : COLORS.vm,
      label: `${attempt.instance} in ${attempt.zone}` + (attempt.price_per_hour ? ` at $${attempt.price_per_hour}/h` : "") });
    const outcome = attempt.end === "current" ? (isOpen ? "running" : job.state) : attempt.end;
    lane.marks.push({ at: stop, kind: outcome === "succeeded" ? "video" : isOpen ? "open" : "failure",
      label: outcome || "ended", note: attempt.instance });
    return lane;
  });
}

// The lanes as an <svg>: a row per lane, time left to right from the job's first state.
export function drawLanes(model, { width = 980 } = {}) {
  const left = 210, right = 96, row = 34, top = 8, axisH = 26;
  const height = top + model.lanes.length * row + axisH;
  const span = Math.max(1, model.end - model.start);
  const x = (t) => left + ((t - model.start) / span) * (width - left - right);
  const svg = s("svg", { id: "lanes", viewBox: `0 0 ${width} ${height}`, width, height, class: "lanes", role: "img" },
    title("The job's timeline: each lane is a renderer's run; marks say how each ended"));
  for (const v of ticks(0, span, 6)) {
    svg.append(s("line", { x1: x(model.start + v), x2: x(model.start + v), y1: top, y2: height - axisH, class: "grid" }),
      s("text", { x: x(model.start + v), y: height - 8, class: "axis", "text-anchor": "middle" }, `+${v} s`));
  }
  model.lanes.forEach((lane, i) => {
    const y = top + i * row;
    const g = s("g", { class: "lane", "data-lane": lane.key });
    g.append(s("text", { x: left - 10, y: y + row / 2 + 4, class: "lane-label", "text-anchor": "end" }, lane.label));
    for (const seg of lane.segments) {
      g.append(s("rect", { x: x(seg.from), y: y + 7, width: Math.max(2, x(seg.to) - x(seg.from)), height: row - 14,
        fill: seg.color, rx: 3, class: "segment" }, title(seg.label)));
    }
    for (const mark of lane.marks) g.append(drawMark(mark, x(mark.at), y + row / 2));
    svg.append(g);
  });
  return svg;
}

function drawMark(mark, cx, cy) {
  const g = s("g", { class: `mark ${mark.kind}`, "data-mark": mark.kind });
  const why = title(mark.note || mark.label); // on the shape, so that the mark's text is its label alone
  if (mark.kind === "failure") {
    g.append(s("path", { d: `M${cx - 6},${cy - 6} L${cx + 6},${cy + 6} M${cx + 6},${cy - 6} L${cx - 6},${cy + 6}`,
      stroke: COLORS.fail, "stroke-width": 3 }, why));
  } else if (mark.kind === "video") {
    g.append(s("circle", { cx, cy, r: 6, fill: COLORS.ok }, why));
  } else if (mark.kind === "open") {
    g.append(s("path", { d: `M${cx - 2},${cy - 7} L${cx + 8},${cy} L${cx - 2},${cy + 7} Z`, fill: "#555" }, why));
  } else {
    g.append(s("circle", { cx, cy, r: 5, fill: mark.kind === "hedge" ? COLORS.hedge : "#555" }, why));
  }
  g.append(s("text", { x: cx + 10, y: cy - 8, class: "mark-label" }, mark.label));
  return g;
}
