// Small charts drawn as inline SVG: no library, no build step. Each returns an <svg> element.

const NS = "http://www.w3.org/2000/svg";

export const COLORS = {
  vertex: "#4e79a7", vm: "#59a14f", hedge: "#f28e2b", other: "#9c9c9c",
  actual: "#59a14f", equivalent: "#bab0ac", catalog: "#bab0ac", learned: "#4e79a7",
  fail: "#e15759", warn: "#f28e2b", ok: "#59a14f", muted: "#bab0ac",
};
const PALETTE = ["#4e79a7", "#59a14f", "#f28e2b", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

export function color(index) {
  return PALETTE[index % PALETTE.length];
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function title(text) {
  return s("title", {}, text);
}

// Round numbers for an axis from 0 (or min) to max: about `count` of them.
export function ticks(min, max, count = 5) {
  const span = max - min || 1;
  const raw = span / count;
  const step = [1, 2, 2.5, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((x) => x >= raw);
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

// Stacked bars: rows [{label, values: {key: number}}], series [{key, label, color}].
export function stackedBars(rows, series, { width = 640, height = 220, format = String, id } = {}) {
  const left = 64, bottom = 28, top = 24, plotH = height - top - bottom;
  const max = Math.max(1e-9, ...rows.map((r) => series.reduce((sum, x) => sum + (r.values[x.key] || 0), 0)));
  const axis = ticks(0, max, 4);
  const top_ = Math.max(max, axis[axis.length - 1]);
  const y = (v) => top + plotH - (v / top_) * plotH;
  const band = Math.min(90, (width - left - 8) / Math.max(1, rows.length));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", id, role: "img" });
  for (const v of axis) {
    svg.append(s("line", { x1: left, x2: width - 8, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, format(v)));
  }
  rows.forEach((row, i) => {
    let base = 0;
    const x = left + i * band + band * 0.15;
    const g = s("g", { class: "bar", "data-label": row.label });
    for (const part of series) {
      const v = row.values[part.key] || 0;
      if (v <= 0) continue;
      g.append(s("rect", { x, width: band * 0.7, y: y(base + v), height: y(base) - y(base + v), fill: part.color },
        title(`${row.label} · ${part.label}: ${format(v)}`)));
      base += v;
    }
    g.append(s("text", { x: x + band * 0.35, y: height - bottom + 16, class: "axis", "text-anchor": "middle" },
      row.label));
    svg.append(g);
  });
  legend(svg, series, left, 14);
  return svg;
}

function legend(svg, series, x, y) {
  let at = x;
  for (const part of series) {
    svg.append(s("rect", { x: at, y: y - 9, width: 10, height: 10, fill: part.color }),
      s("text", { x: at + 14, y, class: "legend" }, part.label));
    at += 24 + part.label.length * 7;
  }
}

// Horizontal bars: rows [{label, value, text?}]; value may be null (drawn as "no data").
export function hbars(rows, { width = 480, format = String, barColor = COLORS.vertex, id } = {}) {
  const left = 120, row = 24, height = rows.length * row + 8;
  const max = Math.max(1e-9, ...rows.map((r) => r.value || 0));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", id, role: "img" });
  rows.forEach((r, i) => {
    const y = 4 + i * row;
    const w = r.value ? ((width - left - 170) * r.value) / max : 0;
    svg.append(s("text", { x: left - 8, y: y + 15, class: "axis", "text-anchor": "end" }, r.label),
      s("rect", { x: left, y: y + 3, width: Math.max(w, 1), height: row - 8, fill: r.color || barColor },
        title(`${r.label}: ${r.text ?? format(r.value)}`)),
      s("text", { x: left + w + 6, y: y + 15, class: "value" }, r.value === null ? "no data" : (r.text ?? format(r.value))));
  });
  return svg;
}

// Points with their 95% intervals on one shared axis: rows [{label, value, lo, hi, color?}].
export function intervals(rows, { width = 520, format = String, id, floor = null } = {}) {
  const left = 110, right = 16, row = 30, height = rows.length * row + 30;
  const known = rows.flatMap((r) => [r.value, r.lo, r.hi]).filter((v) => v !== null && v !== undefined);
  let min = Math.min(...known, floor ?? Infinity), max = Math.max(...known);
  if (!known.length) [min, max] = [0, 1];
  if (max === min) [min, max] = [min - 1, max + 1];
  const pad = (max - min) * 0.08;
  [min, max] = [floor !== null ? Math.max(floor, min - pad) : min - pad, max + pad];
  const x = (v) => left + ((v - min) / (max - min)) * (width - left - right);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart intervals", id, role: "img" });
  for (const v of ticks(min, max, 4)) {
    svg.append(s("line", { x1: x(v), x2: x(v), y1: 4, y2: height - 22, class: "grid" }),
      s("text", { x: x(v), y: height - 6, class: "axis", "text-anchor": "middle" }, format(v)));
  }
  rows.forEach((r, i) => {
    const y = 18 + i * row;
    const g = s("g", { class: "interval", "data-arm": r.label });
    g.append(s("text", { x: left - 8, y: y + 4, class: "axis", "text-anchor": "end" }, r.label));
    const c = r.color || color(i);
    if (r.lo !== null && r.lo !== undefined && r.hi !== null && r.hi !== undefined) {
      g.append(s("line", { x1: x(r.lo), x2: x(r.hi), y1: y, y2: y, stroke: c, "stroke-width": 3, class: "ci" },
        title(`${r.label}: 95% interval ${format(r.lo)} – ${format(r.hi)}`)),
      s("line", { x1: x(r.lo), x2: x(r.lo), y1: y - 6, y2: y + 6, stroke: c, "stroke-width": 2 }),
      s("line", { x1: x(r.hi), x2: x(r.hi), y1: y - 6, y2: y + 6, stroke: c, "stroke-width": 2 }));
    }
    if (r.value !== null && r.value !== undefined) {
      g.append(s("circle", { cx: x(r.value), cy: y, r: 5, fill: c }, title(`${r.label}: ${format(r.value)}`)));
    } else {
      g.append(s("text", { x: left + 4, y: y + 4, class: "value" }, "no data yet"));
    }
    svg.append(g);
  });
  return svg;
}

// One dot per value on a line, with the median marked: the spread of the estimate's error.
export function strip(values, { width = 520, format = String, median = null, id } = {}) {
  const left = 60, right = 60, height = 70;
  const all = [...values, 0, median ?? 0];
  let min = Math.min(...all), max = Math.max(...all);
  if (max === min) [min, max] = [min - 1, max + 1];
  const x = (v) => left + ((v - min) / (max - min)) * (width - left - right);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", id, role: "img" });
  svg.append(s("line", { x1: left, x2: width - right, y1: 30, y2: 30, class: "grid" }),
    s("line", { x1: x(0), x2: x(0), y1: 14, y2: 46, class: "zero" }),
    s("text", { x: x(0), y: 62, class: "axis", "text-anchor": "middle" }, `${format(0)} (exact)`));
  values.forEach((v, i) => svg.append(s("circle", { cx: x(v), cy: 30 + ((i % 5) - 2) * 3, r: 4, class: "dot" },
    title(format(v)))));
  if (median !== null) {
    svg.append(s("line", { x1: x(median), x2: x(median), y1: 10, y2: 50, class: "median" }),
      s("text", { x: x(median), y: 9, class: "axis", "text-anchor": "middle" }, `median ${format(median)}`));
  }
  return svg;
}
