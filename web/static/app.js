// plinth web console: plain JavaScript, no framework; the third-party libraries are
// xterm.js (the VM's serial console) and noVNC (its display, loaded when opened), pinned
// in package-lock.json and embedded.
// Talks only to the plinthd that served it: the control API under /v1 (with the
// session's CSRF token on every change), /web/session, /web/login, /web/logout, the
// live stream /web/live (server-sent events: vms, tasks, event, expired), and a VM's
// console: a one-time ticket (POST /web/console/{vm}/ticket), then a WebSocket.
'use strict';

const S = {
  user: null, role: null, csrf: null,
  vms: null,            // the VM list as last pushed
  tasks: [],
  events: [],           // newest last, at most MAX_EVENTS
  lastEvent: 0,
  live: null,           // the EventSource
  taskWaiters: new Map(),
  filter: '', stateFilter: '',
};
const MAX_EVENTS = 500;
const ACTIONS = [
  // [action, label, states it applies to, role needed]
  ['start', 'Start', ['defined', 'stopped', 'crashed'], 'operator'],
  ['stop', 'Stop', ['running', 'paused'], 'operator'],
  ['reboot', 'Reboot', ['running'], 'operator'],
  ['pause', 'Pause', ['running'], 'operator'],
  ['resume', 'Resume', ['paused'], 'operator'],
  ['kill', 'Kill', ['starting', 'running', 'paused', 'stopping'], 'operator'],
];

const $ = (id) => document.getElementById(id);

// h('tag.class', {attr: value, onclick: fn}, child...): text is always text, never HTML.
function h(spec, attrs, ...kids) {
  const [tag, ...cls] = spec.split('.');
  const el = document.createElement(tag);
  if (cls.length) el.className = cls.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

function notice(text, kind) {
  const n = $('notice');
  n.textContent = text || '';
  n.className = kind || 'error';
  n.hidden = !text;
}

function can(role) {
  if (S.role === 'admin') return true;
  return role === 'operator' && S.role === 'operator';
}

// One API call. Resolves to the JSON body; rejects with an Error whose message is
// the daemon's sentence (or says what went wrong with the connection).
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = S.csrf || '';
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new Error('plinthd did not answer; is it still running?');
  }
  let data = {};
  try { data = await r.json(); } catch (e) { /* no body */ }
  if (r.status === 401 && path !== '/web/login') {
    showLogin('Your session has ended; log in again.');
    throw new Error('Your session has ended; log in again.');
  }
  if (!r.ok) throw new Error(data.error || `plinthd answered ${r.status}.`);
  return data;
}

/* --- log-in ------------------------------------------------------------------------ */

function showLogin(message) {
  if (view && view.close) view.close();
  view = null;
  S.user = S.role = S.csrf = null;
  if (S.live) { S.live.close(); S.live = null; }
  $('top').hidden = true;
  $('tasks').hidden = true;
  notice('');
  const err = h('p.error', { id: 'login-error', role: 'alert', text: message || '' });
  err.hidden = !message;
  const form = h('form.login', { id: 'login-form' },
    h('h1', { text: 'plinth' }),
    h('label', {}, 'User', h('input', { name: 'user', id: 'login-user', autocomplete: 'username', required: true })),
    h('label', {}, 'Password', h('input', { name: 'password', id: 'login-password', type: 'password', autocomplete: 'current-password', required: true })),
    err,
    h('button', { type: 'submit', id: 'login-submit' }, 'Log in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      const s = await api('POST', '/web/login', { user: form.user.value, password: form.password.value });
      startSession(s);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      form.password.value = '';
      form.password.focus();
    }
  });
  $('main').replaceChildren(form);
  form.user.focus();
}

function startSession(s) {
  S.user = s.user; S.role = s.role; S.csrf = s.csrf;
  $('who').textContent = `${s.user} (${s.role})`;
  $('top').hidden = false;
  $('nav-create').hidden = S.role !== 'admin';
  connectLive();
  route();
}

async function logout() {
  try { await api('POST', '/web/logout'); } catch (e) { /* ended anyway */ }
  showLogin('You are logged out.');
}

/* --- the live stream -------------------------------------------------------------- */

function connectLive() {
  if (S.live) S.live.close();
  const es = new EventSource('/web/live');
  S.live = es;
  es.addEventListener('hello', (m) => {
    const d = JSON.parse(m.data);
    if (!S.lastEvent) loadEvents(d.last_event);
  });
  es.addEventListener('vms', (m) => {
    S.vms = JSON.parse(m.data).vms;
    refresh('vms');
  });
  es.addEventListener('tasks', (m) => {
    S.tasks = JSON.parse(m.data).tasks;
    renderTasks();
    for (const t of S.tasks) {
      const w = S.taskWaiters.get(t.id);
      if (w && t.state !== 'running') { S.taskWaiters.delete(t.id); w(t); }
    }
  });
  es.addEventListener('event', (m) => {
    addEvents([JSON.parse(m.data)]);
  });
  es.addEventListener('resync', () => loadEvents(0));
  es.addEventListener('expired', () => showLogin('Your session has ended; log in again.'));
  es.onerror = async () => {
    if (es !== S.live || es.readyState !== EventSource.CLOSED) return; // retrying by itself
    try {
      await api('GET', '/web/session');
      setTimeout(() => { if (es === S.live) connectLive(); }, 2000);
    } catch (e) {
      if (S.user) notice(e.message);
    }
  };
}

async function loadEvents(last) {
  const after = Math.max(0, (last || 0) - MAX_EVENTS);
  try {
    const d = await api('GET', `/v1/events?after=${after}&limit=${MAX_EVENTS}`);
    // Merge: events the stream delivered while this was on its way stay.
    const byId = new Map([...d.events, ...S.events].map((e) => [e.id, e]));
    S.events = [...byId.values()].sort((a, b) => a.id - b.id).slice(-MAX_EVENTS);
    S.lastEvent = S.events.length ? S.events[S.events.length - 1].id : 0;
    refresh('events');
  } catch (e) { notice(e.message); }
}

function addEvents(list) {
  for (const e of list) {
    if (e.id <= S.lastEvent) continue;
    S.events.push(e);
    S.lastEvent = e.id;
  }
  if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
  refresh('events');
}

/* --- routing ---------------------------------------------------------------------- */

let view = null; // { name, refresh(what) }

function route() {
  if (!S.user) return;
  const hash = decodeURIComponent(location.hash.slice(1)) || '/';
  notice('');
  document.querySelectorAll('nav a').forEach((a) => a.classList.remove('on'));
  if (view && view.close) view.close();
  let m;
  if ((m = hash.match(/^\/vm\/(.+)$/))) view = vmView(m[1]);
  else if (hash === '/events') view = eventsView();
  else if (hash === '/create') view = createView();
  else view = inventoryView();
  const nav = document.querySelector(`nav a[data-nav="${view.nav}"]`);
  if (nav) nav.classList.add('on');
  $('main').replaceChildren(view.el);
  view.refresh('all');
}

function refresh(what) {
  if (view) view.refresh(what);
}

/* --- pieces ----------------------------------------------------------------------- */

function stateBadge(state) {
  return h(`span.state.s-${state}`, { text: state });
}

function mib(n) {
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function when(ms) {
  const d = new Date(ms);
  return d.toLocaleString(undefined, { hour12: false });
}

function diskText(d) {
  const what = d.image ? `image ${d.image}` : d.path;
  return `${what}${d.format ? ` (${d.format})` : ''}${d.readonly ? ', read-only' : ''}`;
}

function eventRows(list) {
  return list.slice().reverse().map((e) => h(`tr.r-${e.result}`, {},
    h('td', { text: when(e.time_ms) }),
    h('td', { text: e.actor }),
    h('td', { text: e.action }),
    h('td', {}, e.object.match(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/) && S.vms && S.vms.some((v) => v.name === e.object)
      ? h('a', { href: `#/vm/${encodeURIComponent(e.object)}`, text: e.object }) : e.object),
    h('td', { text: e.result }),
    h('td', { text: e.message })));
}

function eventTable(list, id) {
  return h('table.events', { id },
    h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Object', 'Result', 'Message'].map((t) => h('th', { text: t })))),
    h('tbody', {}, eventRows(list)));
}

function renderTasks() {
  const recent = S.tasks.filter((t) => t.state === 'running' || Date.now() - (t.finished_ms || 0) < 60000);
  $('tasks').hidden = recent.length === 0;
  $('task-list').replaceChildren(...recent.map((t) => h(`li.t-${t.state}`, {},
    h('span', { text: `${t.kind} ${t.object}: ` }),
    h('progress', { max: 100, value: t.percent }),
    h('span', { text: ` ${t.percent}%${t.total_bytes ? ` of ${bytes(t.total_bytes)}` : ''} ${t.state}${t.error ? `: ${t.error}` : ''}` }),
    t.state === 'running' && can('operator')
      ? h('button', { type: 'button', onclick: () => act(() => api('POST', `/v1/tasks/${t.id}/cancel`), 'Cancelled.') }, 'Cancel')
      : null)));
}

async function act(fn, done) {
  try {
    await fn();
    if (done) notice(done, 'ok');
  } catch (e) {
    notice(e.message);
  }
}

function confirmDialog(text, okLabel) {
  return new Promise((resolve) => {
    const d = $('confirm');
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    d.returnValue = '';
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
  });
}

/* --- inventory -------------------------------------------------------------------- */

function inventoryView() {
  const body = h('tbody');
  const count = h('span.count');
  const search = h('input', { type: 'search', id: 'filter', placeholder: 'Filter by name, state or disk', value: S.filter,
    oninput: (e) => { S.filter = e.target.value; draw(); } });
  const states = ['', 'running', 'paused', 'starting', 'stopping', 'stopped', 'crashed', 'defined'];
  const sel = h('select', { id: 'state-filter', onchange: (e) => { S.stateFilter = e.target.value; draw(); } },
    states.map((s) => h('option', { value: s, selected: s === S.stateFilter, text: s || 'any state' })));
  const el = h('section.inventory', {},
    h('div.bar', {}, h('h1', { text: 'Virtual machines' }), count),
    h('div.filters', {}, search, sel),
    h('table.vms', { id: 'vm-table' },
      h('thead', {}, h('tr', {}, ['Name', 'State', 'vCPUs', 'Memory', 'Disks', 'Note'].map((t) => h('th', { text: t })))),
      body));
  function draw() {
    if (!S.vms) { body.replaceChildren(h('tr', {}, h('td', { colspan: 6, text: 'Loading...' }))); return; }
    const f = S.filter.trim().toLowerCase();
    const shown = S.vms.filter((v) => (!S.stateFilter || v.state === S.stateFilter) &&
      (!f || v.name.toLowerCase().includes(f) || v.state.includes(f) ||
       (v.disks || []).some((d) => (d.image || d.path || '').toLowerCase().includes(f))));
    count.textContent = `${shown.length} of ${S.vms.length}`;
    body.replaceChildren(...shown.map((v) => h('tr', { 'data-vm': v.name },
      h('td', {}, h('a', { href: `#/vm/${encodeURIComponent(v.name)}`, text: v.name })),
      h('td', {}, stateBadge(v.state)),
      h('td', { text: v.cpus }),
      h('td', { text: mib(v.memory_mib) }),
      h('td.disks', { text: (v.disks || []).map((d) => d.image || d.path).join(', ') }),
      h('td.note', { text: v.reason || '' }))));
    if (!shown.length) body.append(h('tr', {}, h('td', { colspan: 6, text: S.vms.length ? 'No VM matches the filter.' : 'No VMs yet.' })));
  }
  return { nav: 'inventory', el, refresh: (what) => { if (what !== 'events') draw(); } };
}

/* --- one VM ----------------------------------------------------------------------- */

// Attach a pool image to VM name: hot-plugged if it runs (PUT /v1/vms/NAME/disks/ID);
// done(v) with the VM as plinthd answered.
function diskAddForm(name, done) {
  const image = h('select', { name: 'image', id: 'd-image', required: true });
  const form = h('form.disk-add', { id: 'disk-add' },
    h('label', {}, 'Id', h('input', { name: 'id', id: 'd-id', required: true, pattern: '[A-Za-z0-9_\\-]{1,31}', size: 10 })),
    h('label', {}, 'Image', image),
    h('label.check', {}, h('input', { type: 'checkbox', name: 'readonly', id: 'd-readonly' }), 'read-only'),
    h('button', { type: 'submit', id: 'd-add' }, 'Add disk'));
  api('GET', '/v1/images').then((im) => image.replaceChildren(...im.images.map((i) =>
    h('option', { value: i.name, text: `${i.name}, ${bytes(i.size)} ${i.format}${i.used_by ? ` (used by ${i.used_by})` : ''}` }))))
    .catch((e) => notice(e.message));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = form.id.value.trim();
    const body = { image: form.image.value };
    if (form.readonly.checked) body.readonly = true;
    $('d-add').disabled = true;
    act(() => api('PUT', `/v1/vms/${encodeURIComponent(name)}/disks/${encodeURIComponent(id)}`, body).then((v) => {
      form.id.value = '';
      done(v);
    }), `Attached ${id}.`).finally(() => { $('d-add').disabled = false; });
  });
  return form;
}

function vmView(name) {
  const head = h('div.bar');
  const buttons = h('div.actions', { id: 'vm-actions' });
  const config = h('dl.config');
  const disks = h('tbody');
  // The disks' ids and slots: not in the pushed list, asked for when the disks change.
  let devs = [];
  let devsOf = null;
  function gotVm(v) {
    const { devices, ...pushed } = v; // the pushed list's shape: shown at once
    const i = (S.vms || []).findIndex((x) => x.name === v.name);
    if (i >= 0) S.vms[i] = pushed;
    devs = devices || [];
    devsOf = JSON.stringify(v.disks || []);
    last = '';
    draw('vms');
  }
  const diskForm = diskAddForm(name, gotVm);
  const nics = h('tbody');
  const events = h('tbody');
  const con = consolePanel(name);
  const disp = displayPanel(name);
  const charts = chartsPanel(name);
  const el = h('section.vm', {}, head, buttons,
    h('div.cols', {},
      h('div', {}, h('h2', { text: 'Configuration' }), config),
      h('div', {},
        h('h2', { text: 'Disks' }), h('table', { id: 'vm-disks' }, h('thead', {}, h('tr', {}, h('th', { text: '#' }), h('th', { text: 'Disk' }), h('th', { text: 'Id, PCI slot' }), h('th'))), disks),
        diskForm,
        h('h2', { text: 'Network interfaces' }), h('table', { id: 'vm-nics' }, h('thead', {}, h('tr', {}, h('th', { text: '#' }), h('th', { text: 'Network' }))), nics))),
    charts.el,
    disp.el,
    con.el,
    h('h2', { text: 'Events' }),
    h('table.events', { id: 'vm-events' },
      h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Object', 'Result', 'Message'].map((t) => h('th', { text: t })))),
      events));
  let last = '';
  let asked = null; // a VM not in the pushed list yet (just made): asked for directly
  const details = el.querySelectorAll('.cols, h2, table.events');
  function draw(what) {
    const v = S.vms && S.vms.find((x) => x.name === name);
    details.forEach((d) => { if (!d.closest('.cols') || d.classList.contains('cols')) d.hidden = !v; });
    if (what !== 'events') {
      if (!v) {
        if (!asked && S.vms) {
          asked = api('GET', `/v1/vms/${encodeURIComponent(name)}`).then((got) => {
            if (S.vms && !S.vms.some((x) => x.name === name)) S.vms.push(got);
            return 'found';
          }, (e) => e.message).then((r) => { asked = r; draw('vms'); });
        }
        head.replaceChildren(h('h1', { text: name }));
        buttons.replaceChildren(h('p', { text: typeof asked === 'string' && asked !== 'found' ? asked : 'Loading...' }));
        last = '';
      } else if (JSON.stringify(v) !== last) {
        last = JSON.stringify(v);
        if (JSON.stringify(v.disks || []) !== devsOf) {
          devsOf = JSON.stringify(v.disks || []);
          api('GET', `/v1/vms/${encodeURIComponent(name)}`).then(gotVm, (e) => notice(e.message));
        }
        head.replaceChildren(h('h1', { text: v.name }), stateBadge(v.state));
        buttons.replaceChildren(...ACTIONS.map(([a, label, states, role]) => h('button', {
          type: 'button', id: `act-${a}`, disabled: !can(role) || !states.includes(v.state),
          title: can(role) ? undefined : `Your role (${S.role}) may not ${a} VMs.`,
          onclick: () => act(() => api('POST', `/v1/vms/${encodeURIComponent(name)}/${a}`), `${label}: asked.`),
        }, label)), h('button.danger', {
          type: 'button', id: 'act-delete', disabled: !can('admin') || !['defined', 'stopped', 'crashed'].includes(v.state),
          title: can('admin') ? undefined : `Your role (${S.role}) may not delete VMs.`,
          onclick: async () => {
            if (!await confirmDialog(`Delete the VM ${name}? Its definition goes; its disk images stay in the pool.`, 'Delete')) return;
            act(async () => { await api('DELETE', `/v1/vms/${encodeURIComponent(name)}`); location.hash = '#/'; }, `Deleted ${name}.`);
          },
        }, 'Delete'));
        const rows = [['State', v.state], ['Note', v.reason], ['Process', v.pid],
          ['vCPUs', v.cpus], ['Memory', mib(v.memory_mib)], ['Kernel', v.kernel], ['Initrd', v.initrd],
          ['Command line', v.cmdline], ['Restart', v.restart], ['Autostart', v.autostart ? 'yes' : 'no'], ['HA', v.ha ? 'yes' : undefined],
          ['Anti-affinity', v.anti_affinity], ['Host', v.host], ['Display', v.display], ['UUID', v.uuid]];
        config.replaceChildren(...rows.filter(([, x]) => x !== undefined && x !== '').flatMap(([k, x]) => [h('dt', { text: k }), h('dd', { text: x })]));
        disks.replaceChildren(...(v.disks || []).map((d, i) => {
          const dev = devs.find((x) => x.kind === 'disk' && x.index === i);
          return h('tr', {}, h('td', { text: i }), h('td', { text: diskText(d) }),
            h('td', { text: dev ? `${dev.id}, ${dev.slot}` : '' }),
            h('td', {}, dev && can('operator') ? h('button', {
              type: 'button', class: 'disk-remove', 'data-id': dev.id,
              onclick: async (ev) => {
                if (!await confirmDialog(`Detach disk ${dev.id} from ${name}? A running guest is asked to eject it first.`, 'Detach')) return;
                ev.target.disabled = true;
                act(() => api('DELETE', `/v1/vms/${encodeURIComponent(name)}/disks/${encodeURIComponent(dev.id)}`).then(gotVm),
                  `Detached ${dev.id}.`).finally(() => { ev.target.disabled = false; });
              },
            }, 'Remove') : null));
        }));
        diskForm.hidden = !can('operator');
        nics.replaceChildren(...(v.nics || []).map((n, i) => h('tr', {}, h('td', { text: i }), h('td', { text: n.network }))));
        if (!(v.disks || []).length) disks.append(h('tr', {}, h('td', { colspan: 4, text: 'none' })));
        if (!(v.nics || []).length) nics.append(h('tr', {}, h('td', { colspan: 2, text: 'none' })));
      }
    }
    if (what !== 'events') disp.update(v);
    if (what !== 'vms') events.replaceChildren(...eventRows(S.events.filter((e) => e.object === name)));
  }
  let started = false;
  return {
    nav: 'inventory', el, close: () => { con.close(); disp.close(); charts.close(); },
    refresh: (what) => {
      draw(what);
      // The terminal measures itself: it opens once the view is in the page.
      if (!started && el.isConnected && S.vms && S.vms.some((x) => x.name === name)) { started = true; con.start(); charts.start(); }
    },
  };
}

/* --- a VM's charts --------------------------------------------------------------- */

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  el.append(...kids);
  return el;
}

function rateText(n) {
  return `${bytes(n)}/s`;
}

// One chart of the last hour: lines [{ label, cls, values: [[t_ms, v|null]...] }],
// drawn as SVG (no library), with each line's latest value and the hour's peak.
function chart(id, title, lines, fmt, now) {
  const W = 600, H = 120, from = now - 3600 * 1000;
  const all = lines.flatMap((l) => l.values.map(([, v]) => v)).filter((v) => v !== null);
  const top = Math.max(...all, 0) * 1.1 || 1;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'plot', role: 'img', 'aria-label': title });
  for (const y of [0.25, 0.5, 0.75]) g.append(svg('line', { x1: 0, x2: W, y1: H * y, y2: H * y, class: 'grid' }));
  for (const l of lines) {
    // A gap (null: not known, or the VM did not run) splits the line.
    let seg = [];
    const flush = () => {
      if (seg.length > 1) g.append(svg('polyline', { points: seg.join(' '), class: `line ${l.cls}`, 'vector-effect': 'non-scaling-stroke' }));
      if (seg.length === 1) g.append(svg('circle', { cx: seg[0].split(',')[0], cy: seg[0].split(',')[1], r: 1.5, class: `dot ${l.cls}` }));
      seg = [];
    };
    for (const [t, v] of l.values) {
      if (v === null || t < from) { flush(); continue; }
      seg.push(`${((t - from) / 3600000 * W).toFixed(1)},${(H - v / top * H).toFixed(1)}`);
    }
    flush();
  }
  const legend = h('div.legend', {}, lines.map((l) => {
    const known = l.values.filter(([, v]) => v !== null);
    const last = known.length ? known[known.length - 1][1] : null;
    const peak = known.length ? Math.max(...known.map(([, v]) => v)) : null;
    return h(`span.key.${l.cls}`, { 'data-now': last === null ? '' : last },
      `${l.label}: ${last === null ? 'n/a' : fmt(last)}${peak === null ? '' : ` (peak ${fmt(peak)})`}`);
  }));
  return h('figure.chart', { id }, h('figcaption', { text: title }), g, legend);
}

// The four charts' frames, drawn before their figures arrive and when there are none:
// each with its plot's height and a legend line, so that the display and the console
// below do not move (under a pointer about to click) when the plots replace them.
const CHARTS = [['chart-cpu', 'CPU (% of one host core)'], ['chart-mem', 'Memory (resident)'],
  ['chart-disk', 'Disk'], ['chart-net', 'Network']];
function chartFrame(id, title, text) {
  return h('figure.chart', { id }, h('figcaption', { text: title }), h('p.plot-wait', { text }), h('div.legend'));
}
function chartFrames(text) {
  return CHARTS.map(([id, title]) => chartFrame(id, title, text));
}

// The VM's use over the last hour (GET /web/stats/{vm}, sampled by plinthd every
// period_s seconds): read again at that period while the page shows the VM. The
// status line above the frames keeps its line when empty, for the same reason.
function chartsPanel(name) {
  const status = h('p.status', { id: 'vm-charts-status', text: 'Loading...' });
  const box = h('div.charts', { id: 'vm-charts', 'data-state': 'loading' }, chartFrames(''));
  const el = h('section.usage', {}, h('h2', { text: 'Use over the last hour' }), status, box);
  let timer = null;
  let closed = false;
  const show = (state, text, frames) => {
    box.dataset.state = state;
    status.textContent = text;
    box.replaceChildren(...frames);
  };
  async function load() {
    timer = null;
    if (closed) return;
    let d;
    try {
      d = await api('GET', `/web/stats/${encodeURIComponent(name)}`);
    } catch (e) {
      show('error', `The figures could not be read: ${e.message}`, chartFrames(''));
      if (!closed && S.user) timer = setTimeout(load, 10000);
      return;
    }
    if (closed) return;
    const col = (i) => d.points.map((p) => [p[0], p[i]]);
    const now = Date.now();
    if (!d.points.length) {
      show('empty', 'No figures yet: plinthd samples a VM while it runs on this host.', chartFrames(''));
    } else {
      const hasNet = d.points.some((p) => p[5] !== null);
      show('shown', '', [
        chart('chart-cpu', 'CPU (% of one host core)', [{ label: 'CPU', cls: 'c1', values: col(1) }], (v) => `${v.toFixed(1)} %`, now),
        chart('chart-mem', 'Memory (resident)', [{ label: 'Memory', cls: 'c1', values: col(2).map(([t, v]) => [t, v === null ? null : v * 1048576]) }], bytes, now),
        chart('chart-disk', 'Disk', [{ label: 'Read', cls: 'c1', values: col(3) }, { label: 'Write', cls: 'c2', values: col(4) }], rateText, now),
        hasNet ? chart('chart-net', 'Network', [{ label: 'In', cls: 'c1', values: col(5) }, { label: 'Out', cls: 'c2', values: col(6) }], rateText, now)
          : chartFrame('chart-net', 'Network', 'The VM has no network interface.')]);
    }
    timer = setTimeout(load, (d.period_s || 5) * 1000);
  }
  return {
    el,
    start: load,
    close() { closed = true; if (timer) clearTimeout(timer); },
  };
}

/* --- a VM's serial console ------------------------------------------------------- */

// The console of VM name in a terminal: a WebSocket to plinthd (binary messages are
// the guest's output, the scrollback first; text messages {"error"|"notice": sentence});
// what is typed goes back as text. A dropped console says why and reconnects, unless
// the session ended or the VM is gone.
function consolePanel(name) {
  const status = h('p.status', { id: 'console-status', role: 'status' });
  const box = h('div.term', { id: 'console' });
  const el = h('section.console', {}, h('h2', { text: 'Console' }), box, status);
  const term = new window.Terminal({
    cols: 80, rows: 24, scrollback: 5000, convertEol: true, cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", "Liberation Mono", monospace', fontSize: 13,
    disableStdin: S.role === 'viewer',
  });
  let ws = null;
  let closed = false;
  let retry = null;
  const say = (t) => { status.textContent = t; };
  async function open() {
    retry = null;
    if (closed) return;
    say('Connecting...');
    let t;
    try {
      t = await api('POST', `/web/console/${encodeURIComponent(name)}/ticket`);
    } catch (e) {
      say(`The console could not be opened: ${e.message}`);
      if (S.user && !closed) retry = setTimeout(open, 5000);
      return;
    }
    if (closed) return;
    const sock = new WebSocket(`wss://${location.host}${t.url}`);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    let why = '';
    sock.onopen = () => say(S.role === 'viewer' ? 'Connected (watch only: your role is viewer).' : 'Connected.');
    sock.onmessage = (m) => {
      if (typeof m.data !== 'string') { term.write(new Uint8Array(m.data)); return; }
      let d = {};
      try { d = JSON.parse(m.data); } catch (e) { return; }
      why = d.error || d.notice || why;
      say(why);
    };
    sock.onclose = (ev) => {
      if (ws !== sock || closed) return;
      ws = null;
      const reason = ev.reason || why || 'The connection to plinthd was lost.';
      if (ev.code === 1008) { showLogin(reason); return; } // the session ended
      if (ev.code === 1000) { say(`Console closed: ${reason}`); return; } // the VM is gone
      say(`Console disconnected: ${reason} Reconnecting...`);
      retry = setTimeout(open, 2000);
    };
  }
  term.onData((d) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(d); });
  return {
    el,
    start() { term.open(box); open(); },
    close() {
      closed = true;
      if (retry) clearTimeout(retry);
      if (ws) { const w = ws; ws = null; w.close(1000, 'The page left the console.'); }
      term.dispose();
    },
  };
}

/* --- a VM's display (noVNC) --------------------------------------------------------- */

// The display of VM name (definitions with "display": "vnc"), opened with its button:
// noVNC (ES modules, fetched from plinthd only then) over a WebSocket to plinthd, which
// passes RFB to the VM's VNC server (a viewer's keys and pointer are left out there too).
// The close frame's reason is the sentence shown; a dropped display reconnects.
function displayPanel(name) {
  const status = h('p.status', { id: 'display-status', role: 'status' });
  const screen = h('div.screen', { id: 'display-screen' });
  const button = h('button', { type: 'button', id: 'display-open' }, 'Open the display');
  const el = h('section.display', { hidden: true }, h('div.bar', {}, h('h2', { text: 'Display' }), button), screen, status);
  let rfb = null;
  let sock = null;
  let want = false;
  let retry = null;
  let live = false;
  let closedWhy = ''; // the last close's sentence: the VM's state arriving after it must not hide it
  const say = (t) => { status.textContent = t; };
  function stop(why) {
    if (retry) { clearTimeout(retry); retry = null; }
    if (sock) { const w = sock; sock = null; w.close(1000, why); }
    if (rfb) { const r = rfb; rfb = null; try { r.disconnect(); } catch (e) { /* gone */ } }
    screen.replaceChildren();
  }
  async function open() {
    retry = null;
    if (!want) return;
    say('Connecting...');
    let t;
    let RFB;
    try {
      t = await api('POST', `/web/display/${encodeURIComponent(name)}/ticket`);
      ({ default: RFB } = await import('/static/vendor/novnc/core/rfb.js'));
    } catch (e) {
      say(`The display could not be opened: ${e.message}`);
      return;
    }
    if (!want) return;
    const s = new WebSocket(`wss://${location.host}${t.url}`);
    sock = s;
    let reason = '';
    s.addEventListener('close', (ev) => {
      reason = ev.reason;
      if (sock !== s) return;
      sock = null;
      if (ev.code === 1008) { want = false; showLogin(ev.reason); return; } // the session ended
      if (ev.code === 1000 || !want) {
        closedWhy = `Display closed: ${ev.reason || 'the connection ended.'}`;
        say(closedWhy);
        want = false;
        button.textContent = 'Open the display';
        button.disabled = !live;
        return;
      }
      say(`Display disconnected: ${ev.reason || 'The connection to plinthd was lost.'} Reconnecting...`);
      retry = setTimeout(open, 2000);
    });
    rfb = new RFB(screen, s);
    rfb.viewOnly = S.role === 'viewer';
    rfb.addEventListener('connect', () => say(S.role === 'viewer' ? 'Connected (watch only: your role is viewer).' : 'Connected.'));
    rfb.addEventListener('disconnect', () => { if (!reason && want && !sock) say('Display closed.'); });
  }
  button.onclick = () => {
    if (want) { want = false; stop('The page closed the display.'); button.textContent = 'Open the display'; say(''); return; }
    want = true;
    closedWhy = '';
    button.textContent = 'Close the display';
    open();
  };
  return {
    el,
    update(v) {
      el.hidden = !v || v.display !== 'vnc';
      live = !!v && ['running', 'paused'].includes(v.state);
      button.disabled = !live && !want;
      if (!live && !want) say(closedWhy || (v && v.display === 'vnc' ? 'The display is there while the VM runs.' : ''));
    },
    close() { want = false; stop('The page left the display.'); },
  };
}

/* --- the event log ---------------------------------------------------------------- */

function eventsView() {
  const wrap = h('div');
  const el = h('section', {}, h('h1', { text: 'Event log' }), wrap);
  return { nav: 'events', el, refresh: (what) => { if (what !== 'vms') wrap.replaceChildren(eventTable(S.events, 'event-log')); } };
}

/* --- a new VM from a template ----------------------------------------------------- */

function waitTask(id) {
  const t = S.tasks.find((x) => x.id === id && x.state !== 'running');
  if (t) return Promise.resolve(t);
  return new Promise((resolve) => S.taskWaiters.set(id, resolve));
}

function createView() {
  const base = h('select', { name: 'base', id: 'c-base', required: true });
  const net = h('select', { name: 'network', id: 'c-net' }, h('option', { value: '', text: 'none' }));
  const like = (S.vms || []).find((v) => v.kernel) || {};
  const field = (label, attrs) => h('label', {}, label, h('input', attrs));
  const status = h('p.status', { id: 'c-status', role: 'status' });
  const form = h('form.create', { id: 'create-form' },
    h('h1', { text: 'New VM' }),
    field('Name', { name: 'name', id: 'c-name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}' }),
    h('label', {}, 'Template or image', base),
    h('label.check', {}, h('input', { type: 'checkbox', name: 'linked', id: 'c-linked', checked: true }), 'Linked clone (a copy-on-write overlay: fast, small)'),
    field('vCPUs', { name: 'cpus', id: 'c-cpus', type: 'number', min: 1, max: 64, value: like.cpus || 1 }),
    field('Memory (MiB)', { name: 'memory', id: 'c-mem', type: 'number', min: 32, value: like.memory_mib || 256 }),
    field('Kernel', { name: 'kernel', id: 'c-kernel', required: true, value: like.kernel || '' }),
    field('Initrd', { name: 'initrd', id: 'c-initrd', value: like.initrd || '' }),
    field('Kernel command line', { name: 'cmdline', id: 'c-cmdline', value: like.cmdline || '' }),
    h('label', {}, 'Network', net),
    h('label', {}, 'Display', h('select', { name: 'display', id: 'c-display' },
      h('option', { value: 'none', text: 'none (serial console only)' }), h('option', { value: 'vnc', text: 'VNC (virtio-gpu, keyboard and tablet)' }))),
    h('label', {}, 'Restart', h('select', { name: 'restart', id: 'c-restart' },
      ...['never', 'on-crash', 'always'].map((r) => h('option', { value: r, text: r })))),
    h('label.check', {}, h('input', { type: 'checkbox', name: 'autostart', id: 'c-autostart' }), 'Start with plinthd'),
    h('label.check', {}, h('input', { type: 'checkbox', name: 'ha', id: 'c-ha' }), 'HA: restarted on another host if its host fails'),
    field('Anti-affinity group (never on one host with another VM of the group)', { name: 'anti_affinity', id: 'c-anti', pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}' }),
    status,
    h('button', { type: 'submit', id: 'c-submit' }, 'Create'));
  Promise.all([api('GET', '/v1/images'), api('GET', '/v1/networks')]).then(([im, nw]) => {
    const imgs = im.images.filter((i) => !i.used_by || i.template);
    base.replaceChildren(...imgs.map((i) => h('option', { value: i.name, text: `${i.name}${i.template ? ' (template)' : ''}, ${bytes(i.size)} ${i.format}` })));
    if (!imgs.length) status.textContent = 'The pool has no image to clone: import one first (plinth image import).';
    net.append(...nw.networks.map((n) => h('option', { value: n.name, text: n.name })));
  }).catch((e) => notice(e.message));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = form.name.value.trim();
    const disk = `${name}-disk`;
    const btn = $('c-submit');
    btn.disabled = true;
    try {
      status.textContent = `Cloning ${form.base.value} into ${disk}...`;
      const c = await api('POST', `/v1/images/${encodeURIComponent(form.base.value)}/clone`, { name: disk, linked: form.linked.checked });
      if (c.id !== undefined && c.state) {
        const t = await waitTask(c.id);
        if (t.state !== 'done') throw new Error(`The clone ${t.state}${t.error ? `: ${t.error}` : ''}.`);
      }
      status.textContent = `Defining ${name}...`;
      const def = { name, cpus: Number(form.cpus.value), memory_mib: Number(form.memory.value),
        kernel: form.kernel.value.trim(), disks: [{ image: disk }] };
      if (form.initrd.value.trim()) def.initrd = form.initrd.value.trim();
      if (form.cmdline.value.trim()) def.cmdline = form.cmdline.value.trim();
      if (form.network.value) def.nics = [{ network: form.network.value }];
      if (form.display.value !== 'none') def.display = form.display.value;
      if (form.restart.value !== 'never') def.restart = form.restart.value;
      if (form.autostart.checked) def.autostart = true;
      if (form.ha.checked) def.ha = true;
      if (form.anti_affinity.value.trim()) def.anti_affinity = form.anti_affinity.value.trim();
      try {
        await api('POST', '/v1/vms', def);
      } catch (e) {
        throw new Error(`The disk ${disk} was made, but the VM was not: ${e.message}`);
      }
      notice(`Created ${name}.`, 'ok');
      location.hash = `#/vm/${encodeURIComponent(name)}`;
    } catch (e) {
      status.textContent = '';
      notice(e.message);
    } finally {
      btn.disabled = false;
    }
  });
  return { nav: 'create', el: form, refresh: () => {} };
}

/* --- start ------------------------------------------------------------------------ */

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
  $('logout').addEventListener('click', logout);
  const r = await fetch('/web/session', { credentials: 'same-origin' }).catch(() => null);
  if (r && r.ok) startSession(await r.json());
  else showLogin(r ? '' : 'plinthd did not answer; is it still running?');
});
