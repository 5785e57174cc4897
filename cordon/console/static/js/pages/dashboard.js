// The town dashboard: one row per compound, every figure a link to the list behind it,
// refreshed by polling. Eight reads whatever the town's size (the API counts, not the browser).
import * as api from "../api.js";
import { t } from "../i18n.js";
import { day, exportCsv, figure, fill, h, link, printButton, startOfTownDay, when } from "../ui.js";

const LEVELS = ["sealed", "controlled", "precaution", null];
const POLL_SECONDS = 30;

// Per compound, as the services exist: overdue requests (logistics) and alerts queued and
// failed (notify), each one grouped count read for the whole town.
async function serviceCounts(services) {
  const [requests, messages] = await Promise.all([
    services.has("logistics") ? api.get("/v1/requests/counts") : null,
    services.has("notify") ? api.get("/v1/messages/counts?state=queued&state=failed") : null,
  ]);
  return { requests, messages };
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
  const [service, compounds, population, rounds, clocks, counts] = await Promise.all([serviceCounts(services), ...reads]);
  let coverage = [];
  if (testing && rounds.items.length) {
    coverage = await Promise.all(rounds.items.map((round) =>
      api.get(`/v1/rounds/${round.id}/coverage?by=compound`).then((c) => ({ round, c }))));
  }
  return { since, service, compounds, population, rounds: rounds?.items || [], clocks: clocks || [], counts: counts || [], coverage };
}

// Per compound: the figures the page shows, keyed as the cells' data-figure attributes.
export function figures(data) {
  const rows = new Map();
  for (const compound of data.compounds) {
    rows.set(compound.id, { compound, zones: {}, coverage: null, clock: null, counts: null, requests: null, messages: null });
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
  for (const count of data.service.requests || []) if (rows.has(count.compound_id)) rows.get(count.compound_id).requests = count;
  for (const count of data.service.messages || []) if (rows.has(count.compound_id)) rows.get(count.compound_id).messages = count.states;
  return [...rows.values()];
}


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

function serviceColumns(service) {
  const cols = [];
  if (service.requests) {
    cols.push({ label: "dash.requests_overdue", num: true, value: (r) => {
      const n = r.requests?.overdue ?? 0;
      return h("span", { class: n ? "error" : null }, figure("requests_overdue", n, `#/list/requests?compound_id=${r.compound.id}&overdue=true`));
    }, text: (r) => r.requests?.overdue ?? 0 });
  }
  if (service.messages) {
    const href = (r, state) => `#/list/messages?compound_id=${r.compound.id}&state=${state}`;
    cols.push({ label: "dash.alerts", num: true, value: (r) => h("span", {},
      figure("alerts_queued", r.messages?.queued ?? 0, href(r, "queued")), " / ",
      h("span", { class: r.messages?.failed ? "error" : null }, figure("alerts_failed", r.messages?.failed ?? 0, href(r, "failed")))),
    text: (r) => `${r.messages?.queued ?? 0}/${r.messages?.failed ?? 0}` });
  }
  return cols;
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
  const cols = [...columns(testing), ...serviceColumns(data.service)];
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
