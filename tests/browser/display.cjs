// The VM's display in the web console's page (tests/browser/run starts plinthd and the
// running VM scr1, defined with "display": "vnc", under the fake VMM, whose minimal RFB
// server shows a 64x48 framebuffer in four coloured quadrants and records the key
// events it receives in DISPLAY_SOCKET.keys). Debian's Chromium through puppeteer-core
// (noVNC in the page), raw WebSockets through the ws package. One TAP line per check;
// figures on "# figure:" lines.
'use strict';
const fs = require('fs');
const path = require('path');
const nm = path.join(__dirname, '../../web/node_modules');
const puppeteer = require(path.join(nm, 'puppeteer-core'));

const URL1 = process.env.PLINTH_URL;
const OUT = process.env.OUT;
const VM = 'scr1';
const { check, failures } = require('./tap.cjs').tap('web display');

const { request, loginApi, wsOpen, ticket: ticketOf, pageOfVm } = require('./client.cjs').client(URL1);
const { waitFor, launch, rfbHandshake, keyEvent, fullFrame } = require('./client.cjs');
const ticket = (s, kind = 'display', vm = VM) => ticketOf(s, vm, kind);

async function openPage(browser, user, password) {
  const { ctx, page } = await pageOfVm(browser, user, password, VM);
  await page.waitForFunction(() => { const b = document.querySelector('#display-open'); return b && !b.disabled && !b.closest('section').hidden; }, { timeout: 10000 });
  return { ctx, page };
}

// The colours at the centres of the framebuffer's four quadrants, read from noVNC's
// canvas (null until it has the frame's size).
function quadrants(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#display-screen canvas');
    if (!c || c.width !== 64 || c.height !== 48) return null;
    const g = c.getContext('2d');
    return [[16, 12], [48, 12], [16, 36], [48, 36]].map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
  });
}
const PATTERN = JSON.stringify([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]);

const keysOf = (sock) => { try { return fs.readFileSync(`${sock}.keys`, 'utf8'); } catch (e) { return ''; } };

(async () => {
  const browser = await launch(puppeteer);
  const origin = { Origin: URL1 };
  const admin = await loginApi('admin', 'admin-password');
  const sock = JSON.parse((await request('GET', `/v1/vms/${VM}`, { cookie: admin.cookie })).body).display_socket;
  let a = null;

  await check('the VM page stays put when its charts arrive (the display and console below do not move under a pointer)', async () => {
    // The figures held back 1.5 s, so the page is measured with their frames empty.
    const { ctx, page } = await pageOfVm(browser, 'admin', 'admin-password', VM, async (p) => {
      await p.setRequestInterception(true);
      p.on('request', (r) => {
        if (r.isInterceptResolutionHandled()) return;
        if (r.url().includes('/web/stats/')) setTimeout(() => r.continue(), 1500);
        else r.continue();
      });
    }, false);
    const below = () => page.$eval('#vm-charts', (c) => {
      const r = c.closest('section').nextElementSibling.getBoundingClientRect();
      return `${r.top},${r.left}`;
    });
    await page.waitForFunction(() => { const c = document.querySelector('#vm-charts'); return c && c.dataset.state === 'loading' && document.querySelector('#act-start'); }, { timeout: 10000 });
    const before = await below();
    await page.waitForFunction(() => document.querySelector('#vm-charts').dataset.state === 'shown' && document.querySelector('#chart-cpu svg'), { timeout: 15000 });
    const after = await below();
    await ctx.close();
    return before === after || `the panel below the charts moved from ${before} to ${after}`;
  });
  await check('the display opens in the page and noVNC\'s canvas shows the VM\'s picture', async () => {
    a = await openPage(browser, 'admin', 'admin-password');
    const t0 = Date.now();
    await a.page.locator('#display-open').click();
    let q = null;
    await waitFor(() => { quadrants(a.page).then((x) => { q = x; }); return q && JSON.stringify(q) === PATTERN; }, 'the pattern on the canvas', 15000)
      .catch(async (e) => {
        const st = await a.page.$eval('#display-status', (x) => x.textContent).catch(() => '?');
        throw new Error(`${e.message}; the canvas shows ${JSON.stringify(q)}, the status says "${st}"`);
      });
    const ms = Date.now() - t0;
    const weight = await a.page.evaluate(() => performance.getEntriesByType('resource').filter((r) => r.name.includes('/static/vendor/novnc/'))
      .reduce((s, r) => ({ n: s.n + 1, wire: s.wire + r.transferSize, body: s.body + r.decodedBodySize }), { n: 0, wire: 0, body: 0 }));
    const status = await a.page.$eval('#display-status', (e) => e.textContent);
    console.log(`# figure: time to first frame (click on "Open the display" to the 4 quadrants read back from noVNC's canvas; ticket, noVNC's modules, WebSocket, RFB handshake, frame), ${ms} ms`);
    console.log(`# figure: noVNC fetched by the page when the display opens: ${weight.n} modules, ${weight.body} bytes (${weight.wire} bytes on the wire, gzip), none before`);
    await a.page.screenshot({ path: path.join(OUT, 'display.png') });
    return status === 'Connected.' || `status "${status}"`;
  });
  await check('a key pressed in the page reaches the VM\'s display server', async () => {
    await a.page.locator('#display-screen canvas').click();
    await a.page.keyboard.press('q');
    await waitFor(() => /key 1 0x71\nkey 0 0x71\n/.test(keysOf(sock)), 'the key events in the fake server', 5000)
      .catch((e) => { throw new Error(`${e.message}; it has ${JSON.stringify(keysOf(sock))}`); });
    return true;
  });
  await check('an operator\'s raw key event reaches it too (the path a viewer\'s is cut from)', async () => {
    const s = await loginApi('oper', 'operator-password');
    const c = await wsOpen((await ticket(s)).url, { Cookie: s.cookie, ...origin });
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    const rfb = await rfbHandshake(c.ws);
    c.ws.send(keyEvent(0x6f)); // 'o'
    await fullFrame(c.ws, rfb);
    await waitFor(() => keysOf(sock).includes('key 1 0x6f'), 'the operator\'s key', 5000);
    c.ws.close();
    return rfb.version === 'RFB 003.008\n' || `version ${rfb.version}`;
  });
  await check('a viewer sees the picture but its keys, pointer and clipboard do not reach the VM', async () => {
    const s = await loginApi('viewer', 'viewer-password');
    const c = await wsOpen((await ticket(s)).url, { Cookie: s.cookie, ...origin });
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    const rfb = await rfbHandshake(c.ws);
    // split across frames on purpose: the filter frames the stream, not the messages
    const key = keyEvent(0x76); // 'v'
    c.ws.send(key.subarray(0, 3));
    c.ws.send(Buffer.concat([key.subarray(3), Buffer.from([5, 1, 0, 10, 0, 10]), Buffer.from([6, 0, 0, 0, 0, 0, 0, 2]), Buffer.from('hi')]));
    const px = await fullFrame(c.ws, rfb); // answered after the dropped messages: they were framed
    await new Promise((r) => setTimeout(r, 300));
    const keys = keysOf(sock);
    c.ws.close();
    let pointer = '';
    try { pointer = fs.readFileSync(`${sock}.pointer`, 'utf8'); } catch (e) { /* none */ }
    return (px.length === 64 * 48 * 4 && !keys.includes('0x76') && !pointer.includes('pointer 1 10 10')) ||
      `frame ${px.length} bytes, keys ${JSON.stringify(keys)}, pointer ${JSON.stringify(pointer)}`;
  });
  await check('a viewer\'s page opens the display watch-only', async () => {
    const v = await openPage(browser, 'viewer', 'viewer-password');
    await v.page.locator('#display-open').click();
    await v.page.waitForFunction(() => /^Connected/.test(document.querySelector('#display-status').textContent), { timeout: 10000 });
    const status = await v.page.$eval('#display-status', (e) => e.textContent);
    await v.page.locator('#display-screen canvas').click();
    await v.page.keyboard.press('w');
    await new Promise((r) => setTimeout(r, 500));
    const errs = v.page.errors;
    await v.ctx.close();
    return (status === 'Connected (watch only: your role is viewer).' && !keysOf(sock).includes('0x77') && !errs.length) ||
      `status "${status}", keys ${JSON.stringify(keysOf(sock))}, errors ${errs}`;
  });
  await check('a display WebSocket is refused without a session, from another origin, without its own ticket', async () => {
    const other = await loginApi('oper', 'operator-password');
    const res = {};
    let t = await ticket(admin);
    res.noSession = (await wsOpen(t.url, { ...origin })).status;
    t = await ticket(admin);
    res.badOrigin = (await wsOpen(t.url, { Cookie: admin.cookie, Origin: 'https://evil.example' })).status;
    t = await ticket(admin);
    res.noOrigin = (await wsOpen(t.url, { Cookie: admin.cookie })).status;
    res.noTicket = (await wsOpen(`/web/display/${VM}`, { Cookie: admin.cookie, ...origin })).status;
    t = await ticket(admin);
    res.otherSession = (await wsOpen(t.url, { Cookie: other.cookie, ...origin })).status;
    t = await ticket(admin, 'console');
    res.consoleTicket = (await wsOpen(t.url.replace('/web/console/', '/web/display/'), { Cookie: admin.cookie, ...origin })).status;
    t = await ticket(admin, 'display', 'load001');
    const nodisp = await wsOpen(t.url, { Cookie: admin.cookie, ...origin });
    res.noDisplay = nodisp.status;
    res.ticketNoCsrf = (await request('POST', `/web/display/${VM}/ticket`, { cookie: admin.cookie })).status;
    const want = { noSession: 401, badOrigin: 403, noOrigin: 403, noTicket: 403, otherSession: 403, consoleTicket: 403,
      noDisplay: 409, ticketNoCsrf: 403 };
    const bad = Object.keys(want).filter((k) => res[k] !== want[k]);
    return (!bad.length && /no display, or is not running/.test(nodisp.body)) || `got ${JSON.stringify(res)}, ${nodisp.body}`;
  });
  await check('a stream that is not RFB 3.8 is closed with a sentence (1003)', async () => {
    const c = await wsOpen((await ticket(admin)).url, { Cookie: admin.cookie, ...origin });
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    c.ws.send(Buffer.from('RFB 003.003\n'));
    await waitFor(() => c.ws.closed, 'the close', 5000);
    return (c.ws.closed.code === 1003 && /3\.7 or 3\.8/.test(c.ws.closed.reason)) || `close ${JSON.stringify(c.ws.closed)}`;
  });
  await check('the VM stopping closes the page\'s display with a sentence', async () => {
    const r = await request('POST', `/v1/vms/${VM}/kill`, { cookie: admin.cookie, csrf: admin.csrf, body: {} });
    await a.page.waitForFunction(() => /^Display closed: /.test(document.querySelector('#display-status').textContent), { timeout: 10000 })
      .catch(() => {});
    const status = await a.page.$eval('#display-status', (e) => e.textContent);
    await a.page.screenshot({ path: path.join(OUT, 'display-closed.png') });
    return ((r.status === 200 || r.status === 202) && status === 'Display closed: The VM stopped: its display is gone.') ||
      `kill ${r.status} ${r.body}, status "${status}"`;
  });
  await check('no errors in the page', async () => (!a || !a.page.errors.length) || a.page.errors.join('\n'));
  await browser.close();
  process.exit(failures() ? 1 : 0);
})().catch((e) => {
  console.log(`not ok - web display: the test ran to the end\n# ${e.stack || e}`);
  process.exit(1);
});
