// Logistics: stock balances per store and the donation register; distribution plans with their
// pick lists and undelivered households; help requests as a board by state with their
// service-time clocks. Every figure links to the list behind it.
import * as api from "../api.js";
import { t } from "../i18n.js";
import { exportCsv, figure, fill, h, link, printButton, table, toolbar, when } from "../ui.js";

const BOARD = ["open", "assigned", "in_progress", "done"];


// Stock on hand per store and item, and the donation register with the API's exports.
export default async function stock(target, { params }) {
  const holder = params.get("holder_id");
  const [balances, donations] = await Promise.all([
    api.get(api.query("/v1/stock/balances", { holder_id: holder })),
    api.get(api.query("/v1/donations", { holder_id: holder, limit: 200 })),
  ]);
  const storeHref = (r) => `#/stock?holder_id=${r.holder_id}`;
  const balanceCols = [
    { key: "holder", label: "col.store", value: (r) => link(storeHref(r), r.holder), text: (r) => r.holder },
    { key: "item", label: "col.item", value: (r) => link(`#/stock-card?holder_id=${r.holder_id}&item_id=${r.item_id}`, r.item, { dataset: { card: r.item_id } }), text: (r) => r.item },
    { key: "unit", label: "col.unit" },
    { key: "on_hand", label: "stock.on_hand", num: true },
    { key: "reserved", label: "stock.reserved", num: true },
    { key: "available", label: "stock.available", num: true },
  ];
  const donationCols = [
    { key: "received_at", label: "col.at", value: (r) => when(r.received_at) },
    { key: "holder", label: "col.store", value: (r) => link(storeHref(r), r.holder), text: (r) => r.holder },
    { key: "donor", label: "donation.donor" },
    { key: "donor_contact", label: "col.phone" },
    { key: "lines", label: "donation.lines", value: (r) => r.lines.map((l) => `${l.item} ${l.quantity} ${l.unit}`).join("; ") },
    { key: "note", label: "donation.note" },
  ];
  const exportOf = (format) => api.query("/v1/donations/export", { format, holder_id: holder });
  fill(target,
    h("h1", {}, t("nav.stock")),
    holder ? h("p", {}, link("#/stock", t("stock.every_store"))) : null,
    h("h2", {}, t("stock.balances")),
    toolbar(balanceCols, balances, "stock", h("span", { dataset: { count: "balances" } }, t("list.shown", { n: balances.length, more: "" }))),
    balances.length ? table(balanceCols, balances, { id: "balances" }) : h("p", { class: "muted", id: "balances" }, t("list.empty")),
    h("h2", {}, t("donation.register")),
    toolbar(donationCols, donations.items, "donations",
      h("span", { dataset: { count: "donations" } }, t("list.shown", { n: donations.items.length, more: donations.next_cursor ? "+" : "" })),
      h("button", { type: "button", class: "secondary", id: "donations-csv", onclick: () => api.download(exportOf("csv"), "donations.csv") }, t("donation.export_csv")),
      h("button", { type: "button", class: "secondary", id: "donations-xlsx", onclick: () => api.download(exportOf("xlsx"), "donations.xlsx") }, t("export_xlsx"))),
    donations.items.length ? table(donationCols, donations.items, { id: "donations" }) : h("p", { class: "muted", id: "donations" }, t("list.empty")));
}

// Quantities are decimal strings: a running balance adds them in thousandths, exactly.
const SCALE = 1000;
const units = (quantity) => Math.round(Number(quantity) * SCALE);
const amount = (thousandths) => String(thousandths / SCALE);

// The stock card of an item at a holder: every ledger line, oldest first, with the balance
// after each; the balance the API keeps (on hand, reserved, available) above it.
export async function stockCard(target, { params }) {
  const holder = params.get("holder_id");
  const item = params.get("item_id");
  const [balances, entries] = await Promise.all([
    api.get(api.query("/v1/stock/balances", { holder_id: holder, item_id: item })),
    api.all("/v1/stock/entries", { holder_id: holder, item_id: item }),
  ]);
  const balance = balances[0];
  let running = 0;
  const rows = entries.map((e) => { running += units(e.quantity); return { ...e, after: amount(running) }; });
  const cols = [
    { key: "at", label: "col.at", value: (e) => when(e.at) },
    { key: "kind", label: "col.kind", value: (e) => t(`entry.${e.kind}`) },
    { key: "quantity", label: "stock.quantity", num: true, value: (e) => amount(units(e.quantity)) },
    { key: "after", label: "stock.balance_after", num: true },
    { key: "reference", label: "stock.reference", value: (e) => e.reference_label || e.reason || "" },
    { key: "note", label: "donation.note" },
    { key: "recorded_by", label: "stock.recorded_by" },
  ];
  fill(target,
    h("h1", {}, t("stock.card"), " · ", balance ? `${balance.item} · ${balance.holder}` : ""),
    h("p", {}, link(`#/stock?holder_id=${holder}`, t("nav.stock"))),
    balance ? h("p", { id: "stock-balance" },
      t("stock.on_hand"), " ", h("strong", { dataset: { figure: "on_hand" } }, balance.on_hand), ` ${balance.unit} · `,
      t("stock.reserved"), " ", h("strong", { dataset: { figure: "reserved" } }, balance.reserved), " · ",
      t("stock.available"), " ", h("strong", { dataset: { figure: "available" } }, balance.available)) : null,
    toolbar(cols, rows, "stock-card", h("span", { dataset: { count: "entries" } }, t("list.shown", { n: rows.length, more: "" }))),
    rows.length ? table(cols, rows, { id: "stock-card" }) : h("p", { class: "muted", id: "stock-card" }, t("list.empty")));
}

// Distribution plans, newest first in the API's order, each linking to its page.
export async function plans(target) {
  const page = await api.get("/v1/distribution-plans?limit=200");
  const cols = [
    { key: "name", label: "col.name", value: (p) => link(`#/plan/${p.id}`, p.name), text: (p) => p.name },
    { key: "scope", label: "round.scope", value: (p) => t(`scope.${p.scope.kind}`) },
    { key: "households", label: "households", num: true, value: (p) => figure("plan_households", p.households, `#/plan/${p.id}`), text: (p) => p.households },
    { key: "status", label: "plan.status", value: (p) => t(`plan_status.${p.status}`) },
    { key: "created_at", label: "col.at", value: (p) => when(p.created_at) },
    { key: "created_by", label: "plan.created_by" },
  ];
  fill(target,
    h("h1", {}, t("nav.plans")),
    toolbar(cols, page.items, "plans"),
    page.items.length ? table(cols, page.items, { id: "plans" }) : h("p", { class: "muted", id: "plans" }, t("list.empty")));
}

// Fetch the printable pick list with the token and open it where the browser prints it.
async function openPrintable(path) {
  const response = await api.call("GET", path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  window.open(url, "_blank", "noopener");
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export async function plan(target, { args }) {
  const id = args[0];
  const [p, pending] = await Promise.all([
    api.get(`/v1/distribution-plans/${id}`),
    api.get(`/v1/distribution-plans/${id}/undelivered`),
  ]);
  const pick = (format) => `/v1/distribution-plans/${id}/pick-list?format=${format}`;
  const lineCols = [
    { key: "label", label: "col.item", value: (l) => l.label || l.item_id },
    { key: "per_household", label: "plan.per_household", num: true },
  ];
  const rows = pending.flatMap((b) => b.households.map((hh) => ({ ...hh, building_code: b.building_code })));
  const pendingCols = [
    { key: "box", label: "col.done", box: true, value: () => "" },
    { key: "building_code", label: "building" },
    { key: "unit_code", label: "col.unit_code" },
    { key: "room", label: "plan.room" },
    { key: "household", label: "plan.household", value: (r) => r.household_code || "" },
    { key: "door", label: "col.door_to_door", value: (r) => (r.door_delivery ? "✓" : "") },
  ];
  // A cancelled plan says so first: what it still lists is not to be delivered.
  const cancelled = p.status === "cancelled"
    ? h("p", { class: "panel", id: "plan-cancelled" }, h("strong", { class: "error" },
      t("plan.cancelled", { at: when(p.cancelled_at), by: p.cancelled_by, reason: p.cancel_reason })))
    : null;
  fill(target,
    h("h1", {}, p.name),
    cancelled,
    h("p", {}, t("plan.for_households", { n: p.households }), " · ", when(p.created_at)),
    h("div", { class: "toolbar" },
      h("span", {}, t("plan.pick_list")),
      h("button", { type: "button", class: "secondary", id: "pick-csv", onclick: () => api.download(pick("csv"), "pick-list.csv") }, "CSV"),
      h("button", { type: "button", class: "secondary", id: "pick-xlsx", onclick: () => api.download(pick("xlsx"), "pick-list.xlsx") }, ".xlsx"),
      h("button", { type: "button", class: "secondary", id: "pick-html", onclick: () => openPrintable(pick("html")) }, t("plan.printable"))),
    table(lineCols, p.lines, { id: "plan-lines" }),
    h("h2", {}, t(cancelled ? "plan.undelivered_cancelled" : "plan.undelivered"), " ", h("span", { dataset: { figure: "undelivered" } }, String(rows.length))),
    toolbar(pendingCols, rows, "undelivered"),
    rows.length ? table(pendingCols, rows, { id: "undelivered" }) : h("p", { class: "muted", id: "undelivered" }, t("plan.all_delivered")));
}

// The service-time clock: time left, or how late, from the API's seconds_left.
function clock(r) {
  if (["done", "closed", "cancelled"].includes(r.status)) return h("span", { class: "muted" }, when(r.due_at));
  const minutes = Math.round(Math.abs(r.seconds_left) / 60);
  const span = minutes >= 120 ? t("request.hours", { n: Math.round(minutes / 60) }) : t("request.minutes", { n: minutes });
  return h("span", { class: r.overdue ? "error clock" : "clock", title: when(r.due_at), dataset: { overdue: String(r.overdue) } },
    r.overdue ? t("request.late", { span }) : t("request.left", { span }));
}

// Help requests as a board by state; one read per column, each count a link to its list.
export async function requests(target, { params }) {
  const compound = params.get("compound_id");
  const columns = await Promise.all(BOARD.map((status) =>
    api.get(api.query("/v1/requests", { status, compound_id: compound, limit: 100 })).then((page) => ({ status, page }))));
  const listHref = (status) => `#/list/requests?status=${status}${compound ? `&compound_id=${compound}` : ""}`;
  const card = (r) => h("li", { class: `card priority-${r.priority}`, dataset: { request: r.id } },
    h("strong", {}, link(`#/request/${r.id}`, t(`request_kind.${r.kind}`))), " · ", t(`priority.${r.priority}`),
    h("div", {}, link(`#/resident/${r.resident_id}`, r.name ?? "•••"), " ", h("span", { class: "muted" }, r.address)),
    r.details ? h("div", { class: "muted" }, r.details) : null,
    h("div", {}, clock(r), r.team ? ` · ${r.team}` : ""));
  fill(target,
    h("h1", {}, t("nav.requests")),
    h("div", { class: "toolbar" },
      link(`#/list/requests?overdue=true${compound ? `&compound_id=${compound}` : ""}`, t("request.overdue_list")), printButton()),
    h("div", { class: "board", id: "request-board" }, columns.map(({ status, page }) =>
      h("section", { class: "column", dataset: { status } },
        h("h2", {}, t(`request_status.${status}`), " ",
          figure(`requests.${status}`, `${page.items.length}${page.next_cursor ? "+" : ""}`, listHref(status))),
        h("ul", {}, page.items.map(card))))));
}
