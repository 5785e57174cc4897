// Notify: broadcasts with a preview (recipients, texts, segments) before sending, approval of
// a town-wide one by a second operator; messages by state and the audit list (masked).
import * as api from "../api.js";
import { t } from "../i18n.js";
import { compoundsInScope } from "../places.js";
import { busy, exportCsv, field, figure, fill, fromTownInput, h, link, printButton, problemText, put, select, table, toTownInput, toast, when } from "../ui.js";
import { scopePicker } from "../scope.js";
import { listSection } from "./lists.js";

const STATES = ["queued", "sending", "sent", "delivered", "failed", "expired", "cancelled", "deferred", "unknown"];

function progress(b) {
  return h("span", {}, Object.entries(b.progress.states).map(([state, n], i) =>
    h("span", {}, i ? " · " : "", t(`msg.${state}`), " ", figure(`broadcast.${state}`, n, `#/list/messages?broadcast_id=${b.id}&state=${state}`))));
}

// What a broadcast's scope may be (services/notify/broadcasts/schemas.py, less a list of
// residents); a zone level or a tag across the town or within ticked compounds.
const SCOPES = ["town", "compounds", "buildings", "units", "zone_level", "tag"];

async function composer(town, reload) {
  const templates = api.get(`/v1/templates?town_id=${town}`);
  const status = h("div", { id: "preview", "aria-live": "polite" });
  const key = h("select", { name: "template_key", id: "broadcast-template" });
  const variables = h("div", { class: "variables" });
  // A change of scope makes the last preview stale: it goes, to be asked again.
  const scope = await scopePicker({ kinds: SCOPES, initial: "town", narrowed: ["zone_level", "tag"], onChange: () => fill(status) });
  const priority = select("priority", ["bulk", "normal", "high", "urgent"].map((p) => [p, t(`msgpri.${p}`)]), "normal");
  const until = h("input", { type: "datetime-local", name: "valid_until", value: toTownInput(new Date(Date.now() + 6 * 3600 * 1000)) });
  let known = [];
  const drawVariables = () => {
    const chosen = known.find((x) => x.key === key.value);
    // A datetime variable is typed on the town's wall clock and sent with its offset.
    fill(variables, ...Object.entries(chosen ? chosen.variables : {}).map(([name, type]) =>
      h("label", {}, name, h("input", {
        name: `var.${name}`, dataset: { variable: name, type },
        type: type === "datetime" ? "datetime-local" : "text",
        value: type === "datetime" ? toTownInput(new Date()) : null,
      }))));
  };
  templates.then((list) => {
    known = list;
    fill(key, ...list.map((x) => h("option", { value: x.key }, `${x.key} — ${x.description}`)));
    drawVariables();
  });
  key.addEventListener("change", drawVariables);
  const body = () => ({
    town_id: town,
    scope: scope.value(),
    template_key: key.value,
    variables: Object.fromEntries([...variables.querySelectorAll("input")].map((i) =>
      [i.dataset.variable, i.dataset.type === "datetime" && i.value ? fromTownInput(i.value) : i.value])),
    priority: priority.value,
    valid_until: fromTownInput(until.value),
  });
  const preview = h("button", { type: "button", class: "secondary", id: "broadcast-preview" }, t("broadcast.preview"));
  preview.addEventListener("click", busy(preview, async () => {
    try {
      const p = await api.post("/v1/broadcasts/preview", body());
      fill(status,
        h("p", {}, t("broadcast.recipients"), " ", h("strong", { dataset: { figure: "preview.recipients" } }, String(p.recipients)),
          " (", Object.entries(p.by_language).map(([locale, n]) => `${locale} ${n}`).join(", "), ") · ",
          t("col.segments"), " ", h("strong", { dataset: { figure: "preview.segments" } }, String(p.segments))),
        p.skipped_no_phone || p.skipped_opted_out
          ? h("p", { class: "muted" }, t("broadcast.skipped", { phone: p.skipped_no_phone, opted: p.skipped_opted_out })) : null,
        p.needs_approval ? h("p", { class: "error" }, t("broadcast.needs_approval")) : null,
        table([
          { key: "locale", label: "col.language" },
          { key: "text", label: "col.text" },
          { key: "encoding", label: "col.encoding" },
          { key: "segments", label: "col.segments", num: true },
        ], p.texts, { id: "preview-texts" }));
    } catch (problem) { fill(status, h("p", { class: "error" }, problemText(problem))); }
  }));
  const form = h("form", {
    id: "broadcast-form",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const made = await api.create("/v1/broadcasts", body());
        toast(t(made.status === "awaiting_approval" ? "broadcast.awaiting" : "broadcast.sent"));
        await reload();
      } catch (problem) { fill(status, h("p", { class: "error" }, problemText(problem))); }
    },
  },
  h("h2", {}, t("broadcast.new")),
  scope.element,
  h("div", { class: "toolbar" }, field("broadcast.template", key), field("broadcast.priority", priority), field("broadcast.valid_until", until)),
  variables,
  h("div", { class: "toolbar" }, preview, h("button", { type: "submit" }, t("broadcast.send"))),
  status);
  return form;
}

export default async function broadcasts(target, { me }) {
  const reload = () => broadcasts(target, { me });
  const [page, compounds] = await Promise.all([api.get("/v1/broadcasts?limit=100"), compoundsInScope()]);
  const town = me.scope.towns[0] || compounds[0]?.town_id;
  const approve = (b) => {
    if (b.status !== "awaiting_approval") return b.approved_by ? `${b.approved_by} · ${when(b.approved_at)}` : "";
    if (b.created_by === me.username) return h("span", { class: "muted" }, t("broadcast.second_operator"));
    const button = h("button", { type: "button", dataset: { approve: b.id } }, t("approve"));
    button.addEventListener("click", busy(button, async () => {
      try { await api.post(`/v1/broadcasts/${b.id}/approve`); toast(t("saved")); await reload(); }
      catch (problem) { toast(problemText(problem), "error"); }
    }));
    return button;
  };
  const cols = [
    { key: "send_at", label: "col.at", value: (b) => when(b.send_at) },
    { key: "template_key", label: "broadcast.template" },
    { key: "scope", label: "round.scope", value: (b) => t(`scope.${b.scope.kind}`) },
    { key: "status", label: "col.status", value: (b) => t(`broadcast_status.${b.status}`) },
    { key: "recipients", label: "broadcast.recipients", num: true, value: (b) => figure("broadcast.recipients", b.progress.recipients, `#/list/messages?broadcast_id=${b.id}`), text: (b) => b.progress.recipients },
    { key: "progress", label: "broadcast.progress", value: progress, text: (b) => JSON.stringify(b.progress.states) },
    { key: "created_by", label: "plan.created_by" },
    { key: "approval", label: "broadcast.approval", value: approve, text: (b) => b.approved_by || "" },
  ];
  fill(target,
    h("h1", {}, t("nav.broadcasts")),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", onclick: () => exportCsv(cols, page.items, "broadcasts") }, t("export_csv")), printButton()),
    page.items.length ? table(cols, page.items, { id: "broadcasts" }) : h("p", { class: "muted", id: "broadcasts" }, t("list.empty")));
  if (town) put(target, await composer(town, reload));
}

// Messages by state (each a link to its list), then the audit list, masked until revealed.
export async function messages(target, { params }) {
  const pages = await Promise.all(STATES.map((state) =>
    api.get(`/v1/messages?state=${state}&limit=100`).then((p) => [state, `${p.items.length}${p.next_cursor ? "+" : ""}`])));
  const state = params.get("state") || "";
  const filter = select("state", [["", t("any")], ...STATES.map((s) => [s, t(`msg.${s}`)])], state, { "aria-label": t("col.state") });
  filter.addEventListener("change", () => { location.hash = `#/messages?state=${filter.value}`; });
  fill(target,
    h("h1", {}, t("nav.messages")),
    h("p", { id: "message-states" }, pages.map(([s, n], i) =>
      h("span", {}, i ? " · " : "", t(`msg.${s}`), " ", figure(`messages.${s}`, n, `#/list/messages?state=${s}`)))),
    h("div", { class: "toolbar" }, field("col.state", filter), link("#/broadcasts", t("nav.broadcasts"))));
  await listSection(target, "messages", params, { limit: 100, title: t("list.messages") });
}
