// The web console's browser tests (tests/browser/run sets the environment): Debian's
// Chromium, headless, through puppeteer-core. One TAP line per check, screenshots of
// each page into $OUT, figures on "# figure:" lines.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const { execFileSync } = require('child_process');
const puppeteer = require(path.join(__dirname, '../../web/node_modules/puppeteer-core'));

const URL1 = process.env.PLINTH_URL;
const URL_IDLE = process.env.PLINTH_URL_IDLE;
const OUT = process.env.OUT;
const TMP = process.env.PLINTH_TMP;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const { ok, check, failures } = require('./tap.cjs').tap('web');

// A raw HTTPS request to plinthd (no browser): { status, body }.
function request(base, method, p, { cookie, headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, base);
    const h = { ...headers };
    if (cookie) h.Cookie = cookie;
    if (body !== undefined) { h['Content-Type'] = 'application/json'; }
    const req = https.request(u, { method, headers: h, rejectUnauthorized: false }, (res) => {
      let data = '';
      if ((res.headers['content-type'] || '').startsWith('text/event-stream')) {
        // a stream: its first bytes are enough
        res.once('data', (d) => { req.destroy(); resolve({ status: res.statusCode, body: String(d), headers: res.headers }); });
        return;
      }
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: data, headers: res.headers }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no answer in 10 s`)));
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

async function loginApi(base, user, password) {
  const r = await request(base, 'POST', '/web/login', { body: { user, password } });
  if (r.status !== 200) throw new Error(`log-in of ${user}: ${r.status} ${r.body}`);
  const cookie = r.headers['set-cookie'][0].split(';')[0];
  return { cookie, csrf: JSON.parse(r.body).csrf, setCookie: r.headers['set-cookie'][0] };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: false });
}

async function login(page, base, user, password) {
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#login-form');
  await page.type('#login-user', user);
  await page.type('#login-password', password);
  await page.locator('#login-submit').click();
}

async function text(page, sel) {
  return page.$eval(sel, (e) => e.textContent);
}

// Wait until fn (in the page) is true; the reason on timeout.
async function until(page, fn, arg, what, ms = 15000) {
  try {
    await page.waitForFunction(fn, { timeout: ms, polling: 100 }, arg);
  } catch (e) {
    throw new Error(`waited ${ms} ms for ${what}`);
  }
}

async function vmState(page, name) {
  return page.evaluate((n) => {
    const r = document.querySelector(`tr[data-vm="${n}"] .state`);
    return r ? r.textContent : null;
  }, name);
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    acceptInsecureCerts: true, // plinthd's self-signed certificate
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--ignore-certificate-errors'],
  });
  const page = await browser.newPage();
  await page.setViewport(DESKTOP);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Answers >= 400 the checks provoke on purpose: a wrong password, the deleted VM,
  // the session after log-out. Any other is a fault of the page.
  const expected = [[401, '/web/login'], [404, '/v1/vms/web1'], [401, '/web/session'],
    [404, '/v1/vms/web2'], [404, '/v1/images/web2-disk']]; // the refused form's check asks for these
  const badAnswers = [];
  page.on('response', (r) => {
    const p = new URL(r.url()).pathname;
    if (r.status() >= 400 && !expected.some(([c, e]) => c === r.status() && e === p)) badAnswers.push(`${r.status()} ${r.url()}`);
  });

  // --- log in ---
  await check('the log-in page is shown without a session', async () => {
    await page.goto(URL1 + '/', { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#login-form', { timeout: 10000 });
    await shot(page, 'login');
    const header = await page.$eval('#top', (e) => e.getBoundingClientRect().height);
    return header === 0 || `the header is shown (${header} px) before the log-in`;
  });
  await check('a wrong password is refused with a sentence', async () => {
    await login(page, URL1, 'admin', 'not-the-password');
    await until(page, () => { const e = document.querySelector('.login p.error'); return e && !e.hidden && e.textContent; }, null, 'the error line');
    const t = await text(page, '.login p.error');
    await shot(page, 'login-wrong-password');
    return t === 'Wrong user name or password.' || `shown: ${t}`;
  });
  await check('the admin logs in and sees the inventory of 100 VMs', async () => {
    await page.goto(URL1 + '/', { waitUntil: 'domcontentloaded' });
    await login(page, URL1, 'admin', 'admin-password');
    await until(page, () => document.querySelectorAll('#vm-table tbody tr[data-vm]').length === 100, null, '100 rows');
    await shot(page, 'inventory');
    return (await text(page, '#who')) === 'admin (admin)' || 'header does not name the user';
  });
  await check('the filter narrows the inventory', async () => {
    await page.type('#filter', 'load09');
    await until(page, () => document.querySelectorAll('#vm-table tbody tr[data-vm]').length === 10, null, 'load090..load099');
    const names = await page.$$eval('#vm-table tbody tr[data-vm]', (rs) => rs.map((r) => r.dataset.vm));
    const count = await text(page, '.count');
    await page.select('#state-filter', 'running');
    await until(page, () => document.querySelectorAll('#vm-table tbody tr[data-vm]').length === 0, null, 'no running VM');
    const none = await text(page, '#vm-table tbody');
    await page.select('#state-filter', '');
    await page.$eval('#filter', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });
    return (names[0] === 'load090' && names[9] === 'load099' && count === '10 of 100' && none === 'No VM matches the filter.') ||
      `rows: ${names}, count ${count}, running: ${none}`;
  });

  // --- create a VM from a template (a linked clone) ---
  await check('a VM is created from a template as a linked clone', async () => {
    await page.goto(URL1 + '/#/create', { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelectorAll('#c-base option').length > 0, null, 'the image list');
    await page.type('#c-name', 'web1');
    await page.select('#c-base', 'base');
    await page.$eval('#c-kernel', (e, k) => { e.value = k; }, `${TMP}/vmlinuz`);
    await page.$eval('#c-mem', (e) => { e.value = '128'; });
    await page.select('#c-display', 'vnc');
    await page.select('#c-restart', 'on-crash');
    await page.$eval('#c-ha', (e) => { e.checked = true; });
    await page.type('#c-anti', 'web');
    await shot(page, 'create');
    await page.locator('#c-submit').click();
    await until(page, () => location.hash === '#/vm/web1', null, 'the VM page');
    await until(page, () => document.querySelector('#vm-disks td:nth-child(2)') &&
      document.querySelector('#vm-disks td:nth-child(2)').textContent.includes('web1-disk'), null, 'the disk row');
    const img = JSON.parse(execFileSync(path.join(__dirname, '../../build/plinth'),
      ['image', 'info', 'web1-disk', '--json', '--socket', process.env.PLINTH_SOCKET]));
    if (img.backing !== 'base' || img.format !== 'qcow2') return `web1-disk: ${JSON.stringify(img)}`;
    // The form's choices reach the definition, and the VM's page shows them.
    const def = await page.evaluate(() => fetch('/v1/vms/web1').then((r) => r.json()));
    const want = { display: 'vnc', restart: 'on-crash', ha: true, anti_affinity: 'web', memory_mib: 128 };
    const off = Object.entries(want).filter(([k, x]) => def[k] !== x);
    if (off.length || def.autostart) return `web1's definition: ${JSON.stringify(def)}`;
    await until(page, () => /Anti-affinityweb/.test(document.querySelector('.vm dl.config').textContent), null, 'the anti-affinity row');
    return true;
  });
  await check('the create form refuses a bad anti-affinity group in one sentence, and makes nothing', async () => {
    await page.goto(URL1 + '/#/create', { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelectorAll('#c-base option').length > 0, null, 'the image list');
    await page.type('#c-name', 'web2');
    await page.$eval('#c-kernel', (e, k) => { e.value = k; }, `${TMP}/vmlinuz`);
    await page.type('#c-anti', 'bad group!');
    await page.locator('#c-submit').click();
    await new Promise((r) => setTimeout(r, 300));
    const invalid = await page.$eval('#c-anti', (e) => !e.validity.valid && e.validationMessage !== '');
    const made = await page.evaluate(() => Promise.all(['/v1/vms/web2', '/v1/images/web2-disk'].map((u) => fetch(u).then((r) => r.status))));
    await page.goto(URL1 + '/#/vm/web1', { waitUntil: 'domcontentloaded' }); // the checks below act on web1
    await until(page, () => { const b = document.querySelector('#act-start'); return b && !b.disabled; }, null, 'web1\'s page');
    return (invalid && made[0] === 404 && made[1] === 404) || `invalid ${invalid}, VM and disk: ${made}`;
  });

  // --- start and stop (the fake VMM: no KVM on this machine) ---
  await check('start: the state goes to running, pushed live', async () => {
    await page.locator('#act-start').click();
    await until(page, () => { const b = document.querySelector('.vm .bar .state'); return b && b.textContent === 'running'; }, null, 'running', 30000);
    await shot(page, 'vm-running');
    return (await page.$eval('#act-start', (b) => b.disabled)) || 'start still enabled while running';
  });
  await check('stop: the state goes to stopped', async () => {
    await page.locator('#act-stop').click();
    await until(page, () => { const b = document.querySelector('.vm .bar .state'); return b && b.textContent === 'stopped'; }, null, 'stopped', 40000);
    return true;
  });
  await check('the VM page lists its events, by the user', async () => {
    await until(page, () => [...document.querySelectorAll('#vm-events tbody tr')].some((r) => r.textContent.includes('vm.start')), null, 'a vm.start row');
    const rows = await page.$$eval('#vm-events tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    await shot(page, 'vm-stopped');
    const start = rows.find((r) => r[2] === 'vm.start');
    return (start && start[1] === 'user admin') || `rows: ${JSON.stringify(rows)}`;
  });
  await check('the event log shows log-in, clone, define and start with the user', async () => {
    await page.goto(URL1 + '/#/events', { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelectorAll('#event-log tbody tr').length > 3, null, 'event rows');
    const rows = await page.$$eval('#event-log tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    await shot(page, 'events');
    const has = (action, object) => rows.some((r) => r[1] === 'user admin' && r[2] === action && r[3] === object);
    const want = [['web.login', 'admin'], ['image.clone', 'web1-disk'], ['vm.start', 'web1']];
    const missing = want.filter(([a, o]) => !has(a, o));
    const failedLogin = rows.some((r) => r[2] === 'web.login' && r[4] === 'failed');
    return (!missing.length && failedLogin) || `missing ${JSON.stringify(missing)}, failed log-in ${failedLogin}`;
  });
  await check('delete asks first: Cancel keeps the VM, Delete removes it', async () => {
    await page.goto(URL1 + '/#/vm/web1', { waitUntil: 'domcontentloaded' });
    await until(page, () => { const b = document.querySelector('#act-delete'); return b && !b.disabled; }, null, 'delete enabled');
    await page.locator('#act-delete').click();
    await page.waitForSelector('#confirm[open]');
    await shot(page, 'delete-confirm');
    await page.locator('#confirm button[value="cancel"]').click();
    await new Promise((r) => setTimeout(r, 500));
    const kept = await page.evaluate(() => fetch('/v1/vms/web1').then((r) => r.status));
    if (kept !== 200) return `after Cancel: ${kept}`;
    await page.locator('#act-delete').click();
    await page.waitForSelector('#confirm[open]');
    await page.locator('#confirm-ok').click();
    await until(page, () => location.hash === '#/', null, 'back to the inventory');
    const gone = await page.evaluate(() => fetch('/v1/vms/web1').then((r) => r.status));
    return gone === 404 || `after Delete: ${gone}`;
  });
  await check('a full copy is a task: the tasks panel shows its progress bar to 100%', async () => {
    await page.goto(URL1 + '/#/create', { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelectorAll('#c-base option').length > 0, null, 'the image list');
    await page.type('#c-name', 'full1');
    await page.select('#c-base', 'base');
    await page.$eval('#c-linked', (e) => { e.checked = false; });
    await page.$eval('#c-kernel', (e, k) => { e.value = k; }, `${TMP}/vmlinuz`);
    await page.locator('#c-submit').click();
    await until(page, () => location.hash === '#/vm/full1', null, 'the VM page', 60000);
    const early = await page.$eval('#vm-actions', (e) => e.textContent);
    if (/no VM/.test(early)) return `the new VM's page said: ${early}`;
    await until(page, () => document.querySelector('.vm .bar .state'), null, 'the new VM on its page');
    await until(page, () => [...document.querySelectorAll('#task-list li')].some((l) => l.textContent.includes('clone full1-disk') &&
      l.querySelector('progress') && l.querySelector('progress').value === 100 && l.textContent.includes('done')), null, 'a finished clone task');
    await shot(page, 'task');
    const img = JSON.parse(execFileSync(path.join(__dirname, '../../build/plinth'),
      ['image', 'info', 'full1-disk', '--json', '--socket', process.env.PLINTH_SOCKET]));
    // Leave the VM's page first: deleted behind its back, the page's next refresh would
    // rightly get a 404, which the console-errors check counts.
    await page.goto(URL1 + '/#/', { waitUntil: 'domcontentloaded' });
    const del = await page.evaluate(async () => {
      const t = (await (await fetch('/web/session')).json()).csrf;
      return (await fetch('/v1/vms/full1', { method: 'DELETE', headers: { 'X-CSRF-Token': t } })).status;
    });
    return (!img.backing && img.size === 64 * 1024 * 1024 && del === 200) || `full1-disk: ${JSON.stringify(img)}, delete ${del}`;
  });

  await check('the page works at phone width (no sideways scrolling)', async () => {
    await page.setViewport(PHONE);
    await page.goto(URL1 + '/#/', { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelectorAll('#vm-table tbody tr[data-vm]').length === 100, null, 'rows');
    await shot(page, 'phone-inventory');
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.goto(URL1 + '/#/vm/load001', { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelector('#act-start'), null, 'the VM page');
    await shot(page, 'phone-vm');
    const over2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.setViewport(DESKTOP);
    return (over <= 0 && over2 <= 0) || `overflow ${over} px (inventory), ${over2} px (VM page)`;
  });
  await check('log out ends the session', async () => {
    await page.locator('#logout').click();
    await page.waitForSelector('#login-form');
    const s = await page.evaluate(() => fetch('/web/session').then((r) => r.status));
    return s === 401 || `/web/session after log-out: ${s}`;
  });

  // --- a viewer ---
  await check('a viewer cannot press start, and the API refuses it too', async () => {
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    await p.setViewport(DESKTOP);
    await login(p, URL1, 'viewer', 'viewer-password');
    await until(p, () => document.querySelectorAll('#vm-table tbody tr[data-vm]').length === 100, null, 'rows');
    await p.goto(URL1 + '/#/vm/load001', { waitUntil: 'domcontentloaded' });
    await p.waitForSelector('#act-start');
    await shot(p, 'viewer-vm');
    const disabled = await p.$eval('#act-start', (b) => b.disabled);
    const create = await p.$eval('#nav-create', (a) => a.hidden);
    const forced = await p.evaluate(async () => {
      const s = await (await fetch('/web/session')).json();
      const r = await fetch('/v1/vms/load001/start', { method: 'POST', headers: { 'X-CSRF-Token': s.csrf } });
      return [r.status, (await r.json()).error];
    });
    await ctx.close();
    return (disabled && create && forced[0] === 403 && forced[1] === 'Your role (viewer) may not do that.') ||
      `button disabled ${disabled}, create hidden ${create}, forced start ${forced}`;
  });

  // --- an expired session (the second plinthd: --web-idle 2) ---
  await check('an expired session goes back to the log-in with a sentence', async () => {
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    await p.setViewport(DESKTOP);
    await login(p, URL_IDLE, 'oper', 'operator-password');
    await p.waitForSelector('#vm-table');
    await new Promise((r) => setTimeout(r, 3000));
    await p.evaluate(() => { location.hash = '#/events'; });
    await until(p, () => { const e = document.querySelector('.login p.error'); return e && !e.hidden; }, null, 'the log-in page');
    const t = await text(p, '.login p.error');
    const header = await p.$eval('#top', (e) => e.getBoundingClientRect().height);
    await shot(p, 'expired');
    await ctx.close();
    return (t === 'Your session has ended; log in again.' && header === 0) || `shown: ${t}, the header ${header} px high`;
  });

  // --- security ---
  await check('every endpoint refuses a request without a session (401)', async () => {
    const doc = fs.readFileSync(process.env.PLINTH_API_DOC, 'utf8');
    const eps = [];
    let cur = null;
    for (const line of doc.split('\n')) {
      let m;
      if ((m = line.match(/^ {2}(\/v1\/\S*):\s*$/))) cur = m[1];
      else if (cur && (m = line.match(/^ {4}(get|post|put|delete|patch):/))) eps.push([m[1].toUpperCase(), cur]);
      else if (/^\S/.test(line)) cur = null;
    }
    eps.push(['GET', '/web/session'], ['POST', '/web/logout'], ['GET', '/web/live']);
    const bad = [];
    for (const [method, p] of eps) {
      const u = p.replace('{name}', 'load001').replace('{id}', '1');
      const r = await request(URL1, method, u, method === 'GET' ? {} : { body: {} });
      if (r.status !== 401) bad.push(`${method} ${u}: ${r.status}`);
      const f = await request(URL1, method, u, { cookie: '__Host-plinth=' + 'f'.repeat(64), ...(method === 'GET' ? {} : { body: {} }) });
      if (f.status !== 401) bad.push(`${method} ${u} (made-up session): ${f.status}`);
    }
    console.log(`# ${eps.length} endpoints checked`);
    return (eps.length >= 25 && !bad.length) || `${eps.length} endpoints; accepted: ${bad.join('; ')}`;
  });
  await check('a change without the CSRF token is refused (403)', async () => {
    const s = await loginApi(URL1, 'oper', 'operator-password');
    const r = await request(URL1, 'POST', '/v1/vms/load001/start', { cookie: s.cookie, body: {} });
    const g = await request(URL1, 'GET', '/v1/vms/load001', { cookie: s.cookie });
    return (r.status === 403 && g.status === 200) || `without token ${r.status}, a read ${g.status}`;
  });
  await check('the session cookie is Secure, HttpOnly, SameSite=Strict', async () => {
    const s = await loginApi(URL1, 'viewer', 'viewer-password');
    const c = s.setCookie;
    return (/;\s*Secure/.test(c) && /;\s*HttpOnly/.test(c) && /SameSite=Strict/.test(c) && c.startsWith('__Host-')) || c;
  });
  await check('the live stream refuses another origin, even with a session (403)', async () => {
    const s = await loginApi(URL1, 'viewer', 'viewer-password');
    const own = await request(URL1, 'GET', '/web/live', { cookie: s.cookie, headers: { Origin: URL1 } });
    const evil = await request(URL1, 'GET', '/web/live', { cookie: s.cookie, headers: { Origin: 'https://evil.example' } });
    const site = await request(URL1, 'GET', '/web/live', { cookie: s.cookie, headers: { 'Sec-Fetch-Site': 'cross-site' } });
    return (own.status === 200 && own.body.startsWith('event: hello') && evil.status === 403 && site.status === 403) ||
      `own ${own.status}, evil origin ${evil.status}, cross-site ${site.status}`;
  });
  await check('a page of another origin cannot open the live stream', async () => {
    // The admin is logged in (cookies of 127.0.0.1); a page served from localhost
    // tries to read the stream with credentials.
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    await login(p, URL1, 'admin', 'admin-password');
    await p.waitForSelector('#vm-table');
    const srv = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end('<!doctype html><title>evil</title><p>evil</p>');
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const evilUrl = `http://localhost:${srv.address().port}/`;
    await p.goto(evilUrl);
    const got = await p.evaluate((target) => new Promise((resolve) => {
      const es = new EventSource(target + '/web/live', { withCredentials: true });
      const seen = [];
      es.addEventListener('vms', () => seen.push('vms'));
      es.addEventListener('hello', () => seen.push('hello'));
      es.onerror = () => { es.close(); resolve(['error', ...seen]); };
      setTimeout(() => { es.close(); resolve(['timeout', ...seen]); }, 5000);
    }), URL1);
    srv.close();
    await ctx.close();
    return (got[0] === 'error' && got.length === 1) || `the other origin got ${got}`;
  });
  await check('the log-in is rate-limited per address', async () => {
    const codes = [];
    for (let i = 0; i < 7; i++) {
      const r = await request(URL_IDLE, 'POST', '/web/login', { body: { user: 'admin', password: `guess-${i}` } });
      codes.push(r.status);
    }
    const last = await request(URL_IDLE, 'POST', '/web/login', { body: { user: 'admin', password: 'admin-password' } });
    return (codes.slice(0, 5).every((c) => c === 401) && codes[5] === 429 && last.status === 429 &&
      /try again in \d+ seconds/.test(JSON.parse(last.body).error)) || `codes ${codes}, then the right password: ${last.status}`;
  });
  await check('no errors in the browser console, no unexpected error answers', async () => {
    const real = consoleErrors.filter((e) => !/^Failed to load resource: the server responded with a status of/.test(e));
    return (!real.length && !badAnswers.length) || [...real, ...badAnswers].join('\n');
  });

  // --- figures ---
  await check('figures: first paint of the inventory (100 VMs) and page weight', async () => {
    const ctx = await browser.createBrowserContext();
    const p = await ctx.newPage();
    await p.setViewport(DESKTOP);
    await login(p, URL1, 'viewer', 'viewer-password');
    await p.waitForSelector('#vm-table');
    const runs = [];
    let weight = 0;
    for (let i = 0; i < 5; i++) {
      const sizes = new Map();
      const cdp = await p.createCDPSession();
      await cdp.send('Network.enable');
      cdp.on('Network.loadingFinished', (e) => sizes.set(e.requestId, e.encodedDataLength));
      await p.goto(URL1 + '/', { waitUntil: 'domcontentloaded' });
      await until(p, () => document.querySelectorAll('#vm-table tbody tr[data-vm]').length === 100, null, 'rows');
      const t = await p.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(() => {
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        resolve({ rows: performance.now(), fcp: fcp ? fcp.startTime : -1 });
      }, 0))));
      runs.push(t);
      weight = [...sizes.values()].reduce((a, b) => a + b, 0);
      await cdp.detach();
    }
    const rows = runs.map((r) => r.rows).sort((a, b) => a - b);
    // A load whose paint entry is not recorded yet (-1) is left out of the paint figure.
    const fcp = runs.map((r) => r.fcp).filter((x) => x > 0).sort((a, b) => a - b);
    const mid = (a) => a[Math.floor((a.length - 1) / 2)];
    const assets = await p.evaluate(() => performance.getEntriesByType('resource').map((r) => [r.name, r.encodedBodySize]));
    console.log(`# figure: inventory with 100 VMs, first contentful paint median ${mid(fcp).toFixed(0)} ms (min ${fcp[0].toFixed(0)}, max ${fcp[fcp.length - 1].toFixed(0)}, ${fcp.length} loads), 100 rows painted median ${rows[2].toFixed(0)} ms (min ${rows[0].toFixed(0)}, max ${rows[4].toFixed(0)}), 5 loads`);
    console.log(`# figure: page weight ${weight} bytes on the wire (HTML, CSS, JS, session and VM list; TLS records excluded)`);
    for (const [n, s] of assets) console.log(`#   ${n.replace(URL1, '')}: ${s} bytes`);
    await ctx.close();
    return rows[2] < 10000 || 'slower than 10 s';
  });

  await browser.close();
  console.log(`# screenshots in ${OUT}`);
  process.exit(failures() ? 1 : 0);
})().catch((e) => {
  console.log(`not ok - web: the browser test ran to the end\n# ${e.stack || e}`);
  process.exit(1);
});
