// The console shell: sign-in, the navigation (only the services this deployment serves) and
// a hash router. Pages are modules of their service; a service adds its pages in SERVICES.
import * as api from "./api.js";
import { t, lang, setLang } from "./i18n.js";
import { h, problemText, setTownTimeZone } from "./ui.js";

// Each service: a read that answers when it is deployed (a 404 means no service owns it),
// and its pages.
const SERVICES = [
  {
    name: "registry", probe: "/v1/auth/me",
    pages: [
      { path: "dashboard", label: "nav.dashboard", load: () => import("./pages/dashboard.js") },
      { path: "residents", label: "nav.residents", load: () => import("./pages/residents.js") },
      { path: "import", label: "nav.import", load: () => import("./pages/ledger.js") },
    ],
    hidden: [
      { path: "compound", load: () => import("./pages/compound.js") },
      { path: "resident", load: () => import("./pages/residents.js"), view: "resident" },
      { path: "list", load: () => import("./pages/lists.js") },
    ],
  },
  {
    name: "testing", probe: "/v1/rounds?limit=1",
    pages: [
      { path: "rounds", label: "nav.rounds", load: () => import("./pages/rounds.js") },
      { path: "cases", label: "nav.cases", load: () => import("./pages/cases.js") },
      { path: "transfers", label: "nav.transfers", load: () => import("./pages/cases.js"), view: "transfers" },
    ],
    hidden: [
      { path: "round", load: () => import("./pages/rounds.js"), view: "round" },
    ],
  },
  {
    name: "logistics", probe: "/v1/distribution-plans?limit=1",
    pages: [
      { path: "stock", label: "nav.stock", load: () => import("./pages/logistics.js") },
      { path: "plans", label: "nav.plans", load: () => import("./pages/logistics.js"), view: "plans" },
      { path: "requests", label: "nav.requests", load: () => import("./pages/logistics.js"), view: "requests" },
      { path: "recurring", label: "nav.recurring", load: () => import("./pages/errands.js"), view: "recurring" },
      { path: "cards", label: "nav.cards", load: () => import("./pages/errands.js"), view: "cards" },
      { path: "disinfection", label: "nav.disinfection", load: () => import("./pages/disinfection.js") },
    ],
    hidden: [
      { path: "plan", load: () => import("./pages/logistics.js"), view: "plan" },
      { path: "stock-card", load: () => import("./pages/logistics.js"), view: "stockCard" },
      { path: "request", load: () => import("./pages/errands.js"), view: "request" },
    ],
  },
  {
    name: "notify", probe: "/v1/broadcasts?limit=1",
    pages: [
      { path: "broadcasts", label: "nav.broadcasts", load: () => import("./pages/notify.js") },
      { path: "messages", label: "nav.messages", load: () => import("./pages/notify.js"), view: "messages" },
    ],
  },
];

// The console is the operators' tool: town operators and committee staff.
const OPERATORS = new Set(["town_operator", "committee_staff"]);

export const state = { me: null, services: new Set() };
const main = () => document.getElementById("main");

async function detectServices() {
  const found = new Set();
  await Promise.all(SERVICES.map(async (service) => {
    try {
      await api.get(service.probe);
      found.add(service.name);
    } catch (problem) {
      // Deployed but not for this user still counts; 404 is "no service owns this".
      if (problem.status && problem.status !== 404) found.add(service.name);
    }
  }));
  return found;
}

function routes() {
  const table = {};
  for (const service of SERVICES) {
    if (!state.services.has(service.name)) continue;
    for (const page of [...service.pages, ...(service.hidden || [])]) table[page.path] = page;
  }
  return table;
}

function renderNav(current) {
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  if (!state.me || !OPERATORS.has(state.me.role)) return;
  for (const service of SERVICES) {
    if (!state.services.has(service.name)) continue;
    for (const page of service.pages) {
      nav.append(h("a", {
        href: `#/${page.path}`,
        "aria-current": page.path === current ? "page" : null,
        dataset: { page: page.path },
      }, t(page.label)));
    }
  }
}

function renderChrome() {
  document.documentElement.lang = lang();
  document.getElementById("lang-label").textContent = t("language");
  document.getElementById("lang").value = lang();
  const out = document.getElementById("sign-out");
  out.textContent = t("sign_out");
  out.hidden = !state.me;
  document.getElementById("who").textContent = state.me
    ? `${state.me.username} · ${t(`role.${state.me.role}`)}` : "";
  document.title = t("title");
}

export function parseHash() {
  const [path, search = ""] = (location.hash.replace(/^#\/?/, "") || "dashboard").split("?");
  const [page, ...rest] = path.split("/");
  return { page, args: rest.map(decodeURIComponent), params: new URLSearchParams(search) };
}

// Each page draws into a main element of its own: a page still waiting for its figures when
// another is opened draws, when they come, into one no longer shown, never over the new page.
function freshMain() {
  const shown = main();
  const fresh = shown.cloneNode(false);
  delete fresh.dataset.shown;
  shown.replaceWith(fresh);
  return fresh;
}

let rendering = 0;
async function route() {
  const ticket = ++rendering;
  renderChrome();
  if (!api.signedIn()) return showSignIn();
  if (!state.me) {
    // Signed in, still asking who we are: start() draws the page once it knows.
    main().replaceChildren(h("p", { class: "muted" }, t("loading")));
    return undefined;
  }
  const { page, args, params } = parseHash();
  renderNav(page);
  const target = freshMain();
  if (!OPERATORS.has(state.me.role)) {
    target.replaceChildren(h("h1", {}, t("not_for_role.title")), h("p", { id: "not-for-role" }, t("not_for_role.text")));
    return;
  }
  const entry = routes()[page];
  if (!entry) {
    target.replaceChildren(h("h1", {}, t("not_found")));
    return;
  }
  target.replaceChildren(h("p", { class: "muted" }, t("loading")));
  delete target.dataset.shown;
  try {
    const module = await entry.load();
    if (ticket !== rendering) return;
    const view = module[entry.view || "default"];
    await view(target, { args, params, me: state.me, services: state.services });
    // Done drawing this page (tests and scripts wait for it; screen readers get focus).
    if (ticket === rendering) target.dataset.shown = page;
  } catch (problem) {
    if (ticket !== rendering) return;
    target.replaceChildren(h("h1", {}, t("error")), h("p", { class: "error" }, problemText(problem)));
  }
}

function showSignIn() {
  renderNav(null);
  const error = h("p", { class: "error", role: "alert" });
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", {
    class: "signin", "aria-labelledby": "signin-title",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await api.signIn(username.value, password.value);
        await start();
      } catch (problem) {
        error.textContent = problemText(problem);
      }
    },
  },
  h("h1", { id: "signin-title" }, t("sign_in")),
  h("label", {}, t("username"), username),
  h("label", {}, t("password"), password),
  h("button", { type: "submit" }, t("sign_in")),
  error);
  main().replaceChildren(form);
  username.focus();
}

// The session ended under an open page: sign in again in a dialog, keep the page and its
// form, and let the waiting call retry.
function signInAgain() {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert" });
    const password = h("input", { type: "password", name: "password", autocomplete: "current-password" });
    const dialog = h("dialog", { "aria-labelledby": "again-title" },
      h("form", {
        method: "dialog",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await api.signIn(state.me.username, password.value);
            dialog.close();
            dialog.remove();
            resolve();
          } catch (problem) {
            error.textContent = problemText(problem);
          }
        },
      },
      h("h2", { id: "again-title" }, t("session_expired")),
      h("p", {}, t("session_expired.text", { user: state.me.username })),
      h("label", {}, t("password"), password), " ",
      h("button", { type: "submit" }, t("sign_in")), error));
    document.body.append(dialog);
    dialog.showModal();
    password.focus();
  });
}

async function start() {
  try {
    state.me = await api.get("/v1/auth/me");
    setTownTimeZone(state.me.time_zone);
  } catch {
    state.me = null;
    await api.signOut();
    return route();
  }
  state.services = await detectServices();
  if (!location.hash || location.hash === "#/") {
    location.hash = "#/dashboard"; // hashchange renders it
    return undefined;
  }
  return route();
}

document.getElementById("lang").addEventListener("change", (event) => {
  setLang(event.target.value);
  route();
});
document.getElementById("sign-out").addEventListener("click", async () => {
  await api.signOut();
  state.me = null;
  location.hash = "#/dashboard";
  route();
});
window.addEventListener("hashchange", route);
api.onSessionLost(signInAgain);
if (api.signedIn()) start(); else route();
