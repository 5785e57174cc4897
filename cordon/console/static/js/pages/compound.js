// A compound: its buildings x units coloured by zone level with the open round's coverage,
// the missed lists, gates, zone history and downgrade proposals to decide.
import * as api from "../api.js";
import { t } from "../i18n.js";
import { placesOf } from "../places.js";
import { day, field, fill, h, link, problemText, put, select, toast, when, zoneClass } from "../ui.js";
import { listPage, listSection } from "./lists.js";

// The open round with members here, with its coverage by unit and by building: one read.
async function openRoundCovering(compoundId, testing) {
  if (!testing) return null;
  const coverage = await api.get(`/v1/coverage/open-round?compound_id=${compoundId}`);
  return coverage.round ? coverage : null;
}

function grid(places, coverage, compoundId) {
  const buildings = new Map();
  for (const row of places.rows) {
    if (!row.building_id) continue;
    if (!buildings.has(row.building_id)) buildings.set(row.building_id, { code: row.building_code, units: [] });
    buildings.get(row.building_id).units.push(row);
  }
  const unitTally = new Map((coverage?.units.groups || []).map((g) => [g.place_id, g]));
  const buildingTally = new Map((coverage?.buildings.groups || []).map((g) => [g.place_id, g]));
  const tallyText = (g) => (g ? `${g.sampled}/${g.expected}` : "");
  const sorted = [...buildings.entries()].sort((a, b) => a[1].code.localeCompare(b[1].code, undefined, { numeric: true }));
  return h("table", { class: "grid-units", id: "unit-grid" },
    h("caption", { class: "muted" }, t("compound.grid_caption")),
    h("tbody", {}, sorted.map(([buildingId, b]) => h("tr", {},
      h("th", { scope: "row" }, link(`#/list/residents?compound_id=${compoundId}&building_id=${buildingId}`, `${t("building")} ${b.code}`),
        h("div", { class: "muted", dataset: { coverage: buildingId } }, tallyText(buildingTally.get(buildingId)))),
      b.units.sort((x, y) => String(x.unit_code).localeCompare(String(y.unit_code), undefined, { numeric: true })).map((u) => h("td", {
        class: zoneClass(u.level), dataset: { unit: u.unit_id || "", level: u.level || "none" },
        title: `${u.level ? t(`zone.${u.level}`) : t("zone.none")} · ${u.households} ${t("households")} · ${u.people} ${t("people")}`,
      }, link(u.unit_id ? `#/list/residents?compound_id=${compoundId}&unit_id=${u.unit_id}` : `#/list/residents?compound_id=${compoundId}&building_id=${buildingId}`, u.unit_code ?? "–"),
      h("div", {}, `${u.people}`),
      h("div", { dataset: { coverage: u.unit_id || "" } }, tallyText(unitTally.get(u.unit_id)))))))));
}

function gatesSection(compoundId, gates) {
  return h("table", { id: "gates" },
    h("thead", {}, h("tr", {}, h("th", {}, t("col.name")), h("th", {}, t("col.state")))),
    h("tbody", {}, gates.map((gate) => {
      const control = select("state", ["open", "closed", "guarded"].map((s) => [s, t(`gate.${s}`)]), gate.state, { "aria-label": `${t("col.state")} ${gate.name}` });
      control.addEventListener("change", async () => {
        try {
          await api.patch(`/v1/compounds/${compoundId}/gates/${gate.id}`, { state: control.value });
          toast(t("saved"));
        } catch (problem) { toast(problemText(problem), "error"); control.value = gate.state; }
      });
      return h("tr", {}, h("td", {}, gate.name), h("td", {}, control));
    })));
}

function proposalsSection(proposals, places, reload) {
  if (!proposals.length) return h("p", { class: "muted", id: "proposals" }, t("compound.no_proposals"));
  return h("table", { id: "proposals" },
    h("thead", {}, h("tr", {}, ["col.place", "col.from", "col.to", "col.reason", "col.proposed_at", "col.decision"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, proposals.map((p) => {
      const note = h("input", { name: "note", "aria-label": t("compound.decision_note"), placeholder: t("compound.decision_note") });
      const decide = (verb) => async () => {
        if (!note.value.trim()) { note.focus(); toast(t("compound.note_needed"), "error"); return; }
        try {
          await api.create(`/v1/zones/proposals/${p.id}/${verb}`, { note: note.value.trim() });
          toast(t(`compound.done_${verb}`));
          await reload();
        } catch (problem) { toast(problemText(problem), "error"); }
      };
      const place = (p.unit_id && places.units.get(p.unit_id)) || places.buildings.get(p.building_id) || "";
      return h("tr", { dataset: { proposal: p.id } },
        h("td", {}, place), h("td", {}, t(`zone.${p.from_level}`)), h("td", {}, t(`zone.${p.to_level}`)),
        h("td", {}, p.reason), h("td", {}, when(p.proposed_at)),
        h("td", {}, note, " ",
          h("button", { type: "button", onclick: decide("approve") }, t("approve")), " ",
          h("button", { type: "button", class: "danger", onclick: decide("reject") }, t("reject"))));
    })));
}

function statusForm(compound, reload) {
  const status = select("status", ["normal", "closed", "epidemic_free"].map((s) => [s, t(`status.${s}`)]), compound.status);
  const reason = h("input", { name: "reason", required: true });
  return h("form", { class: "inline", id: "status-form", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await api.patch(`/v1/compounds/${compound.id}/status`, { status: status.value, reason: reason.value });
      toast(t("saved"));
      await reload();
    } catch (problem) { toast(problemText(problem), "error"); }
  } }, field("col.status", status), field("col.reason", reason), h("button", { type: "submit" }, t("save")));
}

export default async function compoundPage(target, { args, services }) {
  const compoundId = args[0];
  const testing = services.has("testing");
  const reload = () => compoundPage(target, { args, services });
  // The missed lists are asked for with the page's other reads (the round's as soon as the
  // round is known), and shown below them in their order.
  const covering = openRoundCovering(compoundId, testing);
  const missedParams = (round) => new URLSearchParams({ round_id: round.id, compound_id: compoundId });
  const twiceParams = new URLSearchParams({ compound_id: compoundId });
  const missed = covering.then((c) => (c ? listPage("missed", missedParams(c.round), { limit: 50 }) : null), () => null);
  const twice = testing ? listPage("missed-twice", twiceParams, { limit: 50 }) : null;
  const [compound, places, gates, proposals, history, coverage] = await Promise.all([
    api.get(`/v1/compounds/${compoundId}`),
    placesOf(compoundId),
    api.get(`/v1/compounds/${compoundId}/gates`),
    api.get(`/v1/zones/proposals?compound_id=${compoundId}&status=pending&limit=100`),
    api.get(`/v1/zones/history?compound_id=${compoundId}&limit=50`),
    covering,
  ]);
  const people = places.rows.reduce((sum, r) => sum + r.people, 0);
  fill(target, 
    h("h1", {}, `${compound.code} ${compound.name}`),
    h("p", {}, h("span", { class: `badge status-${compound.status}` }, t(`status.${compound.status}`)), " ",
      t("compound.since", { since: day(compound.status_since) }), " · ", `${people} ${t("people")}`,
      compound.epidemic_free_eligible_since ? ` · ${t("dash.eligible_since")} ${day(compound.epidemic_free_eligible_since)}` : ""),
    statusForm(compound, reload),
    h("h2", {}, t("compound.units")),
    coverage ? h("p", {}, t("compound.round"), " ", link(`#/round/${coverage.round.id}`, coverage.round.name), " · ",
      link(`#/round/${coverage.round.id}/door-to-door?compound_id=${compoundId}`, t("round.door_to_door")))
      : h("p", { class: "muted" }, t("dash.no_open_round")),
    grid(places, coverage, compoundId),
    h("h2", {}, t("compound.proposals")), proposalsSection(proposals.items, places, reload),
    h("h2", {}, t("compound.gates")), gatesSection(compoundId, gates),
  );
  if (coverage) {
    await listSection(target, "missed", missedParams(coverage.round), { limit: 50, title: t("list.missed"), first: missed });
  }
  if (testing) {
    await listSection(target, "missed-twice", twiceParams, { limit: 50, title: t("list.missed_twice"), first: twice });
  }
  put(target, h("h2", {}, t("compound.history")), h("table", { id: "zone-history" },
    h("thead", {}, h("tr", {}, ["col.at", "col.place", "col.from", "col.to", "col.reason"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, history.map((c) => h("tr", {},
      h("td", {}, when(c.at)),
      h("td", {}, (c.unit_id && places.units.get(c.unit_id)) || places.buildings.get(c.building_id) || ""),
      h("td", {}, c.from_level ? t(`zone.${c.from_level}`) : t("zone.none")),
      h("td", {}, c.to_level ? t(`zone.${c.to_level}`) : t("zone.none")),
      h("td", {}, c.reason))))));
}
