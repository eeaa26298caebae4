// DOM and number helpers. Every text from the server goes in as a text node (never as HTML):
// notes and errors hold whatever a job, a VM or a cloud API said.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") el.style.cssText = value; // through CSSOM: the page's CSP refuses style attributes
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// ------------------------------------------------------------ numbers

export function usd(value) {
  if (value === null || value === undefined) return "–";
  const sign = value < 0 ? "-" : "";
  const size = Math.abs(value);
  if (size === 0) return "$0";
  return sign + "$" + (size >= 0.01 ? size.toFixed(2) : size.toFixed(4));
}

export function pct(fraction, signed = false) {
  if (fraction === null || fraction === undefined) return "–";
  const text = (fraction * 100).toFixed(0) + "%";
  return signed && fraction > 0 ? "+" + text : text;
}

export function seconds(value) {
  if (value === null || value === undefined) return "–";
  const s = Math.round(value);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function num(value, digits = 2) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

export function epochOf(value) {
  // Timelines say ISO 8601; VM attempts and heartbeats say epoch seconds.
  if (value === null || value === undefined) return null;
  return typeof value === "number" ? value : Date.parse(value) / 1000;
}

export function clock(epoch) {
  if (epoch === null || epoch === undefined) return "–";
  return new Date(epoch * 1000).toISOString().slice(11, 19) + " UTC";
}

export function when(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) + " UTC" : "–";
}
