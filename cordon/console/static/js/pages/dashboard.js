// The town dashboard: one row per compound, every figure a link to the list behind it,
// refreshed by polling. Six reads whatever the town's size (the API counts, not the browser).
import * as api from "../api.js";
import { t } from "../i18n.js";
import { day, exportCsv, fill, h, link, printButton, startOfTownDay, when } from "../ui.js";

const LEVELS = ["sealed", "controlled", "precaution", null];
const POLL_SECONDS = 30;

// Town-level figures of logistics and notify: the API has no per-compound count for these,
// so one read each (a page of 100; "100+" beyond) and a link to the list behind it.
const TOWN_FIGURES = [
  { service: "logistics", name: "requests_overdue", label: "dash.requests_overdue", path: "/v1/requests?overdue=true&limit=100", href: "#/list/requests?overdue=true" },
  { service: "notify", name: "alerts_queued", label: "dash.alerts_queued", path: "/v1/messages?state=queued&limit=100", href: "#/list/messages?state=queued" },
  { service: "notify", name: "alerts_failed", label: "dash.alerts_failed", path: "/v1/messages?state=failed&limit=100", href: "#/list/messages?state=failed" },
];

async function townFigures(services) {
  return Promise.all(TOWN_FIGURES.filter((f) => services.has(f.service)).map(async (f) => {
    const page = await api.get(f.path);
    return { ...f, value: `${page.items.length}${page.next_cursor ? "+" : ""}` };
  }));
}

export async function load({ testing, services = new Set() }) {
  const since = startOfTownDay();
  const reads = [api.get("/v1/compounds"), api.get("/v1/zones/population?by=compound")];
  if (testing) {
    reads.push(
      api.get("/v1/rounds?status=open&limit=500"),
      api.all("/v1/compound-clocks"),
      api.get(api.query("/v1/cases/counts", { since })),
    );
  }
  const [town, compounds, population, rounds, clocks, counts] = await Promise.all([townFigures(services), ...reads]);
  let coverage = [];
  if (testing && rounds.items.length) {
    coverage = await Promise.all(rounds.items.map((round) =>
      api.get(`/v1/rounds/${round.id}/coverage?by=compound`).then((c) => ({ round, c }))));
  }
  return { since, town, compounds, population, rounds: rounds?.items || [], clocks: clocks || [], counts: counts || [], coverage };
}

// Per compound: the figures the page shows, keyed as the cells' data-figure attributes.
export function figures(data) {
  const rows = new Map();
  for (const compound of data.compounds) {
    rows.set(compound.id, { compound, zones: {}, coverage: null, clock: null, counts: null });
  }
  for (const p of data.population) {
    const row = rows.get(p.compound_id);
    if (row) row.zones[p.level || "none"] = { households: p.households, people: p.people };
  }
  // The most recently opened round covering each compound.
  const byOpening = [...data.coverage].sort((a, b) => (b.round.opened_at || "").localeCompare(a.round.opened_at || ""));
  for (const { round, c } of byOpening) {
    for (const group of c.groups) {
      const row = rows.get(group.place_id);
      if (row && !row.coverage) row.coverage = { round, tally: group };
    }
  }
  for (const clock of data.clocks) if (rows.has(clock.compound_id)) rows.get(clock.compound_id).clock = clock;
  for (const count of data.counts) if (rows.has(count.compound_id)) rows.get(count.compound_id).counts = count;
  return [...rows.values()];
}

const figure = (name, value, href) => h("a", { href, dataset: { figure: name } }, String(value ?? 0));

function residentsHref(compoundId, level) {
  return level ? `#/list/residents?compound_id=${compoundId}&zone=${level}` : `#/compound/${compoundId}`;
}

function coverageCell(row) {
  if (!row.coverage) return h("span", { class: "muted" }, t("dash.no_open_round"));
  const { round, tally } = row.coverage;
  const list = (extra) => `#/list/results?round_id=${round.id}&compound_id=${row.compound.id}${extra}`;
  const pct = (n) => (tally.expected ? `${(100 * n) / tally.expected}%` : "0");
  const bar = h("div", { class: "bar", role: "img", "aria-label": t("dash.bar_label", tally) },
    h("span", { class: "positive", style: `width:${pct(tally.positive)}` }),
    h("span", { class: "resulted", style: `width:${pct(tally.resulted - tally.positive)}` }),
    h("span", { class: "sampled", style: `width:${pct(tally.sampled - tally.resulted)}` }));
  return h("div", {},
    h("div", {}, link(`#/round/${round.id}`, round.name)), bar,
    h("div", { class: "legend" },
      t("cov.sampled"), " ", figure("sampled", tally.sampled, list("")), " / ",
      figure("expected", tally.expected, list("")), " · ",
      t("cov.resulted"), " ", figure("resulted", tally.resulted, list("")), " · ",
      t("cov.positive"), " ", figure("positive", tally.positive, list("&status=positive")), " · ",
      t("cov.missed"), " ", figure("missed", tally.missed, `#/list/missed?round_id=${round.id}&compound_id=${row.compound.id}`)));
}

function statusCell(compound) {
  return h("div", {},
    h("span", { class: `badge status-${compound.status}`, dataset: { figure: "status" } }, t(`status.${compound.status}`)),
    compound.epidemic_free_eligible_since
      ? h("div", { class: "muted" }, t("dash.eligible_since"), " ", h("span", { dataset: { figure: "eligible_since" } }, day(compound.epidemic_free_eligible_since)))
      : null);
}

function zoneCell(row, level) {
  const key = level || "none";
  const z = row.zones[key] || { households: 0, people: 0 };
  const href = residentsHref(row.compound.id, level);
  return h("span", {}, figure(`households.${key}`, z.households, href), " / ", figure(`people.${key}`, z.people, href));
}

function columns(testing) {
  const cols = [
    { label: "dash.compound", value: (r) => link(`#/compound/${r.compound.id}`, `${r.compound.code} ${r.compound.name}`), text: (r) => r.compound.name },
    { label: "dash.status", value: (r) => statusCell(r.compound), text: (r) => t(`status.${r.compound.status}`) },
    ...LEVELS.map((level) => ({
      label: `zone.${level || "none"}`, num: true, value: (r) => zoneCell(r, level),
      text: (r) => { const z = r.zones[level || "none"] || { households: 0, people: 0 }; return `${z.households}/${z.people}`; },
    })),
  ];
  if (testing) {
    cols.push(
      { label: "dash.coverage", value: coverageCell, text: (r) => (r.coverage ? `${r.coverage.tally.sampled}/${r.coverage.tally.expected}` : "") },
      { label: "dash.days_since_positive", num: true, value: (r) => figure("days_since_positive", r.clock?.days_without_positive ?? "–", `#/list/cases?compound_id=${r.compound.id}`), text: (r) => r.clock?.days_without_positive ?? "" },
      { label: "dash.cases_today", num: true, value: (r) => figure("cases_today", r.counts?.cases_since, `#/list/cases?compound_id=${r.compound.id}&confirmed_since=${encodeURIComponent(r.since)}`), text: (r) => r.counts?.cases_since ?? 0 },
      { label: "dash.transfers", num: true, value: (r) => h("span", {},
        figure("transfers_pending", r.counts?.transfers_pending, `#/list/transfers?compound_id=${r.compound.id}&status=pending`), " / ",
        h("span", { class: r.counts?.transfers_overdue ? "error" : "" }, figure("transfers_overdue", r.counts?.transfers_overdue, `#/list/transfers?compound_id=${r.compound.id}&overdue=true`))),
      text: (r) => `${r.counts?.transfers_pending ?? 0}/${r.counts?.transfers_overdue ?? 0}` },
    );
  }
  return cols;
}

function render(target, data, testing) {
  const rows = figures(data).map((r) => ({ ...r, since: data.since }));
  const cols = columns(testing);
  const tableEl = h("table", { id: "dashboard" },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, t(c.label))))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { compound: r.compound.id } },
      cols.map((c) => h("td", { class: c.num ? "num" : null }, c.value(r)))))));
  fill(target, 
    h("h1", {}, t("nav.dashboard")),
    h("div", { class: "toolbar" },
      h("span", { class: "muted", "aria-live": "polite", id: "updated" }, t("dash.updated", { time: when(new Date().toISOString()) })),
      h("button", { type: "button", class: "secondary", onclick: () => exportCsv(cols, rows, "dashboard") }, t("export_csv")),
      printButton()),
    data.town.length ? h("p", { id: "town-figures" }, data.town.map((f, i) =>
      h("span", {}, i ? " · " : "", t(f.label), " ", h("span", { class: f.name !== "alerts_queued" && f.value !== "0" ? "error" : "" }, figure(f.name, f.value, f.href))))) : null,
    h("p", { class: "muted" }, t("dash.zone_hint")),
    tableEl);
}

export default async function dashboard(target, { services }) {
  const testing = services.has("testing");
  render(target, await load({ testing, services }), testing);
  // Live: poll while this page is shown; a failed poll keeps the last figures.
  const tick = async () => {
    if (!document.getElementById("dashboard") || !location.hash.startsWith("#/dashboard")) return;
    try { render(target, await load({ testing, services }), testing); } catch { /* next tick */ }
    setTimeout(tick, POLL_SECONDS * 1000);
  };
  setTimeout(tick, POLL_SECONDS * 1000);
}
