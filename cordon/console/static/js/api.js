// The console's only way to the data: the public /v1 API with the signed-in user's token.
// An expired access token is refreshed (refresh tokens rotate) and the call retried; when
// the session is gone the app asks for the password again in a dialog, so a form on the
// page is kept, and the call is retried after.
const KEY = "cordon.session";
let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
let reauthenticate = null; // set by the app: resolves once the user signed in again
let refreshing = null;

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export const signedIn = () => session !== null;
export const onSessionLost = (handler) => { reauthenticate = handler; };

function keep(token) {
  session = { access: token.access_token, refresh: token.refresh_token };
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

function forget() {
  session = null;
  sessionStorage.removeItem(KEY);
}

async function problemOf(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return new Problem(response.status, body);
}

export async function signIn(username, password) {
  const response = await fetch("/v1/auth/token", {
    method: "POST",
    body: new URLSearchParams({ username, password }),
  });
  if (!response.ok) throw await problemOf(response);
  keep(await response.json());
}

export async function signOut() {
  const current = session;
  forget();
  if (current) {
    await fetch("/v1/auth/sign-out", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh }),
    }).catch(() => null);
  }
}

async function refresh() {
  // One refresh at a time: a rotated refresh token is spent once.
  refreshing ??= (async () => {
    if (!session) return false;
    const response = await fetch("/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    });
    if (!response.ok) { forget(); return false; }
    keep(await response.json());
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

async function authorised(send) {
  let response = await send(session ? session.access : "");
  // A service catching up (a projection behind, a replica restarting) says when to come
  // back: wait that long, a few times, with the same request (and Idempotency-Key).
  for (let tries = 0; response.status === 503 && tries < 3; tries += 1) {
    const after = Number(response.headers.get("Retry-After"));
    if (!(after > 0 && after <= 15)) break;
    await pause(after);
    response = await send(session ? session.access : "");
  }
  if (response.status !== 401) return response;
  if (!(await refresh())) {
    if (!reauthenticate) return response;
    await reauthenticate();
  }
  return send(session.access);
}

export async function call(method, path, { json, form, headers = {}, raw = false } = {}) {
  const response = await authorised((token) => fetch(path, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(json !== undefined ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    body: json !== undefined ? JSON.stringify(json) : form,
  }));
  if (!response.ok) throw await problemOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, json, headers) => call("POST", path, { json, headers });
export const patch = (path, json) => call("PATCH", path, { json });

export function query(path, params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, one);
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

// Every page of a cursor-paginated list (exports, prints).
export async function all(path, params = {}, { max = 100000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(query(path, { ...params, limit: 500, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

export const idempotencyKey = () => crypto.randomUUID ? crypto.randomUUID()
  : `${Date.now()}-${Math.random().toString(16).slice(2)}`;

// A create with its Idempotency-Key, kept across the retry after a refresh.
export const create = (path, json) => post(path, json, { "Idempotency-Key": idempotencyKey() });

// A file upload with progress (fetch cannot report upload progress; XMLHttpRequest can).
export function upload(path, file, onProgress) {
  const key = idempotencyKey();
  const send = (token) => new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    if (token) request.setRequestHeader("Authorization", `Bearer ${token}`);
    request.setRequestHeader("Idempotency-Key", key);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = null; }
      resolve({ status: request.status, ok: request.status < 300, body });
    };
    request.onerror = () => reject(new Problem(0, { detail: "network error" }));
    const form = new FormData();
    form.append("file", file, file.name);
    request.send(form);
  });
  return (async () => {
    let answer = await send(session ? session.access : "");
    if (answer.status === 401) {
      if (!(await refresh()) && reauthenticate) await reauthenticate();
      answer = await send(session.access);
    }
    if (!answer.ok) throw new Problem(answer.status, answer.body);
    return answer.body;
  })();
}

// Download what the API answers (templates, exports) under the signed-in token.
export async function download(path, filename) {
  const response = await call("GET", path, { raw: true });
  saveBlob(await response.blob(), filename);
}

export function saveBlob(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}
