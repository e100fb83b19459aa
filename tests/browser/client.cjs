// What the browser tests do outside the browser, against plinthd's web listener at url:
// HTTPS requests, an API log-in (its cookie and CSRF token), console and display tickets,
// raw WebSockets (ws package, pinned in web/package-lock.json), a polling wait and an RFB
// client over a raw WebSocket (also tests/daemon/cluster-web.cjs).
'use strict';
const https = require('https');
const path = require('path');
const WebSocket = require(path.join(__dirname, '../../web/node_modules', 'ws'));

function client(url) {
  function request(method, p, { cookie, csrf, body } = {}) {
    return new Promise((resolve, reject) => {
      const h = {};
      if (cookie) h.Cookie = cookie;
      if (csrf) h['X-CSRF-Token'] = csrf;
      if (body !== undefined) h['Content-Type'] = 'application/json';
      const req = https.request(new URL(p, url), { method, headers: h, rejectUnauthorized: false }, (res) => {
        let data = '';
        res.on('data', (d) => { data += d; });
        res.on('end', () => resolve({ status: res.statusCode, body: data, headers: res.headers }));
      });
      req.on('error', reject);
      req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no answer in 10 s`)));
      if (body !== undefined) req.write(JSON.stringify(body));
      req.end();
    });
  }

  async function loginApi(user, password) {
    const r = await request('POST', '/web/login', { body: { user, password } });
    if (r.status !== 200) throw new Error(`log-in of ${user}: ${r.status} ${r.body}`);
    return { cookie: r.headers['set-cookie'][0].split(';')[0], csrf: JSON.parse(r.body).csrf };
  }

  // A one-time ticket of session s for VM vm's kind ('console' or 'display').
  async function ticket(s, vm, kind = 'console') {
    const r = await request('POST', `/web/${kind}/${vm}/ticket`, { cookie: s.cookie, csrf: s.csrf });
    if (r.status !== 200) throw new Error(`ticket: ${r.status} ${r.body}`);
    return JSON.parse(r.body);
  }

  // A raw WebSocket to plinthd: resolves { ws, status } once open, or { status, body }
  // when the upgrade is refused. Collects binary input (ws.out as text, ws.buf as
  // bytes), text messages (ws.texts, parsed) and the close (ws.closed).
  function wsOpen(urlPath, headers) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url.replace(/^https/, 'wss') + urlPath, { headers, rejectUnauthorized: false });
      ws.out = '';
      ws.buf = Buffer.alloc(0);
      ws.texts = [];
      ws.closed = null;
      ws.on('message', (d, binary) => {
        if (!binary) { ws.texts.push(JSON.parse(String(d))); return; }
        ws.out += d.toString('latin1');
        ws.buf = Buffer.concat([ws.buf, d]);
      });
      ws.on('close', (code, reason) => { ws.closed = { code, reason: String(reason), at: Date.now() }; });
      ws.on('open', () => resolve({ ws, status: 101 }));
      ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      ws.on('error', (e) => resolve({ status: 0, body: String(e) }));
    });
  }

  // A new browser context logged in as user, on VM vm's page; before(page), if given,
  // runs before the first request (and settle: false returns before the charts arrive).
  async function pageOfVm(browser, user, password, vm, before = null, settle = true) {
    const ctx = await browser.createBrowserContext();
    const page = await ctx.newPage();
    if (before) await before(page);
    await page.setViewport({ width: 1280, height: 800 });
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    await page.goto(url + '/', { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#login-form');
    await page.type('#login-user', user);
    await page.type('#login-password', password);
    await page.locator('#login-submit').click();
    await page.waitForSelector('#vm-table');
    await page.evaluate((v) => { location.hash = `#/vm/${v}`; }, vm);
    // The page settles before a test clicks in it (the charts' frames keep their size
    // as their figures arrive: the check "the VM page stays put..." holds them to it;
    // this wait keeps the other checks from failing for that reason too).
    if (settle) await page.waitForFunction(() => { const c = document.querySelector('#vm-charts'); return c && c.dataset.state !== 'loading'; }, { timeout: 10000 });
    return { ctx, page };
  }

  return { request, loginApi, ticket, wsOpen, pageOfVm };
}

// Debian's Chromium (CHROMIUM), headless, taking plinthd's self-signed certificate.
function launch(puppeteer) {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    acceptInsecureCerts: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--ignore-certificate-errors'],
  });
}

async function waitFor(fn, what, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`waited ${ms} ms for ${what}`);
}

// An RFB 3.8 client over a raw WebSocket, up to the first full frame (raw encoding,
// 32-bit pixels): resolves once the frame's last byte arrived.
async function rfbHandshake(ws) {
  const take = async (n) => {
    await waitFor(() => ws.buf.length >= n || ws.closed, `${n} RFB bytes`);
    if (ws.buf.length < n) throw new Error(`the display closed: ${JSON.stringify(ws.closed)}`);
    const b = ws.buf.subarray(0, n);
    ws.buf = ws.buf.subarray(n);
    return b;
  };
  const version = String(await take(12));
  ws.send(Buffer.from('RFB 003.008\n'));
  const n = (await take(1))[0];
  await take(n);
  ws.send(Buffer.from([1]));
  await take(4);
  ws.send(Buffer.from([1])); // ClientInit: shared
  const init = await take(24);
  await take(init.readUInt32BE(20));
  return { version, w: init.readUInt16BE(0), h: init.readUInt16BE(2), take };
}

function keyEvent(keysym) {
  const down = Buffer.from([4, 1, 0, 0, 0, 0, 0, 0]);
  down.writeUInt32BE(keysym, 4);
  const up = Buffer.from(down);
  up[1] = 0;
  return Buffer.concat([down, up]);
}

// A full-frame request; resolves when the frame (one raw rectangle) has come whole.
async function fullFrame(ws, rfb) {
  ws.send(Buffer.from([3, 0, 0, 0, 0, 0, 0, rfb.w, 0, rfb.h]));
  const head = await rfb.take(16);
  if (head[0] !== 0 || head.readUInt16BE(2) !== 1) throw new Error(`not a frame: ${head.toString('hex')}`);
  return rfb.take(rfb.w * rfb.h * 4);
}

module.exports = { client, waitFor, launch, rfbHandshake, keyEvent, fullFrame };
