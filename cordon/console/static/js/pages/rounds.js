// Screening rounds: schedule (scope, window, pool size), open and close, sites and slots,
// results upload with per-row errors, the samplers' task lists and door-to-door lists.
import * as api from "../api.js";
import { t } from "../i18n.js";
import { compoundsInScope, placesOf } from "../places.js";
import { exportCsv, field, fill, fromTownInput, h, link, printButton, problemText, put, select, table, toTownInput, toast, when } from "../ui.js";
import { scopePicker } from "../scope.js";
import { listSection } from "./lists.js";

async function scheduleForm(me, reload) {
  const now = new Date();
  const inputs = {
    name: h("input", { name: "name", required: true, id: "round-name" }),
    kind: select("kind", [["pcr", "PCR"], ["antigen", t("round.antigen")]], "pcr"),
    starts_at: h("input", { type: "datetime-local", name: "starts_at", required: true, value: toTownInput(now) }),
    ends_at: h("input", { type: "datetime-local", name: "ends_at", required: true, value: toTownInput(new Date(now.getTime() + 12 * 3600e3)) }),
    pool_size: select("pool_size", [["10", "10 → 1"], ["20", "20 → 1"], ["1", t("round.single")]], "10"),
  };
  const scope = await scopePicker({ kinds: ["town", "compounds", "buildings", "units", "zone_level"] });
  const error = h("p", { class: "error", role: "alert" });
  return h("form", { id: "schedule-form", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const round = await api.create("/v1/rounds", {
        town_id: me.scope.towns[0], name: inputs.name.value, kind: inputs.kind.value, scope: scope.value(),
        starts_at: fromTownInput(inputs.starts_at.value), ends_at: fromTownInput(inputs.ends_at.value),
        pool_size: Number(inputs.pool_size.value),
      });
      toast(t("round.scheduled", round));
      location.hash = `#/round/${round.id}`;
    } catch (problem) { error.textContent = problemText(problem); }
  } },
  h("h2", {}, t("round.schedule")),
  h("div", { class: "inline" }, field("col.name", inputs.name), field("col.kind", inputs.kind), field("round.starts_at", inputs.starts_at), field("round.ends_at", inputs.ends_at), field("round.pool_size", inputs.pool_size)),
  scope.element, h("button", { type: "submit" }, t("round.schedule")), error);
}

export default async function rounds(target, { me, params }) {
  const status = params.get("status") || "";
  const page = await api.get(api.query("/v1/rounds", { status, limit: 100 }));
  const cols = [
    { key: "name", label: "col.name", value: (r) => link(`#/round/${r.id}`, r.name), text: (r) => r.name },
    { key: "status", label: "col.status", value: (r) => t(`round_status.${r.status}`) },
    { key: "starts_at", label: "round.starts_at", value: (r) => when(r.starts_at) },
    { key: "ends_at", label: "round.ends_at", value: (r) => when(r.ends_at) },
    { key: "scope", label: "round.scope", value: (r) => t(`scope.${r.scope.kind}`) },
    { key: "pool_size", label: "round.pool_size", num: true },
    { key: "expected", label: "cov.expected", num: true },
  ];
  const filter = select("status", [["", t("any")], ...["scheduled", "open", "closed"].map((s) => [s, t(`round_status.${s}`)])], status, { "aria-label": t("col.status") });
  filter.addEventListener("change", () => { location.hash = `#/rounds?status=${filter.value}`; });
  fill(target, 
    h("h1", {}, t("nav.rounds")),
    h("div", { class: "toolbar" }, field("col.status", filter),
      h("button", { type: "button", class: "secondary", onclick: () => exportCsv(cols, page.items, "rounds") }, t("export_csv")), printButton()),
    table(cols, page.items, { id: "rounds" }),
    await scheduleForm(me));
}

function siteForm(round, compounds, reload) {
  const name = h("input", { name: "site_name", required: true });
  const compound = select("site_compound", compounds.map((c) => [c.id, `${c.code} ${c.name}`]), compounds[0]?.id);
  const start = h("input", { type: "datetime-local", name: "slot_start", value: toTownInput(new Date(round.starts_at)) });
  const end = h("input", { type: "datetime-local", name: "slot_end", value: toTownInput(new Date(round.ends_at)) });
  return h("form", { class: "inline", id: "site-form", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await api.create(`/v1/rounds/${round.id}/sites`, {
        name: name.value, compound_id: compound.value, building_ids: [],
        slots: start.value && end.value ? [{ starts_at: fromTownInput(start.value), ends_at: fromTownInput(end.value), building_ids: [] }] : [],
      });
      await reload();
    } catch (problem) { toast(problemText(problem), "error"); }
  } }, field("col.name", name), field("compound", compound), field("round.slot_start", start), field("round.slot_end", end), h("button", { type: "submit" }, t("round.add_site")));
}

function resultsUpload() {
  const file = h("input", { type: "file", name: "results", id: "results-file", accept: ".csv,.json,text/csv,application/json" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": t("import.progress") });
  const status = h("p", { id: "results-status", role: "status" });
  const errors = h("div", { id: "results-errors" });
  const cols = [
    { key: "row", label: "col.row", num: true }, { key: "tube_code", label: "col.tube" },
    { key: "column", label: "col.column" }, { key: "message", label: "col.message" },
  ];
  const showErrors = (rows) => {
    fill(errors);
    if (rows.length) {
      put(errors, h("div", { class: "toolbar" }, h("button", { type: "button", class: "secondary", onclick: () => exportCsv(cols, rows, "result-errors") }, t("export_csv"))),
        table(cols, rows, { id: "results-row-errors" }));
    }
  };
  return h("form", { class: "panel", id: "results-form", onsubmit: async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    progress.hidden = false;
    status.className = "";
    status.textContent = t("import.sending");
    try {
      const report = await api.upload("/v1/results/uploads", file.files[0], (share) => { progress.value = share; });
      status.className = "ok";
      status.textContent = t("results.applied", report);
      showErrors(report.errors || []);
    } catch (problem) {
      status.className = "error";
      status.textContent = problemText(problem);
      showErrors(problem.body?.errors || []);
    } finally { progress.hidden = true; }
  } }, h("h2", {}, t("results.upload")), h("p", { class: "muted" }, t("results.format")),
  h("label", {}, t("import.file"), file), " ", h("button", { type: "submit" }, t("results.send")), progress, status, errors);
}

export async function round(target, args) {
  const [id, sub] = args.args;
  if (sub === "door-to-door") return doorToDoor(target, id, args.params);
  const reload = () => round(target, args);
  const [r, sites, coverage, compounds] = await Promise.all([
    api.get(`/v1/rounds/${id}`),
    api.get(`/v1/rounds/${id}/sites`),
    api.get(`/v1/rounds/${id}/coverage?by=compound`),
    compoundsInScope(),
  ]);
  const action = (verb) => h("button", { type: "button", id: `round-${verb}`, onclick: async () => {
    try { await api.create(`/v1/rounds/${id}/${verb}`, {}); toast(t(`round.done_${verb}`)); await reload(); }
    catch (problem) { toast(problemText(problem), "error"); }
  } }, t(`round.${verb}`));
  const name = (cid) => compounds.find((c) => c.id === cid)?.name || "";
  const covCols = [
    { key: "name", label: "compound", value: (g) => link(`#/compound/${g.place_id}`, g.name || name(g.place_id)), text: (g) => g.name || name(g.place_id) },
    { key: "expected", label: "cov.expected", num: true, value: (g) => link(`#/list/results?round_id=${id}&compound_id=${g.place_id}`, String(g.expected)) },
    { key: "sampled", label: "cov.sampled", num: true },
    { key: "resulted", label: "cov.resulted", num: true },
    { key: "positive", label: "cov.positive", num: true, value: (g) => link(`#/list/results?round_id=${id}&compound_id=${g.place_id}&status=positive`, String(g.positive)) },
    { key: "missed", label: "cov.missed", num: true, value: (g) => link(`#/list/missed?round_id=${id}&compound_id=${g.place_id}`, String(g.missed)) },
  ];
  fill(target, 
    h("h1", {}, r.name),
    h("p", {}, h("span", { class: "badge", id: "round-status" }, t(`round_status.${r.status}`)), " ",
      `${when(r.starts_at)} – ${when(r.ends_at)} · ${t(`scope.${r.scope.kind}`)} · ${t("round.pool_size")} ${r.pool_size} · ${t("cov.expected")} ${r.expected}`),
    h("div", { class: "toolbar" },
      r.status === "scheduled" ? action("open") : null,
      r.status === "open" ? action("close") : null,
      link(`#/round/${id}/door-to-door`, t("round.door_to_door")),
      link(`#/list/tasks?round_id=${id}&kind=retest&status=open`, t("task.retest")),
      link(`#/list/tasks?round_id=${id}&kind=resample&status=open`, t("task.resample"))),
    h("h2", {}, t("dash.coverage")),
    h("div", { class: "toolbar" }, h("button", { type: "button", class: "secondary", onclick: () => exportCsv(covCols, coverage.groups, "coverage") }, t("export_csv")), printButton()),
    table(covCols, coverage.groups, { id: "round-coverage" }),
    h("h2", {}, t("round.sites")),
    table([
      { key: "name", label: "col.name" },
      { key: "compound", label: "compound", value: (s) => name(s.compound_id) },
      { key: "slots", label: "round.slots", value: (s) => s.slots.map((x) => `${when(x.starts_at)} – ${when(x.ends_at)}`).join("; ") },
    ], sites, { id: "sites" }),
    siteForm(r, compounds, reload),
    r.status !== "scheduled" ? resultsUpload() : null);
  await listSection(target, "tasks", new URLSearchParams({ round_id: id, status: "open" }), { limit: 50, title: t("list.tasks") });
}

// The door-to-door list, one A4 sheet per building when printed, with boxes to tick.
async function doorToDoor(target, id, params) {
  const compoundId = params.get("compound_id");
  const [r, buildings] = await Promise.all([api.get(`/v1/rounds/${id}`), api.get(`/v1/rounds/${id}/door-to-door`)]);
  const shown = buildings.filter((b) => !compoundId || b.compound_id === compoundId);
  const compounds = await compoundsInScope();
  const placeNames = new Map();
  for (const cid of new Set(shown.map((b) => b.compound_id).filter(Boolean))) placeNames.set(cid, await placesOf(cid));
  const cols = [
    { key: "box", label: "col.done", box: true, value: () => "" },
    { key: "name", label: "col.name", value: (p) => p.name ?? "" },
    { key: "unit", label: "col.place", value: (p) => placeNames.get(p.compound_id)?.units.get(p.unit_id) || "" },
    { key: "phone", label: "col.phone" },
    { key: "reasons", label: "col.reasons", value: (p) => p.reasons.map((x) => t(`reason.${x}`)).join(", ") },
  ];
  const every = shown.flatMap((b) => b.residents.map((p) => ({ ...p, compound_id: b.compound_id, building: b.building_code })));
  fill(target, 
    h("h1", { class: "no-print" }, `${t("round.door_to_door")} · ${r.name}`),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", onclick: () => exportCsv([{ key: "building", label: "building" }, ...cols], every, "door-to-door") }, t("export_csv")),
      printButton()),
    shown.length ? null : h("p", { class: "muted" }, t("list.empty")),
    ...shown.map((b) => h("section", { class: "sheet", dataset: { building: b.building_id } },
      h("h2", {}, `${compounds.find((c) => c.id === b.compound_id)?.name || ""} · ${t("building")} ${b.building_code} · ${b.residents.length} ${t("people")}`),
      h("p", { class: "print-only" }, `${r.name} · ${when(r.starts_at)} – ${when(r.ends_at)}`),
      table(cols, b.residents.map((p) => ({ ...p, compound_id: b.compound_id }))),
      h("p", { class: "print-only" }, t("print.signature")))));
}
