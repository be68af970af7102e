// The operations dashboard (SPEC §6). Live over one server-sent event stream,
// `GET /api/admin/live`, read with fetch (EventSource cannot send the bearer token): every
// second it sends the services, projections, consumers, a throughput sample and the new
// events, and the open view redraws from them. A view fetches its own data once when it
// opens. Hash routes: #/services, #/throughput, #/events, #/transactions[/CORRELATION_ID],
// #/projections, #/dead-letters.

import { api, logIn, logOut, session, money, when, el, field, announce, guarded, followStream } from './api.js';

const view = document.getElementById('view');
/** How often the live stream sends a round (the server's pace). */
const LIVE_MS = 1000;
const SAMPLES = 90;
/** The open view: its key and its parameter (a correlation id). */
let current = { key: null, param: undefined };
/** The latest of each live list, for the views that show two of them. */
const latest = { projections: null, consumers: null };

function isAdmin() {
  const current = session();
  return Boolean(current && current.user && current.user.role === 'admin');
}

function badge(text) {
  return el('span', { class: `badge ${text}` }, String(text).replace(/_/g, ' '));
}

function show(title, ...content) {
  document.title = `${title} · eventshop operations`;
  view.replaceChildren(el('h1', {}, title), ...content);
}

function table(caption, headings, rows, attributes = {}) {
  return el('table', attributes, el('caption', { class: 'sr-only' }, caption),
    el('thead', {}, el('tr', {}, ...headings.map((h) => el('th', { scope: 'col', class: h.number ? 'number' : undefined }, h.label || h)))),
    el('tbody', {}, ...rows));
}

function cell(value, number = false) {
  return el('td', { class: number ? 'number' : undefined }, value);
}

function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${seconds % 60} s`;
}

// ---- Throughput: the live stream's samples, kept so the charts have history on any view.

const samples = [];
/** The services whose events the events/s chart counts. */
let countedServices = [];

/** Keeps one `throughput` sample; the first of a stream has no rates yet. */
function addSample(sample) {
  countedServices = Object.keys(sample.heads).sort();
  if (sample.events_per_second === null || sample.commands_per_second === null) return;
  const last = samples[samples.length - 1];
  // Orders that did not answer keep the previous counts rather than dropping to zero.
  const orders = sample.orders || (last && { confirmed: last.confirmed, rejected: last.rejected, cancelled: last.cancelled, in_progress: last.in_progress })
    || { confirmed: 0, rejected: 0, cancelled: 0, in_progress: 0 };
  samples.push({ at: Date.parse(sample.at), events: sample.events_per_second, commands: sample.commands_per_second, ...orders });
  if (samples.length > SAMPLES) samples.shift();
}

function lineChart(title, series, unit, note = '') {
  const width = 600;
  const height = 140;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const step = width / Math.max(1, SAMPLES - 1);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  const latest = series.map((s) => `${s.name} ${s.values.length ? s.values[s.values.length - 1].toFixed(1) : 0}${unit}`).join(', ');
  svg.setAttribute('aria-label', `${title}: now ${latest}; peak ${max.toFixed(1)}${unit}`);
  const colours = ['#1d4ed8', '#047857', '#b91c1c', '#b45309', '#7c3aed'];
  for (const fraction of [0.25, 0.5, 0.75]) {
    const grid = document.createElementNS(svg.namespaceURI, 'line');
    Object.entries({ x1: 0, x2: width, y1: height * fraction, y2: height * fraction, stroke: '#e5e7eb' }).forEach(([k, v]) => grid.setAttribute(k, v));
    svg.append(grid);
  }
  series.forEach((s, index) => {
    const offset = SAMPLES - s.values.length;
    const points = s.values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(height - 4 - (v / max) * (height - 10)).toFixed(1)}`).join(' ');
    const line = document.createElementNS(svg.namespaceURI, 'polyline');
    Object.entries({ points, fill: 'none', stroke: colours[index % colours.length], 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }).forEach(([k, v]) => line.setAttribute(k, v));
    svg.append(line);
  });
  return el('figure', { class: 'chart' }, el('h2', {}, title), svg,
    el('ul', { class: 'legend' }, ...series.map((s, index) => el('li', {}, el('span', { class: `swatch s${index}` }), `${s.name}: ${s.values.length ? s.values[s.values.length - 1].toFixed(1) : '–'}${unit}`))),
    el('figcaption', { class: 'muted' }, `peak ${max.toFixed(1)}${unit} over the last ${Math.round((SAMPLES * LIVE_MS) / 1000)} s${note}`));
}

function throughputCharts() {
  return el('div', { class: 'tiles', id: 'throughput' },
    lineChart('Events per second', [{ name: 'events/s', values: samples.map((s) => s.events) }], '', countedServices.length ? `; events of ${countedServices.join(', ')}` : ''),
    lineChart('Commands per second', [{ name: 'requests/s', values: samples.map((s) => s.commands) }], '', '; requests answered by every service instance, the dashboard\'s own left out'),
    lineChart('Orders by outcome (last 100 orders)', ['confirmed', 'rejected', 'cancelled', 'in_progress'].map((name) => ({ name: name.replace('_', ' '), values: samples.map((s) => s[name]) })), ''));
}

// ---- Views

async function servicesView(_param, live) {
  const services = live || await api('GET', '/api/admin/services');
  const rows = services.items.map((s) => el('tr', { 'data-service': s.name },
    cell(s.name), cell(el('code', {}, s.id)), cell(s.version), cell(duration(s.uptime_seconds)),
    cell(s.requests, true), cell(s.errors ?? 0, true)));
  show('Services',
    el('p', { class: 'muted' }, `${services.items.length} live instances, discovered on the bus. Updated live.`),
    table('Live service instances', ['Service', 'Instance', 'Version', 'Uptime', { label: 'Requests', number: true }, { label: 'Errors', number: true }], rows, { id: 'services' }),
    el('h2', {}, 'Throughput'), throughputCharts());
}

async function throughputView() {
  show('Throughput', el('p', { class: 'muted' }, `Sampled by the server every ${LIVE_MS / 1000} s while the dashboard is open.`), throughputCharts());
}

let eventFilters = new URLSearchParams();
/** The event browser's live tail: where new events go, once the pages reached the end. */
let eventsTail = null;

function matchesFilters(event) {
  const wanted = { service: event.service, stream: event.stream_id, type: event.type, correlation_id: event.correlation_id };
  return [...eventFilters].every(([name, value]) => wanted[name] === undefined || wanted[name] === value);
}

async function eventsView() {
  const query = new URLSearchParams(eventFilters);
  query.set('limit', '100');
  const page = await api('GET', `/api/admin/events?${query}`);
  let items = page.items;
  let next = page.next_cursor;
  const body = el('tbody', {});
  let count = items.length;
  const counter = el('p', { class: 'muted', id: 'events-count' }, `${count} events, oldest first. New events are added live.`);
  const addRows = (events) => body.append(...events.map((e) => el('tr', { 'data-type': e.type },
    cell(e.position, true), cell(e.service), cell(el('code', {}, e.stream_id)), cell(e.type), cell(when(e.recorded_at)),
    cell(el('a', { href: `#/transactions/${e.correlation_id}` }, el('code', {}, e.correlation_id.slice(0, 13)))),
    cell(el('details', {}, el('summary', {}, 'payload'), el('pre', { class: 'mono' }, JSON.stringify(e.payload, null, 2)))))));
  addRows(items);
  const more = el('button', { type: 'button', class: 'secondary', hidden: !next, onclick: async () => {
    const nextQuery = new URLSearchParams(query);
    nextQuery.set('cursor', next);
    const nextPage = await api('GET', `/api/admin/events?${nextQuery}`);
    addRows(nextPage.items);
    count += nextPage.items.length;
    counter.textContent = `${count} events, oldest first. New events are added live.`;
    next = nextPage.next_cursor;
    more.hidden = !next;
  } }, 'Load more');
  const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter events', onsubmit: (event) => {
    event.preventDefault();
    eventFilters = new URLSearchParams();
    for (const [name, value] of new FormData(event.currentTarget)) if (String(value).trim()) eventFilters.set(name, String(value).trim());
    eventsView().catch((error) => announce(error.message, 'error'));
  } },
  ...[['service', 'Service'], ['stream', 'Stream'], ['type', 'Type'], ['correlation_id', 'Correlation id']]
    .map(([name, text]) => field(text, { name, value: eventFilters.get(name) || '' })),
  el('button', { type: 'submit' }, 'Filter'));
  eventsTail = {
    atEnd: () => !next,
    add: (events) => {
      addRows(events);
      count += events.length;
      counter.textContent = `${count} events, oldest first. New events are added live.`;
    },
  };
  show('Events', form, counter,
    table('Events', [{ label: 'Position', number: true }, 'Service', 'Stream', 'Type', 'Recorded', 'Correlation', 'Payload'], [], { id: 'events' }), more);
  view.querySelector('#events tbody').replaceWith(body);
}

async function transactionView(id) {
  const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Find a transaction', onsubmit: guarded(async (data) => {
    const wanted = String(data.get('id')).trim();
    const kind = data.get('kind');
    if (kind === 'order') {
      const events = await api('GET', `/api/admin/events?stream=${encodeURIComponent(`order-${wanted}`)}&limit=1`);
      if (!events.items.length) throw new Error(`No events for order ${wanted}.`);
      location.hash = `#/transactions/${events.items[0].correlation_id}`;
    } else {
      location.hash = `#/transactions/${wanted}`;
    }
  }) },
  el('label', {}, el('span', {}, 'Look up by'), el('select', { name: 'kind', id: 'lookup-kind' }, el('option', { value: 'order' }, 'Order id'), el('option', { value: 'correlation' }, 'Correlation id'))),
  field('Id', { name: 'id', id: 'lookup-id', required: true, size: 40 }),
  el('button', { type: 'submit', id: 'lookup' }, 'Show transaction'));
  if (!id) {
    const recent = await api('GET', '/api/orders?limit=10');
    show('Transactions', form, el('h2', {}, 'Recent orders'),
      el('ul', { id: 'recent-orders' }, ...recent.items.map((order) => el('li', {}, el('button', { type: 'button', class: 'link', 'data-order-id': order.id, onclick: async () => {
        const events = await api('GET', `/api/admin/events?stream=order-${order.id}&limit=1`);
        if (events.items.length) location.hash = `#/transactions/${events.items[0].correlation_id}`;
      } }, `Order ${order.id}`), ' ', el('span', { class: 'badge ' + order.status }, order.status.replace('_', ' ')), ` · ${money(order.total)}`))));
    return;
  }
  const trace = await api('GET', `/api/admin/traces/${encodeURIComponent(id)}`);
  // Commands (requests a service handled) sit in the lanes beside events, outlined rather
  // than filled, "→ Operation"; a rejected one is drawn red with its outcome.
  const isCommand = (item) => item.kind === 'command';
  const at = (item) => (isCommand(item) ? item.started_at : item.recorded_at);
  // Styled through the CSSOM: the content security policy refuses style attributes.
  const commandStyle = (item) => (item.failed
    ? { background: 'transparent', border: '2px dashed #dc2626', color: '#b91c1c', fontWeight: '600' }
    : { background: 'transparent', border: '2px dashed #6366f1', color: '#3730a3' });
  const lanes = trace.services.map((service) => {
    const steps = trace.items.map((step, index) => ({ step, index })).filter(({ step }) => step.service === service);
    const list = el('ol', {}, ...steps.map(({ step, index }) => {
      const item = isCommand(step)
        ? el('li', { class: `step command${step.failed ? ' rejected' : ''}`, 'data-type': step.type, 'data-kind': 'command', 'data-outcome': step.outcome,
          title: `command ${step.type} at ${when(step.started_at)}: ${step.outcome} in ${step.duration_ms.toFixed(1)} ms` },
          el('span', { class: 'sr-only' }, step.failed ? `rejected command (${step.outcome}): ` : 'command: '), `${index + 1}. → ${step.type}`,
          step.failed ? el('span', { class: 'badge failure' }, step.outcome.replace('_', ' ')) : '',
          el('span', { class: 'time' }, new Date(step.started_at).toLocaleTimeString()))
        : el('li', { class: `step ${step.kind}`, 'data-type': step.type, 'data-kind': step.kind, title: `${step.type} at ${when(step.recorded_at)} (${step.stream_id})` },
          step.kind === 'step' ? '' : el('span', { class: 'sr-only' }, `${step.kind}: `), `${index + 1}. ${step.type}`, el('span', { class: 'time' }, new Date(step.recorded_at).toLocaleTimeString()));
      if (isCommand(step)) Object.assign(item.style, commandStyle(step));
      // Columns are the causal order: a step sits right of everything before it.
      item.style.gridColumn = String(index + 1);
      item.style.gridRow = '1';
      return item;
    }));
    list.style.gridTemplateColumns = `repeat(${trace.items.length}, minmax(4.5rem, 1fr))`;
    return el('li', { class: 'lane', 'data-service': service }, el('h3', {}, service), list);
  });
  const commands = trace.items.filter(isCommand).length;
  show('Transaction', form,
    el('p', {}, el('code', {}, trace.correlation_id), ' ', trace.failed ? el('span', { class: 'badge failure', id: 'failed' }, 'failed') : el('span', { class: 'badge confirmed' }, 'no failure'), ' ',
      trace.compensated ? el('span', { class: 'badge compensation', id: 'compensated' }, 'compensated') : '',
      el('span', { class: 'muted' }, ` ${trace.items.length - commands} events and ${commands} commands across ${trace.services.length} services`)),
    el('ol', { class: 'timeline', id: 'timeline', 'aria-label': 'Timeline by service' }, ...lanes),
    el('p', { class: 'muted' }, 'Outlined “→” boxes are commands the services handled. They are kept in memory by each service instance, the most recent only: an older transaction shows its events alone.'),
    el('h2', {}, 'In causal order'),
    table('Steps in causal order', [{ label: '#', number: true }, 'Service', 'Event or command', 'Kind', 'Stream or outcome', 'At'],
      trace.items.map((step, index) => el('tr', { class: isCommand(step) ? `command${step.failed ? ' rejected' : ''}` : step.kind },
        cell(index + 1, true), cell(step.service), cell(isCommand(step) ? `→ ${step.type}` : step.type),
        cell(badge(isCommand(step) ? (step.failed ? 'failure' : 'command') : step.kind)),
        cell(isCommand(step) ? `${step.outcome} · ${step.duration_ms.toFixed(1)} ms` : el('code', {}, step.stream_id)), cell(when(at(step)))))));
}

async function projectionsView(_param, live) {
  const [projections, consumers] = live
    || await Promise.all([api('GET', '/api/admin/projections'), api('GET', '/api/admin/consumers')]);
  const rows = projections.items.map((p) => el('tr', { 'data-projection': p.name },
    cell(el('code', {}, p.name)), cell(p.service), cell(p.position, true), cell(p.lag, true),
    cell(el('span', { class: `badge ${p.status}`, 'data-status': p.status }, p.status), false),
    cell(el('button', { type: 'button', class: 'secondary', disabled: p.status === 'rebuilding', 'aria-label': `Rebuild ${p.name}`, onclick: async (event) => {
      event.currentTarget.disabled = true;
      try {
        await api('POST', `/api/admin/projections/${encodeURIComponent(p.name)}/rebuild`);
        announce(`Rebuilding ${p.name}…`);
        rebuilds.set(p.name, Date.now());
        projectionsView();
      } catch (error) { announce(error.message, 'error'); }
    } }, 'Rebuild'))));
  show('Projections',
    table('Projections', ['Name', 'Service', { label: 'Position', number: true }, { label: 'Lag', number: true }, 'Status', 'Action'], rows, { id: 'projections' }),
    el('h2', {}, 'Consumers'),
    table('Consumers', ['Name', 'Service', { label: 'Position', number: true }, { label: 'Dead letters', number: true }],
      consumers.items.map((c) => el('tr', {}, cell(el('code', {}, c.name)), cell(c.service), cell(c.position, true), cell(c.dead_letters, true))), { id: 'consumers' }));
}

/** The rebuilds started here, by projection, with when: announced when they are over. */
const rebuilds = new Map();

/** Announces the rebuilds the live projections show over, whichever view is open. */
function checkRebuilds(projections) {
  for (const [name, since] of rebuilds) {
    // A round computed before the rebuild began may still arrive: trust one a round later.
    if (Date.now() - since < LIVE_MS) continue;
    const projection = projections.items.find((p) => p.name === name);
    if (projection && projection.status === 'live') {
      rebuilds.delete(name);
      announce(`Rebuild of ${name} complete: position ${projection.position}, lag ${projection.lag}.`, 'ok');
    }
  }
}

/** The dead letters the dead-letter view shows: it fetches again when the count changes. */
let shownDeadLetters = null;

function deadLetterCount(consumers) {
  return consumers.items.reduce((sum, c) => sum + c.dead_letters, 0);
}

async function deadLettersView() {
  const [letters, consumers] = await Promise.all([api('GET', '/api/admin/dead-letters?limit=100'), api('GET', '/api/admin/consumers')]);
  shownDeadLetters = deadLetterCount(consumers);
  const act = (letter, what) => async () => {
    try {
      await api('POST', `/api/admin/dead-letters/${letter.id}/${what}`);
      announce(`Dead letter ${letter.id.slice(0, 8)}: ${what === 'retry' ? 'retried' : 'discarded'}.`, 'ok');
      deadLettersView();
    } catch (error) { announce(error.message, 'error'); }
  };
  show('Dead letters',
    el('p', { class: 'muted' }, `${shownDeadLetters} parked across ${consumers.items.length} consumers.`),
    letters.items.length
      ? table('Dead letters', ['Parked', 'Consumer', 'Event', 'Reason', { label: 'Attempts', number: true }, 'Actions'],
        letters.items.map((letter) => el('tr', {}, cell(when(letter.parked_at)), cell(el('code', {}, letter.consumer)), cell(`${letter.event.type} (${letter.event.stream_id})`), cell(letter.reason), cell(letter.attempts, true),
          cell(el('span', { class: 'row' }, el('button', { type: 'button', onclick: act(letter, 'retry') }, 'Retry'), el('button', { type: 'button', class: 'danger', onclick: act(letter, 'discard') }, 'Discard'))))), { id: 'dead-letters' })
      : el('p', { id: 'dead-letters' }, 'No dead letters: every consumer is keeping up.'));
}

function loginView() {
  document.getElementById('nav').replaceChildren();
  view.replaceChildren(el('section', { class: 'login-box', 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title' }, 'Administrator login'),
    el('form', { class: 'stack', id: 'login', onsubmit: guarded(async (data) => {
      const me = await logIn(data.get('email'), data.get('password'));
      if (me.role !== 'admin') {
        logOut();
        throw new Error('This account is not an administrator.');
      }
      announce('Logged in.', 'ok');
      connectLive();
      route();
    }) },
    field('Email', { type: 'email', name: 'email', id: 'login-email', required: true, autocomplete: 'username' }),
    field('Password', { type: 'password', name: 'password', id: 'login-password', required: true, autocomplete: 'current-password' }),
    el('button', { type: 'submit' }, 'Log in'))));
}

const VIEWS = {
  services: ['Services', servicesView],
  throughput: ['Throughput', throughputView],
  events: ['Events', eventsView],
  transactions: ['Transactions', transactionView],
  projections: ['Projections', projectionsView],
  'dead-letters': ['Dead letters', deadLettersView],
};

function renderNav(active) {
  document.getElementById('nav').replaceChildren(
    ...Object.entries(VIEWS).map(([key, [title]]) => el('li', {}, el('a', { href: `#/${key}`, 'aria-current': key === active ? 'page' : undefined }, title))),
    el('li', {}, el('a', { href: '/' }, 'Storefront')),
    el('li', {}, el('button', { type: 'button', class: 'link', onclick: () => { stopLive(); logOut(); route(); } }, 'Log out')));
}

// ---- Live updates

/** Whether the admin is typing in a form of the view: it is not redrawn under them. */
function typing() {
  return view.contains(document.activeElement) && document.activeElement.matches('input, select, textarea');
}

/** Redraws the open view, keeping the focus on the same control when it has a name. */
function redraw(render) {
  if (typing()) return;
  const focused = view.contains(document.activeElement) ? document.activeElement : null;
  const label = focused && focused.getAttribute('aria-label');
  const selector = focused && (focused.id ? `#${CSS.escape(focused.id)}` : label ? `[aria-label="${CSS.escape(label)}"]` : null);
  Promise.resolve(render()).then(() => {
    const again = selector && view.querySelector(selector);
    if (again) again.focus();
  }).catch((error) => announce(error.message, 'error'));
}

/** What the live stream's events change on the open view. */
function onLive(name, data) {
  const { key, param } = current;
  if (name === 'services') {
    if (key === 'services') redraw(() => servicesView(undefined, data));
  } else if (name === 'projections') {
    latest.projections = data;
    checkRebuilds(data);
  } else if (name === 'consumers') {
    latest.consumers = data;
    if (key === 'projections' && latest.projections) redraw(() => projectionsView(undefined, [latest.projections, data]));
    if (key === 'dead-letters' && shownDeadLetters !== null && deadLetterCount(data) !== shownDeadLetters) redraw(deadLettersView);
  } else if (name === 'throughput') {
    addSample(data);
    const charts = view.querySelector('#throughput');
    if (charts && (key === 'services' || key === 'throughput')) charts.replaceWith(throughputCharts());
  } else if (name === 'events') {
    if (key === 'events' && eventsTail && eventsTail.atEnd()) {
      const wanted = data.items.filter(matchesFilters);
      if (wanted.length) eventsTail.add(wanted);
    }
    if (key === 'transactions' && param && data.items.some((e) => e.correlation_id === param)) redraw(() => transactionView(param));
  } else if (name === 'error' && data && data.detail !== liveError) {
    liveError = data.detail;
    announce(`Live updates: ${data.detail}`, 'error');
  }
}

/** The open live stream's controller; null when there is none. */
let live = null;
let liveError = null;

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Follows the live stream while an admin is logged in, reconnecting with backoff. */
async function connectLive() {
  if (live || !isAdmin()) return;
  const controller = new AbortController();
  live = controller;
  let delay = LIVE_MS;
  let lost = false;
  while (!controller.signal.aborted && isAdmin()) {
    try {
      await followStream('/api/admin/live', (name, data) => {
        if (lost) {
          lost = false;
          announce('Live updates are back.', 'ok');
        }
        if (name !== 'error') liveError = null;
        delay = LIVE_MS;
        onLive(name, data);
      }, controller.signal);
      // The server closes a stream after a while; the loop opens the next one.
    } catch (error) {
      if (controller.signal.aborted) break;
      if (error.status === 401 || error.status === 403) {
        stopLive();
        logOut();
        route().then(() => announce(error.message, 'error'));
        return;
      }
      if (!lost) {
        lost = true;
        announce('Live updates interrupted; reconnecting…', 'error');
      }
    }
    await pause(delay, controller.signal);
    delay = Math.min(delay * 2, 30000);
  }
  if (live === controller) live = null;
}

function stopLive() {
  if (live) live.abort();
  live = null;
}

async function route() {
  if (!isAdmin()) {
    stopLive();
    current = { key: null, param: undefined };
    loginView();
    return;
  }
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const key = VIEWS[parts[0]] ? parts[0] : 'services';
  const param = parts[1] ? decodeURIComponent(parts[1]) : undefined;
  current = { key, param };
  eventsTail = null;
  shownDeadLetters = null;
  renderNav(key);
  // One fetch now; the live stream keeps the view current from then on.
  try {
    await VIEWS[key][1](param);
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      stopLive();
      logOut();
      loginView();
      announce(error.message, 'error');
      return;
    }
    show(VIEWS[key][0], el('p', { role: 'alert' }, error.message));
  }
}

window.addEventListener('hashchange', () => {
  announce('');
  route();
});
connectLive();
route();
