// What every page shares: the token, calls to /status, who the caller is, polling with the data's age,
// and the confirmation before a control.
//
// The token lives in this tab's sessionStorage and travels only in the Authorization header of fetch():
// never in a cookie, so another site's page cannot make the browser send it (no cross-site request forgery).

import { h, replace } from "./dom.js";

const TOKEN_KEY = "fast-render-status-token";
export const POLL_MS = 3000;

// The JSON routes sit beside the dashboard: .../status/dashboard/ -> .../status (locally and in the cloud),
// /dashboard/ -> "" behind a proxy that serves the function at the root.
export const API = location.pathname.replace(/\/dashboard(\/.*)?$/, "");

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
}

// A link may carry the token once (make demo prints one): #token=... goes into sessionStorage and out of
// the address bar and the history, so it is neither bookmarked nor shown over the operator's shoulder.
export function takeTokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  const rest = location.hash.replace(/(^#|&)token=[^&]*/, "").replace(/^#&/, "#");
  history.replaceState(null, "", location.pathname + location.search + (rest === "#" ? "" : rest));
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit", redirect: "error",
    });
  } catch (error) {
    throw new ApiError(0, `the function cannot be reached (${error.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
  return data;
}

// ------------------------------------------------------------ who is calling

export const session = { who: null, onUnauthorized: () => {} };

export function canWrite() {
  return Boolean(session.who && session.who.can_write);
}

// ------------------------------------------------------------ polling, and how old the data is

const age = { at: null, error: null, busy: false };
let generation = 0;

// Poll `load` every `everyMs` until the page changes; each success stamps the time the data arrived.
export function poll(load, everyMs = POLL_MS) {
  const mine = ++generation;
  age.at = null;
  age.error = null;
  const tick = async () => {
    if (mine !== generation) return;
    age.busy = true;
    try {
      await load();
      if (mine !== generation) return;
      age.at = Date.now();
      age.error = null;
    } catch (error) {
      if (mine !== generation) return;
      age.error = error;
      if (error instanceof ApiError && error.status === 401) {
        session.onUnauthorized(error.message);
        return;
      }
    } finally {
      age.busy = false;
      showAge();
    }
    setTimeout(tick, everyMs);
  };
  tick();
  return { now: () => (mine === generation ? load().then(() => { age.at = Date.now(); showAge(); }) : null) };
}

export function stopPolling() {
  generation++;
}

export function showAge() {
  const el = document.getElementById("age");
  if (!el) return;
  const secondsOld = age.at === null ? null : Math.max(0, Math.round((Date.now() - age.at) / 1000));
  el.classList.toggle("stale", Boolean(age.error) || (secondsOld !== null && secondsOld * 1000 > 3 * POLL_MS));
  el.dataset.ageS = secondsOld === null ? "" : String(secondsOld);
  if (age.error) {
    el.textContent = `could not refresh: ${age.error.message}` +
      (secondsOld === null ? "" : ` (showing data from ${secondsOld} s ago)`);
  } else {
    el.textContent = secondsOld === null ? "loading…" : `updated ${secondsOld} s ago`;
  }
}

setInterval(showAge, 1000);

// ------------------------------------------------------------ messages and confirmation

export function toast(text, kind = "info") {
  const box = document.getElementById("toast");
  const item = h("div", { class: `toast ${kind}`, role: "status" }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 12000 : 6000);
}

// Ask before a control; resolves to the confirmed fields ({} for none), or null when the operator backs out.
export function confirmControl(title, text, fields = []) {
  const dialog = document.getElementById("confirm");
  replace(dialog.querySelector(".title"), title);
  replace(dialog.querySelector(".text"), text);
  const extra = dialog.querySelector(".fields");
  replace(extra, fields.map((field) => h("label", {}, field.label, " ",
    h("select", { name: field.name }, field.options.map(([value, label]) => h("option", { value }, label))))));
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "confirm") return resolve(null);
      const values = {};
      for (const select of extra.querySelectorAll("select")) if (select.value) values[select.name] = select.value;
      resolve(values);
    }, { once: true });
  });
}

// One control on one job, after confirmation; `done` runs with the answer (the job's row after the change).
export async function runControl(jobId, action, { fields = [], done = () => {} } = {}) {
  const what = { retry: "Start this job again", cancel: "Stop this job: it ends cancelled and its VM is deleted",
    launch: "Render this job on a VM now" }[action];
  const choices = typeof fields === "function" ? await fields() : fields;
  const values = await confirmControl(`${action} ${jobId}?`, `${what}. This is done as ${session.who.identity}.`,
    choices);
  if (values === null) return;
  try {
    const answer = await api(`/${encodeURIComponent(jobId)}/${action}`, { method: "POST", body: values });
    toast(`${action}: ${jobId} is now ${answer.job.state} (by ${answer.operator})`);
    done(answer);
  } catch (error) {
    toast(`${action} refused: ${error.message}`, "error");
  }
}
