// The VM's serial console in the web console's page (tests/browser/run starts plinthd
// and the running VM con1 under the fake VMM, which echoes each typed byte like a
// terminal and answers each line with "fake-plinth: input: LINE"). Debian's Chromium,
// headless, through puppeteer-core; raw WebSockets through the ws package (both pinned
// in web/package-lock.json). One TAP line per check; the latency on a "# figure:" line.
'use strict';
const path = require('path');
const crypto = require('crypto');
const nm = path.join(__dirname, '../../web/node_modules');
const puppeteer = require(path.join(nm, 'puppeteer-core'));

const URL1 = process.env.PLINTH_URL;
const OUT = process.env.OUT;
const VM = 'con1';
const KEYS = 50; // keystrokes timed
const { ok, check, failures } = require('./tap.cjs').tap('web console');

const { request, loginApi, wsOpen, ticket: ticketOf, pageOfVm } = require('./client.cjs').client(URL1);
const { waitFor, launch } = require('./client.cjs');
const ticket = (s, vm = VM) => ticketOf(s, vm, 'console');

// The terminal's visible text (xterm.js renders rows as DOM; spaces may be NBSP).
function termText(page) {
  return page.evaluate(() => {
    const r = document.querySelector('#console .xterm-rows');
    return r ? [...r.children].map((c) => c.textContent.replace(/\u00a0/g, ' ')).join('\n') : '';
  });
}

async function untilText(page, want, what, ms = 15000) {
  try {
    await page.waitForFunction((w) => {
      const r = document.querySelector('#console .xterm-rows');
      return r && [...r.children].some((c) => c.textContent.replace(/\u00a0/g, ' ').includes(w));
    }, { timeout: ms, polling: 'mutation' }, want);
  } catch (e) {
    throw new Error(`waited ${ms} ms for ${what} ("${want}") in the terminal; it shows:\n${await termText(page)}`);
  }
}

async function openConsole(browser, user, password) {
  const { ctx, page } = await pageOfVm(browser, user, password, VM);
  await page.waitForSelector('#console .xterm-rows');
  await page.waitForFunction(() => /^Connected/.test(document.querySelector('#console-status').textContent), { timeout: 10000 });
  return { ctx, page };
}

const median = (a) => { const s = a.slice().sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };

(async () => {
  const browser = await launch(puppeteer);
  let a = null;
  let b = null;
  const word = `hi-${crypto.randomInt(100000, 999999)}`;

  await check('the console opens in the page with the VM\'s scrollback', async () => {
    a = await openConsole(browser, 'admin', 'admin-password');
    await untilText(a.page, 'fake-plinth: started', 'the VMM\'s first line (the scrollback)');
    await a.page.screenshot({ path: path.join(OUT, 'console.png') });
    return true;
  });
  await check('typing in the page reaches the guest, and its output appears', async () => {
    await a.page.locator('#console .xterm').click();
    await a.page.keyboard.type(`echo ${word}`);
    await untilText(a.page, `echo ${word}`, 'the echo of the typed keys');
    await a.page.keyboard.press('Enter');
    await untilText(a.page, `fake-plinth: input: echo ${word}`, 'the guest\'s answer to the line');
    await a.page.screenshot({ path: path.join(OUT, 'console-typed.png') });
    return true;
  });
  await check('a second viewer (another user) sees the same console, and what the first types', async () => {
    b = await openConsole(browser, 'oper', 'operator-password');
    await untilText(b.page, `fake-plinth: input: echo ${word}`, 'the earlier line, from the scrollback');
    const word2 = `${word}-again`;
    await a.page.keyboard.type(`echo ${word2}`);
    await a.page.keyboard.press('Enter');
    await untilText(b.page, `fake-plinth: input: echo ${word2}`, 'the line the first viewer typed');
    await untilText(a.page, `fake-plinth: input: echo ${word2}`, 'the line in the first viewer');
    return true;
  });
  await check(`figure: keystroke-to-echo latency, median over ${KEYS} keystrokes`, async () => {
    await a.page.evaluate(() => {
      window.latency = { t0: 0, samples: [] };
      document.addEventListener('keydown', () => { window.latency.t0 = performance.now(); }, true);
    });
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    let typed = 'lat';
    await a.page.keyboard.type(typed);
    await untilText(a.page, typed, 'the marker');
    for (let i = 0; i < KEYS; i++) {
      const ch = letters[i % letters.length];
      typed += ch;
      const want = typed.slice(-60); // one terminal row holds it
      const wait = a.page.waitForFunction((w) => {
        const r = document.querySelector('#console .xterm-rows');
        if (!r || ![...r.children].some((c) => c.textContent.replace(/\u00a0/g, ' ').includes(w))) return false;
        window.latency.samples.push(performance.now() - window.latency.t0);
        return true;
      }, { timeout: 10000, polling: 'mutation' }, want);
      await a.page.keyboard.press(ch);
      await wait;
    }
    await a.page.keyboard.press('Enter');
    const s = await a.page.evaluate(() => window.latency.samples);
    const sorted = s.slice().sort((x, y) => x - y);
    console.log(`# figure: console keystroke-to-echo latency (keydown in the page to the echo drawn by xterm.js; Chromium -> plinthd WebSocket -> fake VMM -> console log -> back), median ${median(s).toFixed(1)} ms, min ${sorted[0].toFixed(1)}, p90 ${sorted[Math.floor(s.length * 0.9)].toFixed(1)}, max ${sorted[s.length - 1].toFixed(1)}, ${s.length} keystrokes`);
    return s.length === KEYS || `${s.length} samples`;
  });
  await check('the VM page charts its CPU and memory over the last hour (plots from plinthd\'s samples)', async () => {
    // plinthd samples every 5 s; two samples of the running VM give a CPU rate.
    await a.page.waitForFunction(() => {
      const c = document.querySelector('#chart-cpu');
      return c && c.querySelector('polyline, circle') && document.querySelector('#chart-mem polyline');
    }, { timeout: 30000, polling: 500 });
    const got = await a.page.evaluate(() => ({
      cpu: document.querySelector('#chart-cpu .key').dataset.now,
      mem: Number(document.querySelector('#chart-mem .key').dataset.now),
      memPoints: document.querySelector('#chart-mem polyline').getAttribute('points').split(' ').length,
      net: document.querySelector('#chart-net').textContent,
      disk: document.querySelectorAll('#chart-disk .key').length,
    }));
    await a.page.$eval('#vm-charts', (e) => e.scrollIntoView());
    await a.page.screenshot({ path: path.join(OUT, 'vm-charts.png') });
    const s = await loginApi('viewer', 'viewer-password');
    const api = JSON.parse((await request('GET', `/web/stats/${VM}`, { cookie: s.cookie })).body);
    const none = (await request('GET', '/web/stats/nosuchvm', { cookie: s.cookie })).status;
    const anon = (await request('GET', `/web/stats/${VM}`)).status;
    const last = api.points[api.points.length - 1];
    // The fake VMM is a Python process: tens of MiB resident, a little CPU.
    return (got.cpu !== '' && Number(got.cpu) >= 0 && got.mem > 1e6 && got.memPoints >= 2 && /no network interface/.test(got.net) &&
      got.disk === 2 && api.period_s === 5 && last.length === 7 && last[2] > 1 && none === 404 && anon === 401) ||
      `page ${JSON.stringify(got)}, api last point ${JSON.stringify(last)}, no VM ${none}, no session ${anon}`;
  });
  await check('a dropped console says why and reconnects by itself (a new ticket), and works again', async () => {
    // Wrap the page's WebSocket to hold the console's socket, open the console anew, then
    // drop its socket under it, as a failing network would.
    await a.page.evaluate((vm) => {
      const Orig = window.WebSocket;
      window.opened = [];
      window.WebSocket = class extends Orig {
        constructor(...args) { super(...args); window.opened.push(this); }
      };
      window.statuses = [];
      location.hash = '#/';
      setTimeout(() => { location.hash = `#/vm/${vm}`; }, 300);
    }, VM);
    await a.page.waitForFunction(() => window.opened.length === 1 && document.querySelector('#console-status') &&
      /^Connected/.test(document.querySelector('#console-status').textContent), { timeout: 10000 });
    await a.page.evaluate(() => {
      const st = document.querySelector('#console-status');
      new MutationObserver(() => window.statuses.push(st.textContent)).observe(st, { childList: true, characterData: true, subtree: true });
      window.opened[0].close(4000, 'test drop');
    });
    await a.page.waitForFunction(() => window.opened.length === 2 && window.opened[1].readyState === WebSocket.OPEN &&
      /^Connected/.test(document.querySelector('#console-status').textContent), { timeout: 10000 });
    const seen = await a.page.evaluate(() => window.statuses);
    await untilText(a.page, 'fake-plinth: started', 'the scrollback again');
    const word3 = `${word}-reconnected`;
    await a.page.locator('#console .xterm').click();
    await a.page.keyboard.type(`echo ${word3}`);
    await a.page.keyboard.press('Enter');
    await untilText(a.page, `fake-plinth: input: echo ${word3}`, 'the answer after the reconnect');
    return seen.some((t) => /^Console disconnected: .+ Reconnecting\.\.\.$/.test(t)) || `statuses: ${JSON.stringify(seen)}`;
  });
  await check('log-out in the page closes its console', async () => {
    await b.page.evaluate(() => {
      const orig = WebSocket.prototype.close;
      window.wsClosed = 0;
      WebSocket.prototype.close = function (...args) { window.wsClosed++; return orig.apply(this, args); };
    });
    await b.page.locator('#logout').click();
    await b.page.waitForSelector('#login-form');
    const closed = await b.page.evaluate(() => window.wsClosed);
    const gone = await b.page.$('#console');
    await b.ctx.close();
    return (closed === 1 && !gone) || `closed ${closed} sockets, terminal still there: ${!!gone}`;
  });

  // --- raw WebSockets: what the server itself enforces ---
  const origin = { Origin: URL1 };
  await check('the session\'s log-out closes an open console from the server side (1008)', async () => {
    const s = await loginApi('oper', 'operator-password');
    const t = await ticket(s);
    const c = await wsOpen(t.url, { Cookie: s.cookie, ...origin });
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    await waitFor(() => c.ws.out.includes('fake-plinth: started'), 'the scrollback');
    const t0 = Date.now();
    const r = await request('POST', '/web/logout', { cookie: s.cookie, csrf: s.csrf, body: {} });
    await waitFor(() => c.ws.closed, 'the close', 5000);
    const ms = c.ws.closed.at - t0;
    return (r.status === 200 && c.ws.closed.code === 1008 && /session has ended/.test(c.ws.closed.reason) && ms < 2000) ||
      `log-out ${r.status}, close ${JSON.stringify(c.ws.closed)} after ${ms} ms`;
  });
  await check('a WebSocket is refused without a session, from another origin, without a good ticket', async () => {
    const s = await loginApi('admin', 'admin-password');
    const other = await loginApi('oper', 'operator-password');
    const res = {};
    let t = await ticket(s);
    res.noSession = (await wsOpen(t.url, { ...origin })).status;
    res.fakeSession = (await wsOpen(t.url, { Cookie: '__Host-plinth=' + 'f'.repeat(64), ...origin })).status;
    t = await ticket(s);
    res.badOrigin = (await wsOpen(t.url, { Cookie: s.cookie, Origin: 'https://evil.example' })).status;
    t = await ticket(s);
    res.noOrigin = (await wsOpen(t.url, { Cookie: s.cookie })).status;
    res.noTicket = (await wsOpen(`/web/console/${VM}`, { Cookie: s.cookie, ...origin })).status;
    t = await ticket(s);
    res.otherSession = (await wsOpen(t.url, { Cookie: other.cookie, ...origin })).status;
    res.otherSessionAfter = (await wsOpen(t.url, { Cookie: s.cookie, ...origin })).status; // tried once: gone
    t = await ticket(s, 'load001');
    res.otherVm = (await wsOpen(t.url.replace('load001', VM), { Cookie: s.cookie, ...origin })).status;
    t = await ticket(s);
    const good = await wsOpen(t.url, { Cookie: s.cookie, ...origin });
    res.good = good.status;
    if (good.ws) good.ws.close();
    res.reused = (await wsOpen(t.url, { Cookie: s.cookie, ...origin })).status;
    res.ticketNoCsrf = (await request('POST', `/web/console/${VM}/ticket`, { cookie: s.cookie })).status;
    res.ticketNoVm = (await request('POST', '/web/console/nosuchvm/ticket', { cookie: s.cookie, csrf: s.csrf })).status;
    const want = { noSession: 401, fakeSession: 401, badOrigin: 403, noOrigin: 403, noTicket: 403, otherSession: 403,
      otherSessionAfter: 403, otherVm: 403, good: 101, reused: 403, ticketNoCsrf: 403, ticketNoVm: 404 };
    const bad = Object.keys(want).filter((k) => res[k] !== want[k]);
    return !bad.length || `got ${JSON.stringify(res)}`;
  });
  await check('a viewer watches but cannot type (told in one sentence)', async () => {
    const s = await loginApi('viewer', 'viewer-password');
    const t = await ticket(s);
    const c = await wsOpen(t.url, { Cookie: s.cookie, ...origin });
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    await waitFor(() => c.ws.out.includes('fake-plinth: started'), 'the scrollback');
    c.ws.send('echo from-viewer\r');
    await waitFor(() => c.ws.texts.length, 'an answer');
    await new Promise((r) => setTimeout(r, 500));
    c.ws.close();
    return (c.ws.texts[0].error === 'Your role (viewer) may watch this console, not type into it.' && !c.ws.out.includes('from-viewer')) ||
      `messages ${JSON.stringify(c.ws.texts)}, output has it: ${c.ws.out.includes('from-viewer')}`;
  });
  await check('a message larger than the limit closes the socket (1009), plinthd stays', async () => {
    const s = await loginApi('oper', 'operator-password');
    const t = await ticket(s);
    const c = await wsOpen(t.url, { Cookie: s.cookie, ...origin });
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    c.ws.send('x'.repeat(100000));
    await waitFor(() => c.ws.closed, 'the close', 5000);
    const after = await request('GET', '/web/session', { cookie: s.cookie });
    return (c.ws.closed.code === 1009 && after.status === 200) || `close ${JSON.stringify(c.ws.closed)}, then ${after.status}`;
  });
  await check('a page that does not read cannot make plinthd hold its output', async () => {
    // Many viewers that never read while the guest writes: plinthd's memory stays bounded
    // (output waits in the console log; at most 256 KiB queued per viewer).
    const s = await loginApi('admin', 'admin-password');
    const pid = Number(require('child_process').execFileSync('sh', ['-c', `pgrep -f -- "--web tcp:${new URL(URL1).host}" | head -n 1`]).toString());
    const rss = () => Number(require('fs').readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
    const stalled = [];
    for (let i = 0; i < 4; i++) {
      const t = await ticket(s);
      const c = await wsOpen(t.url, { Cookie: s.cookie, ...origin });
      if (c.status !== 101) return `open: ${c.status}`;
      c.ws._socket.pause(); // reads nothing from now on
      stalled.push(c.ws);
    }
    const before = rss();
    const w = await wsOpen((await ticket(s)).url, { Cookie: s.cookie, ...origin });
    const line = 'y'.repeat(3000) + '\r';
    for (let i = 0; i < 700; i++) w.ws.send(line); // about 4 MiB of output to each viewer
    w.ws.send('done-stalled\r'); // answered after all the others: input keeps its order
    await waitFor(() => w.ws.out.lastIndexOf('fake-plinth: input: done-stalled') > 0, 'the guest\'s answers', 120000);
    const grown = rss() - before;
    w.ws.close();
    for (const x of stalled) x.terminate();
    console.log(`# plinthd's resident memory grew ${grown} KiB while 4 stalled viewers were sent about 4 MiB each`);
    return grown < 8 * 1024 || `grew ${grown} KiB`;
  });

  await check('no errors in the pages', async () => {
    const errs = [...(a ? a.page.errors : [])];
    return !errs.length || errs.join('\n');
  });
  await browser.close();
  console.log(`# screenshots in ${OUT}`);
  process.exit(failures() ? 1 : 0);
})().catch((e) => {
  console.log(`not ok - web console: the test ran to the end\n# ${e.stack || e}`);
  process.exit(1);
});
