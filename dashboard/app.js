// The dashboard's entry: sign-in, who the caller is, and which page the address names (#/jobs, #/job/ID, ...).

import { ApiError, api, session, setToken, showAge, stopPolling, takeTokenFromAddress, token } from "./core.js";
import { replace } from "./dom.js";
import { jobPage, jobsPage } from "./jobs.js";
import { costsPage, speedsPage, vmsPage } from "./fleet.js";
import { experimentsPage } from "./ab.js";

const PAGES = { jobs: jobsPage, job: jobPage, vms: vmsPage, costs: costsPage, speeds: speedsPage,
  experiments: experimentsPage };

const main = document.getElementById("main");
const signin = document.getElementById("signin");

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "jobs";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.dataset.page === (page === "job" ? "jobs" : page));
  }
  stopPolling();
  main.replaceChildren();
  document.title = `Fast Render · ${page}`;
  PAGES[page](main, ...rest.map(decodeURIComponent));
}

function showSignin(why) {
  stopPolling();
  session.who = null;
  main.replaceChildren();
  main.hidden = true;
  signin.hidden = false;
  replace(document.getElementById("signin-why"), why);
  replace(document.getElementById("who"));
  document.getElementById("forget").hidden = true;
  document.getElementById("age").textContent = "";
  signin.querySelector("input").focus();
}

async function start() {
  try {
    // Without a stored token this still works behind a proxy that adds the caller's identity token.
    session.who = await api("/whoami");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignin(token() ? `That token is not accepted (${error.message}).` : "This dashboard needs a token.");
      setToken("");
      return;
    }
    showSignin(`Cannot ask who you are: ${error.message}`);
    return;
  }
  signin.hidden = true;
  main.hidden = false;
  const who = document.getElementById("who");
  who.className = session.who.can_write ? "operator" : "viewer";
  replace(who, session.who.identity, " · ", session.who.can_write ? "operator" : "read-only");
  document.getElementById("forget").hidden = !token();
  route();
}

session.onUnauthorized = (message) => {
  setToken("");
  showSignin(`The token is no longer accepted (${message}).`);
};

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.token;
  setToken(input.value);
  input.value = "";
  start();
});

document.getElementById("forget").addEventListener("click", () => {
  setToken("");
  showSignin("Signed out: the token is forgotten in this tab.");
});

window.addEventListener("hashchange", () => {
  if (/token=/.test(location.hash)) {
    takeTokenFromAddress();
    start();
  } else if (session.who) route();
});

takeTokenFromAddress();
showAge();
start();
