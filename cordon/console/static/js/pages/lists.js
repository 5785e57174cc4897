// The lists behind the figures: each from the API with the figure's filters, a page at a
// time, exportable (the API's export where there is one, else CSV made here) and printable.
// Personal data stays masked until "Reveal", which asks the API with reveal=true (logged).
import * as api from "../api.js";
import { t } from "../i18n.js";
import { namer } from "../places.js";
import { exportCsv, fill, h, link, printButton, put, when } from "../ui.js";

const person = (r) => link(`#/resident/${r.resident_id || r.id}`, r.name ?? "•••");
const personText = (r) => r.name ?? "";

export const LISTS = {
  residents: {
    title: "list.residents", path: () => "/v1/residents",
    filters: ["compound_id", "building_id", "unit_id", "household_id", "zone", "tag", "name", "phone", "document"],
    columns: (n) => [
      { key: "name", label: "col.name", value: person, text: personText },
      { key: "place", label: "col.place", value: (r) => n.place(r) },
      { key: "zone", label: "col.zone", value: (r) => (r.zone ? t(`zone.${r.zone}`) : "") },
      { key: "tags", label: "col.tags", value: (r) => r.tags.map((x) => t(`tag.${x}`)).join(", ") },
      { key: "phone", label: "col.phone" },
      { key: "document_number", label: "col.document" },
    ],
    apiExport: (params) => api.query("/v1/exports/residents", { format: "xlsx", compound_id: params.get("compound_id") }),
  },
  cases: {
    title: "list.cases", path: () => "/v1/cases",
    filters: ["compound_id", "building_id", "round_id", "resident_id", "confirmed_since"],
    columns: (n) => [
      { key: "name", label: "col.name", value: person, text: personText },
      { key: "place", label: "col.place", value: (r) => n.place(r) },
      { key: "confirmed_at", label: "col.confirmed_at", value: (r) => when(r.confirmed_at) },
      { key: "transfer", label: "col.transfer", value: (r) => t(`transfer.${r.transfer.status}`) + (r.transfer.overdue ? ` · ${t("transfer.overdue")}` : "") },
      { key: "contacts", label: "col.contacts", value: (r) => link(`#/cases?case=${r.id}`, t("cases.contacts")), text: () => "" },
    ],
  },
  transfers: {
    title: "list.transfers", path: () => "/v1/transfers",
    filters: ["compound_id", "status", "overdue"],
    columns: (n) => [
      { key: "name", label: "col.name", value: person, text: personText },
      { key: "place", label: "col.place", value: (r) => n.place(r) },
      { key: "confirmed_at", label: "col.confirmed_at", value: (r) => when(r.confirmed_at) },
      { key: "status", label: "col.transfer", value: (r) => t(`transfer.${r.transfer.status}`) },
      { key: "due", label: "col.due", value: (r) => h("span", { class: r.transfer.overdue ? "error" : "" }, when(r.transfer.due_at)) },
    ],
  },
  results: {
    title: "list.results", path: () => "/v1/results",
    filters: ["round_id", "status", "compound_id", "building_id"],
    columns: (n) => [
      { key: "name", label: "col.name", value: person, text: personText },
      { key: "place", label: "col.place", value: (r) => n.place(r) },
      { key: "status", label: "col.status", value: (r) => t(`result.${r.status}`) },
      { key: "sampled_at", label: "col.sampled_at", value: (r) => when(r.sampled_at) },
      { key: "resulted_at", label: "col.resulted_at", value: (r) => when(r.resulted_at) },
    ],
  },
  missed: {
    title: "list.missed", path: (p) => `/v1/rounds/${p.get("round_id")}/missed`,
    filters: ["compound_id", "building_id", "unit_id"],
    columns: missedColumns,
  },
  "missed-twice": {
    title: "list.missed_twice", path: () => "/v1/coverage/missed-twice",
    filters: ["compound_id", "building_id"],
    columns: missedColumns,
  },
  tasks: {
    title: "list.tasks", path: () => "/v1/tasks",
    filters: ["kind", "status", "round_id", "compound_id", "building_id"],
    columns: (n) => [
      { key: "box", label: "col.done", box: true, value: () => "" },
      { key: "kind", label: "col.kind", value: (r) => t(`task.${r.kind}`) },
      { key: "name", label: "col.name", value: person, text: personText },
      { key: "place", label: "col.place", value: (r) => n.place(r) },
      { key: "phone", label: "col.phone" },
      { key: "door", label: "col.door_to_door", value: (r) => (r.door_to_door ? "✓" : "") },
      { key: "status", label: "col.status", value: (r) => t(`task_status.${r.status}`) },
    ],
  },
  requests: {
    title: "list.requests", path: () => "/v1/requests",
    filters: ["status", "kind", "priority", "compound_id", "building_id", "overdue"],
    columns: (n) => [
      { key: "box", label: "col.done", box: true, value: () => "" },
      { key: "kind", label: "col.kind", value: (r) => link(`#/request/${r.id}`, t(`request_kind.${r.kind}`)), text: (r) => t(`request_kind.${r.kind}`) },
      { key: "priority", label: "col.priority", value: (r) => t(`priority.${r.priority}`) },
      { key: "name", label: "col.name", value: person, text: personText },
      { key: "place", label: "col.place", value: (r) => r.address || n.place(r) },
      { key: "phone", label: "col.phone" },
      { key: "status", label: "col.status", value: (r) => t(`request_status.${r.status}`) },
      { key: "due", label: "col.due", value: (r) => h("span", { class: r.overdue ? "error" : "" }, when(r.due_at), r.overdue ? ` · ${t("transfer.overdue")}` : "") },
    ],
  },
  messages: {
    title: "list.messages", path: () => "/v1/messages",
    filters: ["state", "compound_id", "broadcast_id", "template_key", "recipient_id"],
    columns: () => [
      { key: "created_at", label: "col.at", value: (m) => when(m.created_at) },
      { key: "phone", label: "col.phone" },
      { key: "template_key", label: "broadcast.template" },
      { key: "text", label: "col.text" },
      { key: "segments", label: "col.segments" },
      { key: "state", label: "col.state", value: (m) => t(`msg.${m.state}`) },
      { key: "gateway", label: "col.gateway" },
      { key: "error", label: "col.message" },
    ],
  },
};

function missedColumns(n) {
  return [
    { key: "box", label: "col.done", box: true, value: () => "" },
    { key: "name", label: "col.name", value: person, text: personText },
    { key: "place", label: "col.place", value: (r) => r.unit || n.place(r) },
    { key: "phone", label: "col.phone" },
    { key: "door", label: "col.door_to_door", value: (r) => (r.door_to_door ? "✓" : "") },
  ];
}

function paramsOf(spec, params, reveal) {
  const out = {};
  for (const name of spec.filters) {
    const values = params.getAll(name);
    if (values.length) out[name] = values.length > 1 ? values : values[0];
  }
  if (reveal) out.reveal = "true";
  return out;
}

// The first page of a list as listSection asks for it: a page can ask early, alongside its
// other reads, and hand the answer to listSection as `first` (null on failure: asked again).
export function listPage(kind, params, { limit = 100 } = {}) {
  const spec = LISTS[kind];
  return api.get(api.query(spec.path(params), { ...paramsOf(spec, params, false), limit })).catch(() => null);
}

// A list inside any page (the compound page's missed lists, a round's tasks): same columns,
// export and print as the full list page.
export async function listSection(target, kind, params, { limit = 100, title, first = null } = {}) {
  const spec = LISTS[kind];
  let reveal = false;
  let early = first;
  const body = h("div");
  const render = async () => {
    const path = api.query(spec.path(params), { ...paramsOf(spec, params, reveal), limit });
    const page = (early && (await early)) || (await api.get(path));
    early = null;
    const n = await namer(page.items);
    const cols = spec.columns(n);
    const rows = page.items;
    fill(body, 
      h("div", { class: "toolbar" },
        h("span", { dataset: { count: kind } }, t("list.shown", { n: rows.length, more: page.next_cursor ? "+" : "" })),
        link(`#/list/${kind}?${params.toString()}`, t("list.open_full")),
        h("button", { type: "button", class: "secondary", onclick: async () => {
          const every = await api.all(spec.path(params), paramsOf(spec, params, reveal));
          exportCsv(cols, every, kind);
        } }, t("export_csv")),
        spec.apiExport ? h("button", { type: "button", class: "secondary", onclick: () => api.download(spec.apiExport(params), `${kind}.xlsx`) }, t("export_xlsx")) : null,
        h("button", { type: "button", class: "secondary", "aria-pressed": String(reveal), onclick: async () => { reveal = !reveal; await render(); } }, t(reveal ? "mask" : "reveal")),
        printButton()),
      reveal ? h("p", { class: "muted" }, t("reveal.logged")) : null,
      tableOf(cols, rows, kind));
  };
  put(target, title ? h("h2", {}, title) : null, body);
  await render();
}

function tableOf(cols, rows, kind) {
  if (!rows.length) return h("p", { class: "muted", dataset: { list: kind } }, t("list.empty"));
  return h("table", { dataset: { list: kind } },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, t(c.label))))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", { class: c.box ? "box" : null }, c.value ? c.value(r) : r[c.key] ?? ""))))));
}

export default async function list(target, { args, params }) {
  const kind = args[0];
  const spec = LISTS[kind];
  if (!spec) { fill(target, h("h1", {}, t("not_found"))); return; }
  fill(target, h("h1", {}, t(spec.title)));
  await listSection(target, kind, params, { limit: 500 });
}
