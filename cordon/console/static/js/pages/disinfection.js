// Disinfection: the schedules in scope, today's tasks (the town's day) to mark done, and the
// missed ones by building. A compound filter narrows all three.
import * as api from "../api.js";
import { t } from "../i18n.js";
import { compoundsInScope, namer } from "../places.js";
import { busy, exportCsv, field, fill, h, printButton, problemText, select, startOfTownDay, table, toast, toolbar, when } from "../ui.js";

const DAY_MS = 24 * 3600 * 1000;
// The lists behind these figures are right below them.
const figure = (name, value) => h("strong", { dataset: { figure: name } }, String(value ?? 0));


const listed = (columns, rows, id) => (rows.length ? table(columns, rows, { id }) : h("p", { class: "muted", id }, t("list.empty")));

function doneButton(task, reload) {
  if (task.status === "done") return h("span", { class: "muted" }, `${t("disinfection.done_by", { who: task.done_by || "" })} ${when(task.done_at)}`);
  const button = h("button", { type: "button", class: task.status === "missed" ? "secondary" : null, dataset: { complete: task.id } },
    t(task.status === "missed" ? "disinfection.done_late" : "disinfection.done"));
  button.addEventListener("click", busy(button, async () => {
    try { await api.post(`/v1/disinfection-tasks/${task.id}/complete`, {}); toast(t("saved")); await reload(); }
    catch (problem) { toast(problemText(problem), "error"); }
  }));
  return button;
}

export default async function disinfection(target, { params }) {
  const reload = () => disinfection(target, { params });
  const compound = params.get("compound_id") || null;
  const since = new Date(startOfTownDay()).getTime();
  const until = since + DAY_MS;
  const [compounds, schedules, tasks, missed] = await Promise.all([
    compoundsInScope(),
    api.all("/v1/disinfection-schedules", { compound_id: compound, active: "true" }, { max: 2000 }),
    api.all("/v1/disinfection-tasks", { compound_id: compound }, { max: 20000 }),
    api.get(api.query("/v1/disinfection-tasks/missed", { compound_id: compound })),
  ]);
  // Today's tasks: those whose slot falls in the town's day (the API lists every day's).
  const slot = (x) => new Date(x.slot_at).getTime();
  const today = tasks.filter((x) => slot(x) >= since && slot(x) < until).sort((a, b) => slot(a) - slot(b));
  const n = await namer([...schedules, ...today]);
  const where = (x) => [n.place(x), x.label].filter(Boolean).join(" · ");
  const scheduleCols = [
    { key: "target", label: "disinfection.target", value: (s) => t(`target.${s.target}`) },
    { key: "where", label: "col.place", value: where },
    { key: "per_day", label: "disinfection.per_day", num: true },
    { key: "reason", label: "col.reason", value: (s) => t(`disinfection.reason.${s.reason}`) + (s.zone_level ? ` · ${t(`zone.${s.zone_level}`)}` : "") },
    { key: "team", label: "request.team" },
    { key: "until", label: "disinfection.until", value: (s) => when(s.until) },
  ];
  const taskCols = [
    { key: "slot_at", label: "disinfection.slot", value: (x) => when(x.slot_at) },
    { key: "target", label: "disinfection.target", value: (x) => t(`target.${x.target}`) },
    { key: "where", label: "col.place", value: where },
    { key: "status", label: "col.status", value: (x) => h("span", { class: x.status === "missed" ? "error" : null, dataset: { task: x.status } }, t(`task_status.${x.status}`)) },
    { key: "done", label: "col.done", value: (x) => doneButton(x, reload), text: (x) => (x.done_at ? when(x.done_at) : "") },
  ];
  const missedRows = missed.flatMap((g) => g.tasks);
  const nm = await namer(missedRows);
  const missedCols = [
    { key: "slot_at", label: "disinfection.slot", value: (x) => when(x.slot_at) },
    { key: "target", label: "disinfection.target", value: (x) => t(`target.${x.target}`) },
    { key: "where", label: "col.place", value: (x) => [nm.place(x), x.label].filter(Boolean).join(" · ") },
    { key: "done", label: "col.done", value: (x) => doneButton(x, reload), text: (x) => (x.done_at ? when(x.done_at) : "") },
  ];
  const pending = today.filter((x) => x.status === "pending").length;
  const missedCount = missed.reduce((sum, g) => sum + g.missed, 0);
  const filter = select("compound_id", [["", t("any")], ...compounds.map((c) => [c.id, `${c.code} ${c.name}`])], compound || "", { id: "disinfection-compound" });
  filter.addEventListener("change", () => { location.hash = `#/disinfection${filter.value ? `?compound_id=${filter.value}` : ""}`; });
  fill(target,
    h("h1", {}, t("nav.disinfection")),
    h("div", { class: "toolbar" }, field("compound", filter)),
    h("p", {}, t("disinfection.today_pending"), " ", figure("disinfection.pending", pending), " · ",
      t("disinfection.missed"), " ", h("span", { class: missedCount ? "error" : null }, figure("disinfection.missed", missedCount))),
    h("h2", { id: "today" }, t("disinfection.today")),
    toolbar(taskCols, today, "disinfection-today"),
    listed(taskCols, today, "disinfection-today"),
    h("h2", { id: "missed" }, t("disinfection.missed")),
    toolbar(missedCols, missedRows, "disinfection-missed"),
    listed(missedCols, missedRows, "disinfection-missed"),
    h("h2", {}, t("disinfection.schedules")),
    toolbar(scheduleCols, schedules, "disinfection-schedules"),
    listed(scheduleCols, schedules, "disinfection-schedules"));
}
