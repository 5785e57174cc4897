// DOM helpers: elements built from text (never HTML strings), tables that export and print.
import { saveBlob } from "./api.js";
import { t, lang } from "./i18n.js";

// The town's time zone: every time on screen is shown there, whatever the browser's. It is
// the town office's clock (Settings.time_zone), read from GET /v1/auth/me at sign-in; until
// then (the sign-in form shows no time) UTC.
let townZone = "UTC";
export function setTownTimeZone(zone) {
  if (zone) townZone = zone;
}

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export const link = (href, text, attrs = {}) => h("a", { href, ...attrs }, text);

// A figure: a number that links to the list behind it (tests read data-figure).
export const figure = (name, value, href) => h("a", { href, dataset: { figure: name } }, String(value ?? 0));

export function when(value) {
  if (!value) return "";
  return new Intl.DateTimeFormat(lang(), {
    timeZone: townZone, dateStyle: "short", timeStyle: "short",
  }).format(new Date(value));
}

export function day(value) {
  if (!value) return "";
  return new Intl.DateTimeFormat(lang(), { timeZone: townZone, dateStyle: "medium" })
    .format(new Date(value));
}

// The UTC offset of the town at an instant, in minutes.
function offsetAt(instant) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: townZone, hourCycle: "h23", year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(instant).map((p) => [p.type, p.value]));
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return Math.round((wall - instant.getTime()) / 60000);
}

// The start of today in the town, as an instant with its offset (for "cases today").
export function startOfTownDay(now = new Date()) {
  const offset = offsetAt(now);
  const local = new Date(now.getTime() + offset * 60000);
  const midnight = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate());
  return new Date(midnight - offset * 60000).toISOString();
}

// A datetime-local input's value (town wall clock) as an instant with its offset.
export function fromTownInput(value) {
  const [date, time] = value.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const guess = new Date(Date.UTC(y, m - 1, d, hh, mm));
  return new Date(guess.getTime() - offsetAt(guess) * 60000).toISOString();
}

export function toTownInput(instant) {
  const shifted = new Date(instant.getTime() + offsetAt(instant) * 60000);
  return shifted.toISOString().slice(0, 16);
}

export function toast(message, kind = "") {
  const box = document.getElementById("toast");
  const item = h("div", { class: kind }, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

export function problemText(problem) {
  return problem && problem.message ? problem.message : String(problem);
}

// A table: columns are {key, label, num, value(row) -> text|Node, text(row) -> export text}.
export function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : "" }, t(c.label))))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", {
      class: [c.num ? "num" : "", c.box ? "box" : ""].join(" ").trim() || null,
      dataset: c.key ? { col: c.key } : undefined,
    }, c.value ? c.value(row) : row[c.key]))))));
}

function cellText(column, row) {
  if (column.text) return column.text(row);
  const value = column.value ? column.value(row) : row[column.key];
  return value instanceof Node ? value.textContent : value ?? "";
}

// CSV as Excel reads it (UTF-8 with BOM); formulas neutralised as the API's exports do.
export function toCsv(columns, rows) {
  const quote = (value) => {
    let text = String(value ?? "");
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [columns.map((c) => quote(t(c.label)))];
  for (const row of rows) lines.push(columns.map((c) => quote(cellText(c, row))));
  return "\ufeff" + lines.map((l) => l.join(",")).join("\r\n") + "\r\n";
}

export function exportCsv(columns, rows, name) {
  saveBlob(new Blob([toCsv(columns.filter((c) => !c.box), rows)], { type: "text/csv" }), `${name}.csv`);
}

// A list's toolbar: what the caller adds, then Export CSV and Print.
export function toolbar(columns, rows, name, ...extra) {
  return h("div", { class: "toolbar" }, ...extra,
    h("button", { type: "button", class: "secondary", onclick: () => exportCsv(columns, rows, name) }, t("export_csv")),
    printButton());
}

export function printButton() {
  return h("button", { type: "button", class: "secondary", onclick: () => window.print() }, t("print"));
}

export function field(label, control) {
  return h("label", {}, t(label), control);
}

export function select(name, options, value, attrs = {}) {
  return h("select", { name, ...attrs }, options.map(([v, text]) =>
    h("option", { value: v, selected: v === value ? true : null }, text)));
}

export function zoneClass(level) {
  return `zone-${level || "none"}`;
}

export function busy(button, work) {
  return async (...args) => {
    button.disabled = true;
    try { return await work(...args); } finally { button.disabled = false; }
  };
}

// replaceChildren/append that skip what a condition left out (null, undefined, false).
const present = (kids) => kids.flat().filter((k) => k !== null && k !== undefined && k !== false);
export const fill = (element, ...kids) => element.replaceChildren(...present(kids));
export const put = (element, ...kids) => element.append(...present(kids));
