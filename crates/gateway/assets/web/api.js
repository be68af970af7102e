// The JSON API as the pages use it: the session in sessionStorage, bearer tokens,
// problem documents turned into readable errors, and small DOM helpers.

const SESSION_KEY = 'eventshop.session';

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

function saveSession(value) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
}

export function logOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** An answer that was not 2xx, with the problem document's words. */
export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem && problem.errors) || [];
    const detail = (problem && (problem.detail || problem.error_description || problem.title)) || `HTTP ${status}`;
    super(fields.length ? `${detail}: ${fields.map((e) => `${e.field} ${e.message}`).join('; ')}` : detail);
    this.status = status;
    this.problem = problem;
  }
}

async function parse(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}

async function refresh() {
  const current = session();
  if (!current || !current.refresh_token) return false;
  const response = await fetch('/oauth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: current.refresh_token }),
  });
  if (!response.ok) return false;
  const tokens = await response.json();
  saveSession({ ...current, access_token: tokens.access_token, refresh_token: tokens.refresh_token });
  return true;
}

export function authHeaders() {
  const current = session();
  return current && current.access_token ? { Authorization: `Bearer ${current.access_token}` } : {};
}

/** Sends a request; answers `{status, data, headers}` or throws an ApiError. */
export async function request(method, path, body, retried = false) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && !retried && (await refresh())) return request(method, path, body, true);
  const data = await parse(response);
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, headers: response.headers };
}

export async function api(method, path, body) {
  return (await request(method, path, body)).data;
}

/** Logs in with the password grant and remembers who it is. */
export async function logIn(email, password) {
  const response = await fetch('/oauth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'password', username: email, password }),
  });
  const data = await parse(response);
  if (!response.ok) throw new ApiError(response.status, data);
  saveSession({ access_token: data.access_token, refresh_token: data.refresh_token });
  const me = await api('GET', '/api/users/me');
  saveSession({ ...session(), user: { id: me.id, email: me.email, name: me.name, role: me.role } });
  return me;
}

export function money(value) {
  if (!value) return '';
  return new Intl.NumberFormat('en-IE', { style: 'currency', currency: value.currency }).format(value.amount / 100);
}

export function when(text) {
  return text ? new Date(text).toLocaleString() : '';
}

/** Builds an element: `el('a', {href: '#/'}, 'Home')`. Text is never parsed as HTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A labelled input: `<label>Name <input …></label>`. */
export function field(label, attributes) {
  return el('label', {}, el('span', {}, label), el('input', attributes));
}

/** Says something to screen readers and shows it in the page's status line. */
export function announce(message, kind = 'info') {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = message;
  if (message) region.dataset.kind = kind;
  else delete region.dataset.kind;
}

/** Runs a form's action, showing its error next to it. */
export function guarded(action) {
  return async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    try {
      await action(new FormData(form), form);
    } catch (error) {
      announce(error.message, 'error');
    } finally {
      if (button) button.disabled = false;
    }
  };
}

/**
 * Follows a `text/event-stream` with the bearer token (EventSource cannot send headers):
 * calls `onEvent(name, data)` per event; resolves when the server closes the stream. An
 * expired token is refreshed once, as `request` does.
 */
export async function followStream(path, onEvent, signal, retried = false) {
  const response = await fetch(path, { headers: { Accept: 'text/event-stream', ...authHeaders() }, signal });
  if (response.status === 401 && !retried && (await refresh())) return followStream(path, onEvent, signal, true);
  if (!response.ok || !response.body) throw new ApiError(response.status, await parse(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) {
        try {
          onEvent(name, JSON.parse(data.join('\n')));
        } catch {
          onEvent(name, data.join('\n'));
        }
      }
    }
  }
}
