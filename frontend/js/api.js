// The one way the UI talks to the server: JSON over /api/v1, with the CSRF token on mutations.

export class ApiError extends Error {
  /** An answer that was not 2xx; `message` is the server's own text. */
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details ?? {};
  }

  /** `{field: message}` from `details.fields`: a 422, or a 403 or 409 that names a field. */
  get fieldErrors() {
    const out = {};
    for (const item of this.details.fields ?? []) {
      const name = String(item.field ?? '').split('.').pop();
      out[name] = out[name] ? `${out[name]}; ${item.message}` : item.message;
    }
    return out;
  }
}

const BASE = '/api/v1';
let csrfToken = null;
const unauthorizedHandlers = new Set();

export function setCsrfToken(token) {
  csrfToken = token ?? null;
}

/** Called with the error whenever the server says the session is gone (401). */
export function onUnauthorized(handler) {
  unauthorizedHandlers.add(handler);
}

export async function request(method, path, body, { quiet401 = false } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (error) {
    throw new ApiError(0, 'network', `cannot reach the server (${error.message})`);
  }
  const text = response.status === 204 ? '' : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = data && data.error;
    const problem = new ApiError(
      response.status,
      err?.code ?? `http_${response.status}`,
      err?.message ?? (text.trim() || `${response.status} ${response.statusText}`),
      err?.details,
    );
    if (response.status === 401 && !quiet401) unauthorizedHandlers.forEach((fn) => fn(problem));
    throw problem;
  }
  return data;
}

export const get = (path, options) => request('GET', path, undefined, options);
export const post = (path, body, options) => request('POST', path, body, options);
export const del = (path, options) => request('DELETE', path, undefined, options);

const FINISHED = new Set(['succeeded', 'failed']);

/** Wait until an operation has finished; resolves with the final Operation. */
export async function waitForOperation(operation, { interval = 250, timeout = 15 * 60_000 } = {}) {
  let current = operation;
  const deadline = Date.now() + timeout;
  while (!FINISHED.has(current.status)) {
    if (Date.now() > deadline) throw new ApiError(0, 'timeout', `operation ${current.id} is still ${current.status}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
    current = await get(`/operations/${encodeURIComponent(current.id)}`);
  }
  return current;
}

export const qs = (params) => {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
};
