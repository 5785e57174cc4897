// Residents: search by name, phone, ID fragment, place, tag and zone; a resident's page with
// household, tags, moves, tests and case. Numbers stay masked until "Reveal" (a logged read).
import * as api from "../api.js";
import { t } from "../i18n.js";
import { compoundsInScope, placesOf } from "../places.js";
import { day, field, fill, h, link, problemText, put, select, when } from "../ui.js";
import { TAGS } from "../scope.js";
import { listSection } from "./lists.js";

const FIELDS = ["name", "phone", "document", "compound_id", "building_id", "unit_id", "tag", "zone"];

export default async function residents(target, { params }) {
  const compounds = await compoundsInScope();
  const form = h("form", { class: "inline", id: "resident-search", role: "search" });
  const inputs = {
    name: h("input", { name: "name", value: params.get("name") || "" }),
    phone: h("input", { name: "phone", inputmode: "numeric", value: params.get("phone") || "" }),
    document: h("input", { name: "document", value: params.get("document") || "" }),
    compound_id: select("compound_id", [["", t("any")], ...compounds.map((c) => [c.id, `${c.code} ${c.name}`])], params.get("compound_id") || ""),
    building_id: select("building_id", [["", t("any")]], ""),
    unit_id: select("unit_id", [["", t("any")]], ""),
    tag: select("tag", [["", t("any")], ...TAGS.map((x) => [x, t(`tag.${x}`)])], params.get("tag") || ""),
    zone: select("zone", [["", t("any")], ...["sealed", "controlled", "precaution"].map((z) => [z, t(`zone.${z}`)])], params.get("zone") || ""),
  };
  // Buildings and units of the chosen compound, from the one read that names them.
  const fillPlaces = async () => {
    const compoundId = inputs.compound_id.value;
    fill(inputs.building_id, h("option", { value: "" }, t("any")));
    fill(inputs.unit_id, h("option", { value: "" }, t("any")));
    if (!compoundId) return;
    const places = await placesOf(compoundId);
    for (const [id, code] of [...places.buildings.entries()].sort((a, b) => a[1].localeCompare(b[1], undefined, { numeric: true }))) {
      put(inputs.building_id, h("option", { value: id, selected: id === params.get("building_id") ? true : null }, code));
    }
    const fillUnits = () => {
      fill(inputs.unit_id, h("option", { value: "" }, t("any")));
      for (const row of places.rows) {
        if (row.unit_id && row.building_id === inputs.building_id.value) {
          put(inputs.unit_id, h("option", { value: row.unit_id, selected: row.unit_id === params.get("unit_id") ? true : null }, row.unit_code));
        }
      }
    };
    inputs.building_id.onchange = fillUnits;
    fillUnits();
  };
  inputs.compound_id.addEventListener("change", fillPlaces);
  await fillPlaces();
  put(form, ...FIELDS.map((name) => field(`search.${name}`, inputs[name])), h("button", { type: "submit" }, t("search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const search = new URLSearchParams();
    for (const name of FIELDS) if (inputs[name].value.trim()) search.set(name, inputs[name].value.trim());
    location.hash = `#/residents?${search}`;
  });
  fill(target, h("h1", {}, t("nav.residents")), form);
  if (FIELDS.some((name) => params.get(name))) {
    try {
      await listSection(target, "residents", params, { limit: 100 });
    } catch (problem) {
      put(target, h("p", { class: "error", role: "alert" }, problemText(problem)));
    }
  } else {
    put(target, h("p", { class: "muted" }, t("search.hint")));
  }
}

export async function resident(target, { args, services }) {
  const id = args[0];
  let reveal = false;
  const render = async () => {
    const person = await api.get(api.query(`/v1/residents/${id}`, { reveal: reveal ? "true" : null }));
    const [household, members, moves, places, cases] = await Promise.all([
      api.get(`/v1/households/${person.household_id}`),
      api.get(`/v1/residents?household_id=${person.household_id}`),
      api.get(`/v1/residents/${id}/moves`),
      placesOf(person.compound_id),
      services.has("testing") ? api.get(`/v1/cases?resident_id=${id}`) : null,
    ]);
    const place = (person.unit_id && places.units.get(person.unit_id)) || places.buildings.get(person.building_id) || "";
    const rows = [
      ["col.name", person.name], ["col.place", `${place} · ${household.room || household.code}`],
      ["col.zone", person.zone ? t(`zone.${person.zone}`) : t("zone.none")],
      ["col.tags", person.tags.map((x) => t(`tag.${x}`)).join(", ")],
      ["col.phone", h("span", { id: "resident-phone" }, person.phone || "")],
      ["col.document", h("span", { id: "resident-document" }, person.document_number)],
      ["col.birth", person.birth_date || person.birth_year || ""],
      ["col.care_notes", person.care_notes || ""],
    ];
    const c = cases?.items[0];
    fill(target, 
      h("h1", {}, person.name),
      h("div", { class: "toolbar" },
        h("button", { type: "button", id: "reveal", "aria-pressed": String(reveal), onclick: async () => { reveal = !reveal; await render(); } }, t(reveal ? "mask" : "reveal")),
        reveal ? h("span", { class: "muted" }, t("reveal.logged")) : null),
      h("table", {}, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, t(k)), h("td", {}, v))))),
      h("h2", {}, t("resident.household")),
      h("ul", {}, members.items.map((m) => h("li", {}, link(`#/resident/${m.id}`, m.name)))),
      h("h2", {}, t("resident.case")),
      services.has("testing")
        ? (c ? h("p", {}, t("resident.case_since", { at: when(c.confirmed_at) }), " · ", t(`transfer.${c.transfer.status}`), " · ", link(`#/cases?case=${c.id}`, t("cases.contacts")))
          : h("p", { class: "muted" }, t("resident.no_case")))
        : null,
      h("h2", {}, t("resident.moves")),
      moves.length ? h("ul", {}, moves.map((m) => h("li", {}, `${day(m.moved_at)} · ${m.reason}`))) : h("p", { class: "muted" }, t("resident.no_moves")),
    );
  };
  await render();
}
