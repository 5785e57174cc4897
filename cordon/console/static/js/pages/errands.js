// Errands beyond the board: a request's page (assign with the service's volunteer suggestion,
// cancel with a reason, a medicine run's insurance card from hand to hand), recurring
// requests (list, create, stop) and the insurance cards that are out.
import * as api from "../api.js";
import { t } from "../i18n.js";
import { namer } from "../places.js";
import { busy, day, exportCsv, field, figure, fill, h, link, printButton, problemText, select, table, toast, toolbar, when } from "../ui.js";

const KINDS = ["medicine_run", "baby_supplies", "groceries", "medical_transport", "other"];
const REASONS = ["dialysis", "pregnancy", "emergency"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
// An insurance card's custody, in order: each step is the next one.
const CUSTODY = ["collected", "at_hospital", "returned"];
const FINISHED = ["done", "closed", "cancelled"];


const nextCustody = (card) => CUSTODY[card ? CUSTODY.indexOf(card.status) + 1 : 0];

function cardText(card) {
  if (!card) return "";
  return `${t(`card.${card.status}`)}${card.overdue ? ` · ${t("transfer.overdue")}` : ""}`;
}

// A card changes hands: the API says 409 naming where the card is when the step is wrong.
function custodyButton(request, onDone) {
  const next = nextCustody(request.card);
  if (request.kind !== "medicine_run" || !next || request.status === "cancelled") return null;
  const button = h("button", { type: "button", class: "secondary", dataset: { custody: next } }, t(`card.step.${next}`));
  button.addEventListener("click", busy(button, async () => {
    try {
      await api.post(`/v1/requests/${request.id}/card`, { status: next });
      toast(t("saved"));
      await onDone();
    } catch (problem) { toast(problemText(problem), "error"); }
  }));
  return button;
}

function assignForm(request, suggestions, reload) {
  const error = h("p", { class: "error", role: "alert" });
  const volunteer = select("volunteer_id", [
    ...suggestions.map((s) => [s.id, `${s.name} · ${t(`via.${s.assigned_via}`)} · ${t("request.open_errands", { n: s.open_errands })}`]),
    ["", t("request.team_instead")],
  ], suggestions[0]?.id || "", { id: "assign-volunteer" });
  const team = h("input", { name: "team", id: "assign-team", maxlength: 80 });
  return h("form", { id: "assign-form", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = volunteer.value ? { volunteer_id: volunteer.value } : { team: team.value.trim() };
    if (!volunteer.value && !body.team) { error.textContent = t("request.who_first"); return; }
    try {
      await api.post(`/v1/requests/${request.id}/assign`, body);
      toast(t("saved"));
      await reload();
    } catch (problem) { error.textContent = problemText(problem); }
  } },
  h("h2", {}, t(request.status === "open" ? "request.assign" : "request.reassign")),
  suggestions.length ? h("p", { class: "muted" }, t("request.suggested")) : h("p", { class: "muted", id: "no-suggestion" }, t("request.no_suggestion")),
  h("div", { class: "inline" }, field("request.volunteer", volunteer), field("request.team", team),
    h("button", { type: "submit" }, t("request.assign"))), error);
}

function cancelForm(request, reload) {
  const error = h("p", { class: "error", role: "alert" });
  const reason = h("input", { name: "reason", id: "cancel-reason", maxlength: 200 });
  return h("form", { id: "cancel-form", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!reason.value.trim()) { error.textContent = t("request.reason_first"); return; }
    try {
      await api.post(`/v1/requests/${request.id}/cancel`, { reason: reason.value.trim() });
      toast(t("saved"));
      await reload();
    } catch (problem) { error.textContent = problemText(problem); }
  } },
  h("h2", {}, t("request.cancel")),
  h("div", { class: "inline" }, field("col.reason", reason), h("button", { type: "submit", class: "danger" }, t("request.cancel"))), error);
}

// One request: what, for whom, its clock and state; assign, cancel, the card's custody.
export async function request(target, { args }) {
  const id = args[0];
  const reload = () => request(target, { args });
  const r = await api.get(`/v1/requests/${id}`);
  const open = !FINISHED.includes(r.status);
  const suggestions = open && ["open", "assigned"].includes(r.status)
    ? await api.get(`/v1/requests/${id}/suggestions`) : [];
  const facts = [
    ["col.kind", t(`request_kind.${r.kind}`) + (r.reason ? ` · ${t(`reason.${r.reason}`)}` : "")],
    ["col.priority", t(`priority.${r.priority}`)],
    ["col.status", h("span", { id: "request-status" }, t(`request_status.${r.status}`))],
    ["col.name", link(`#/resident/${r.resident_id}`, r.name ?? "•••")],
    ["col.place", r.address],
    ["col.due", h("span", { class: r.overdue ? "error" : null }, when(r.due_at), r.overdue ? ` · ${t("transfer.overdue")}` : "")],
    ["request.details", r.details],
    ["request.assignee", r.team || (r.assignee_id ? t("request.volunteer_assigned") : "")],
    r.hospital ? ["request.hospital", r.hospital] : null,
    r.card ? ["card.title", h("span", { id: "card-status" }, `${r.card.label} · ${cardText(r.card)}`)] : null,
    r.cancel_reason ? ["col.reason", h("span", { id: "cancel-reason-shown" }, r.cancel_reason)] : null,
  ].filter(Boolean);
  fill(target,
    h("h1", {}, t(`request_kind.${r.kind}`), " · ", r.name ?? "•••"),
    h("p", {}, link("#/requests", t("nav.requests"))),
    h("dl", { class: "facts", id: "request-facts" }, facts.flatMap(([label, value]) => [h("dt", {}, t(label)), h("dd", {}, value)])),
    h("div", { class: "toolbar" }, custodyButton(r, reload)),
    ["open", "assigned"].includes(r.status) ? assignForm(r, suggestions, reload) : null,
    open ? cancelForm(r, reload) : null);
}

function residentPicker() {
  const name = h("input", { name: "resident_name", id: "recurring-name", "aria-describedby": "recurring-hint" });
  const chosen = select("resident_id", [], "", { id: "recurring-resident", required: true });
  const find = h("button", { type: "button", class: "secondary", id: "recurring-find" }, t("search"));
  find.addEventListener("click", busy(find, async () => {
    const page = await api.get(api.query("/v1/residents", { name: name.value.trim(), limit: 50 }));
    const n = await namer(page.items);
    fill(chosen, ...page.items.map((p) => h("option", { value: p.id }, `${p.name} · ${n.place(p)}`)));
  }));
  return { element: h("div", { class: "inline" }, field("col.name", name), find, field("recurring.resident", chosen)), chosen };
}

function recurringForm(reload) {
  const error = h("p", { class: "error", role: "alert" });
  const person = residentPicker();
  const kind = select("kind", KINDS.map((k) => [k, t(`request_kind.${k}`)]), "medical_transport", { id: "recurring-kind" });
  const reason = select("reason", [["", "–"], ...REASONS.map((x) => [x, t(`reason.${x}`)])], "dialysis", { id: "recurring-reason" });
  const at = h("input", { type: "time", name: "at", value: "07:30", required: true, id: "recurring-at" });
  const startsOn = h("input", { type: "date", name: "starts_on", required: true, id: "recurring-starts", value: new Date().toISOString().slice(0, 10) });
  const endsOn = h("input", { type: "date", name: "ends_on", id: "recurring-ends" });
  const hospital = h("input", { name: "hospital", id: "recurring-hospital", maxlength: 120 });
  const details = h("input", { name: "details", id: "recurring-details", maxlength: 2000 });
  const days = h("fieldset", { id: "recurring-days" }, h("legend", {}, t("recurring.weekdays")),
    WEEKDAYS.map((d) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "weekday", value: d, checked: ["mon", "wed", "fri"].includes(d) }), t(`weekday.${d}`))));
  return h("form", { id: "recurring-form", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api.create("/v1/recurring-requests", {
        resident_id: person.chosen.value, kind: kind.value,
        reason: kind.value === "medical_transport" ? reason.value || null : null,
        weekdays: [...days.querySelectorAll("input:checked")].map((i) => i.value),
        at: at.value, starts_on: startsOn.value, ends_on: endsOn.value || null,
        hospital: hospital.value.trim() || null, details: details.value,
      });
      toast(t("saved"));
      await reload();
    } catch (problem) { error.textContent = problemText(problem); }
  } },
  h("h2", {}, t("recurring.new")),
  person.element,
  h("div", { class: "inline" }, field("col.kind", kind), field("recurring.reason", reason), field("recurring.at", at),
    field("recurring.starts_on", startsOn), field("recurring.ends_on", endsOn), field("request.hospital", hospital), field("request.details", details)),
  days, h("button", { type: "submit" }, t("recurring.create")), error);
}

// Recurring requests (a dialysis patient's trips): the list, a new one, and stop.
export async function recurring(target, { params }) {
  const reload = () => recurring(target, { params });
  const page = await api.get(api.query("/v1/recurring-requests", { resident_id: params.get("resident_id"), limit: 200 }));
  const stop = (r) => {
    if (r.status !== "active") return h("span", { class: "muted" }, t(`recurring.${r.status}`));
    const button = h("button", { type: "button", class: "secondary", dataset: { stop: r.id } }, t("recurring.stop"));
    button.addEventListener("click", busy(button, async () => {
      try { await api.post(`/v1/recurring-requests/${r.id}/stop`); toast(t("saved")); await reload(); }
      catch (problem) { toast(problemText(problem), "error"); }
    }));
    return button;
  };
  const cols = [
    { key: "resident", label: "col.name", value: (r) => link(`#/resident/${r.resident_id}`, t("recurring.resident_link")), text: (r) => r.resident_id },
    { key: "kind", label: "col.kind", value: (r) => t(`request_kind.${r.kind}`) + (r.reason ? ` · ${t(`reason.${r.reason}`)}` : "") },
    { key: "weekdays", label: "recurring.weekdays", value: (r) => r.weekdays.map((d) => t(`weekday.${d}`)).join(" ") },
    { key: "at_time", label: "recurring.at" },
    { key: "starts_on", label: "recurring.starts_on", value: (r) => day(`${r.starts_on}T12:00:00Z`) },
    { key: "ends_on", label: "recurring.ends_on", value: (r) => (r.ends_on ? day(`${r.ends_on}T12:00:00Z`) : "") },
    { key: "hospital", label: "request.hospital" },
    { key: "active", label: "col.status", value: stop, text: (r) => t(`recurring.${r.status}`) },
  ];
  fill(target,
    h("h1", {}, t("nav.recurring")),
    toolbar(cols, page.items, "recurring-requests", h("span", { dataset: { count: "recurring" } }, t("list.shown", { n: page.items.length, more: page.next_cursor ? "+" : "" }))),
    page.items.length ? table(cols, page.items, { id: "recurring" }) : h("p", { class: "muted", id: "recurring" }, t("list.empty")),
    recurringForm(reload));
}

// Medicine runs whose insurance card is out: where each card is, the overdue ones first.
export async function cards(target, { params }) {
  const reload = () => cards(target, { params });
  const overdueOnly = params.get("overdue") === "true";
  const [out, late] = await Promise.all([
    api.get(api.query("/v1/cards", { overdue: overdueOnly ? "true" : null, limit: 200 })),
    api.get("/v1/cards?overdue=true&limit=100"),
  ]);
  const cols = [
    { key: "label", label: "card.label", value: (r) => link(`#/request/${r.id}`, r.card.label), text: (r) => r.card.label },
    { key: "name", label: "col.name", value: (r) => link(`#/resident/${r.resident_id}`, r.name ?? "•••"), text: (r) => r.name ?? "" },
    { key: "place", label: "col.place", value: (r) => r.address },
    { key: "hospital", label: "request.hospital" },
    { key: "custody", label: "card.title", value: (r) => h("span", { class: r.card.overdue ? "error" : null, dataset: { card: r.card.status } }, cardText(r.card)), text: (r) => cardText(r.card) },
    { key: "collected_at", label: "card.collected_at", value: (r) => when(r.card.collected_at) },
    { key: "due", label: "card.due", value: (r) => when(r.card.due_at) },
    { key: "step", label: "card.next", value: (r) => custodyButton(r, reload), text: () => "" },
  ];
  const rows = [...out.items].sort((a, b) => Number(b.card.overdue) - Number(a.card.overdue));
  fill(target,
    h("h1", {}, t("nav.cards")),
    h("p", {}, t("card.out"), " ", figure("cards.out", `${out.items.length}${out.next_cursor ? "+" : ""}`, "#/cards"), " · ",
      t("card.overdue"), " ", h("span", { class: late.items.length ? "error" : null }, figure("cards.overdue", `${late.items.length}${late.next_cursor ? "+" : ""}`, "#/cards?overdue=true"))),
    toolbar(cols, rows, "insurance-cards"),
    rows.length ? table(cols, rows, { id: "cards" }) : h("p", { class: "muted", id: "cards" }, t("list.empty")));
}

