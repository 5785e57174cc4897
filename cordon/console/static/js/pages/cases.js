// Cases with their contacts, and the transfer queue (pending → scheduled → transferred).
import * as api from "../api.js";
import { t } from "../i18n.js";
import { field, fill, fromTownInput, h, link, problemText, put, select, table, toTownInput, toast, when } from "../ui.js";
import { listSection } from "./lists.js";

async function contacts(target, caseId) {
  let reveal = false;
  const box = h("div", { id: "contacts" });
  const render = async () => {
    const suffix = reveal ? "?reveal=true" : "";
    const [c, people] = await Promise.all([api.get(`/v1/cases/${caseId}${suffix}`), api.get(`/v1/cases/${caseId}/contacts${suffix}`)]);
    fill(box, 
      h("h2", {}, t("cases.contacts_of", { name: c.name ?? "•••" })),
      h("div", { class: "toolbar" }, h("button", { type: "button", "aria-pressed": String(reveal), onclick: async () => { reveal = !reveal; await render(); } }, t(reveal ? "mask" : "reveal")),
        reveal ? h("span", { class: "muted" }, t("reveal.logged")) : null),
      table([
        { key: "name", label: "col.name", value: (p) => (p.resident_id ? link(`#/resident/${p.resident_id}`, p.name ?? "•••") : p.name) },
        { key: "kind", label: "col.kind", value: (p) => t(`contact.${p.kind}`) },
        { key: "phone", label: "col.phone" },
        { key: "quarantine_until", label: "cases.quarantine_until" },
        { key: "source", label: "col.source" },
      ], people));
  };
  put(target, box);
  await render();
}

export default async function cases(target, { params }) {
  fill(target, h("h1", {}, t("nav.cases")));
  if (params.get("case")) await contacts(target, params.get("case"));
  await listSection(target, "cases", params, { limit: 100, title: t("list.cases") });
}

function mover(c, reload) {
  const destination = h("input", { name: "destination", placeholder: t("transfer.destination"), "aria-label": t("transfer.destination") });
  const at = h("input", { type: "datetime-local", name: "scheduled_for", value: toTownInput(new Date()), "aria-label": t("transfer.scheduled_for") });
  const move = (status) => async () => {
    const body = { status };
    if (status === "scheduled") Object.assign(body, { destination: destination.value, scheduled_for: fromTownInput(at.value) });
    try { await api.create(`/v1/cases/${c.id}/transfer`, body); toast(t("saved")); await reload(); }
    catch (problem) { toast(problemText(problem), "error"); }
  };
  if (c.transfer.status === "pending") {
    return h("span", {}, destination, " ", at, " ", h("button", { type: "button", onclick: move("scheduled") }, t("transfer.schedule")));
  }
  if (c.transfer.status === "scheduled") {
    return h("span", {}, `${c.transfer.destination} · ${when(c.transfer.scheduled_for)} `,
      h("button", { type: "button", onclick: move("transferred") }, t("transfer.done")));
  }
  return when(c.transfer.transferred_at);
}

export async function transfers(target, { params }) {
  const status = params.get("status") || "";
  const filter = select("status", [["", t("any")], ...["pending", "scheduled", "transferred"].map((s) => [s, t(`transfer.${s}`)])], status, { "aria-label": t("col.status") });
  filter.addEventListener("change", () => { location.hash = `#/transfers?status=${filter.value}`; });
  const reload = () => transfers(target, { params });
  const page = await api.get(api.query("/v1/transfers", { status, overdue: params.get("overdue"), compound_id: params.get("compound_id"), limit: 200 }));
  fill(target, 
    h("h1", {}, t("nav.transfers")),
    h("div", { class: "toolbar" }, field("col.status", filter), link(`#/list/transfers?${params}`, t("list.open_full"))),
    table([
      { key: "name", label: "col.name", value: (c) => link(`#/cases?case=${c.id}`, c.name ?? "•••") },
      { key: "confirmed_at", label: "col.confirmed_at", value: (c) => when(c.confirmed_at) },
      { key: "due", label: "col.due", value: (c) => h("span", { class: c.transfer.overdue ? "error" : "" }, when(c.transfer.due_at), c.transfer.overdue ? ` · ${t("transfer.overdue")}` : "") },
      { key: "status", label: "col.transfer", value: (c) => t(`transfer.${c.transfer.status}`) },
      { key: "move", label: "col.decision", value: (c) => mover(c, reload) },
    ], page.items, { id: "transfer-queue" }));
}
