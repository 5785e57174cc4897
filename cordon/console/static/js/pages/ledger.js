// The base-ledger import: template, file (CSV in UTF-8 or GBK, or .xlsx), progress, and the
// per-row errors as a table to fix and retry. All or nothing: the API writes nothing until
// the whole file passes.
import * as api from "../api.js";
import { t } from "../i18n.js";
import { exportCsv, fill, h, printButton, problemText, table, when } from "../ui.js";

const ERROR_COLUMNS = [
  { key: "row", label: "col.row", num: true },
  { key: "column", label: "col.column" },
  { key: "message", label: "col.message" },
];

export default async function ledger(target) {
  const file = h("input", { type: "file", name: "file", id: "ledger-file", accept: ".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": t("import.progress") });
  const status = h("p", { id: "import-status", role: "status" });
  const errors = h("div", { id: "import-errors" });
  const submit = h("button", { type: "submit" }, t("import.send"));
  const history = h("div");

  const showHistory = async () => {
    const past = await api.get("/v1/imports");
    fill(history, h("h2", {}, t("import.history")), table([
      { key: "created_at", label: "col.at", value: (r) => when(r.created_at) },
      { key: "filename", label: "col.file" },
      { key: "status", label: "col.status" },
      { key: "rows", label: "col.rows", num: true },
      { key: "inserted", label: "import.inserted", num: true },
      { key: "updated", label: "import.updated", num: true },
    ], past.slice(0, 20)));
  };

  const send = async (event) => {
    event.preventDefault();
    if (!file.files.length) { status.textContent = t("import.choose"); return; }
    submit.disabled = true;
    fill(errors);
    progress.hidden = false;
    progress.value = 0;
    status.className = "";
    status.textContent = t("import.sending");
    try {
      const report = await api.upload("/v1/imports/residents", file.files[0], (share) => {
        progress.value = share;
        if (share >= 1) status.textContent = t("import.checking");
      });
      status.className = "ok";
      status.textContent = t(report.status === "duplicate" ? "import.duplicate" : "import.applied", report);
      await showHistory();
    } catch (problem) {
      status.className = "error";
      status.textContent = problemText(problem);
      const rows = problem.body?.errors || [];
      if (rows.length) {
        fill(errors, 
          h("div", { class: "toolbar" }, h("span", {}, t("import.fix_and_retry")),
            h("button", { type: "button", class: "secondary", onclick: () => exportCsv(ERROR_COLUMNS, rows, "ledger-errors") }, t("export_csv")),
            printButton()),
          table(ERROR_COLUMNS, rows, { id: "row-errors" }));
      }
    } finally {
      submit.disabled = false;
      progress.hidden = true;
    }
  };

  fill(target, 
    h("h1", {}, t("nav.import")),
    h("p", {}, t("import.intro")),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", onclick: () => api.download("/v1/imports/template.csv", "ledger-template.csv") }, t("import.template_csv")),
      h("button", { type: "button", class: "secondary", onclick: () => api.download("/v1/imports/template.xlsx", "ledger-template.xlsx") }, t("import.template_xlsx"))),
    h("form", { class: "inline", id: "import-form", onsubmit: send },
      h("label", {}, t("import.file"), file), submit, progress),
    status, errors, history);
  await showHistory().catch((problem) => fill(history, h("p", { class: "error" }, problemText(problem))));
}
