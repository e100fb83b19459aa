// The WebSocket side of tests/integration/web-display.sh: log in, define and start the
// VM (VM_DEF) through the web session, then speak RFB 3.8 over /web/display/d1 through
// plinthd to plinth's VNC server. Prints "# figure:" lines; exit 1 with the reason.
'use strict';
const path = require('path');
const { client, waitFor } = require(path.join(__dirname, '../browser/client.cjs'));

const URL1 = process.env.URL1;
const { request, loginApi, ticket, wsOpen } = client(URL1);

async function rfb(s) {
  const c = await wsOpen((await ticket(s, 'd1', 'display')).url, { Cookie: s.cookie, Origin: URL1 });
  if (c.status !== 101) throw new Error(`display refused: ${c.status} ${c.body}`);
  const ws = c.ws;
  const take = async (n, ms = 30000) => {
    await waitFor(() => ws.buf.length >= n || ws.closed, `${n} RFB bytes`, ms);
    if (ws.buf.length < n) throw new Error(`the display closed: ${JSON.stringify(ws.closed)}`);
    const b = ws.buf.subarray(0, n);
    ws.buf = ws.buf.subarray(n);
    return b;
  };
  const version = String(await take(12));
  ws.send(Buffer.from('RFB 003.008\n'));
  const types = await take((await take(1))[0]);
  if (!types.includes(1)) throw new Error(`no security type None: ${types.toString('hex')}`);
  ws.send(Buffer.from([1]));
  if ((await take(4)).readUInt32BE(0) !== 0) throw new Error('security None failed');
  ws.send(Buffer.from([1]));
  const init = await take(24);
  await take(init.readUInt32BE(20));
  const w = init.readUInt16BE(0);
  const h = init.readUInt16BE(2);
  const bpp = init[4] / 8;
  // One full frame, raw (no SetEncodings: raw is what a server sends then): the count
  // of pixels that are not black.
  const frame = async () => {
    ws.send(Buffer.from([3, 0, 0, 0, 0, 0, w >> 8, w & 255, h >> 8, h & 255]));
    let area = 0;
    let lit = 0;
    while (area < w * h) {
      const head = await take(4);
      if (head[0] !== 0) throw new Error(`message ${head[0]} instead of a frame`);
      for (let n = head.readUInt16BE(2); n > 0; n--) {
        const r = await take(12);
        const rw = r.readUInt16BE(4);
        const rh = r.readUInt16BE(6);
        if (r.readInt32BE(8) !== 0) throw new Error(`encoding ${r.readInt32BE(8)}, not raw`);
        const px = await take(rw * rh * bpp);
        for (let i = 0; i < px.length; i += bpp) if (px[i] | px[i + 1] | px[i + 2]) lit++;
        area += rw * rh;
      }
    }
    return lit;
  };
  return { ws, version, w, h, frame };
}

(async () => {
  const admin = await loginApi('admin', 'admin-password');
  let r = await request('POST', '/v1/vms', { cookie: admin.cookie, csrf: admin.csrf, body: JSON.parse(process.env.VM_DEF) });
  if (r.status !== 201) throw new Error(`define: ${r.status} ${r.body}`);
  const t0 = Date.now();
  r = await request('POST', '/v1/vms/d1/start', { cookie: admin.cookie, csrf: admin.csrf, body: {} });
  if (r.status !== 202) throw new Error(`start: ${r.status} ${r.body}`);
  for (let end = Date.now() + 120000; ; await new Promise((res) => setTimeout(res, 300))) {
    const st = JSON.parse((await request('GET', '/v1/vms/d1', { cookie: admin.cookie })).body).state;
    if (st === 'running') break;
    if (Date.now() > end) throw new Error(`d1 is ${st}, not running, after 120 s`);
  }
  const a = await rfb(admin);
  let lit = 0;
  const deadline = Date.now() + 180000;
  while (!(lit = await a.frame()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 1000));
  console.log(`# figure: first frame that is not black through plinthd's WebSocket ${Date.now() - t0} ms after the start request (${a.w}x${a.h}, ${lit} pixels lit; emulated host)`);
  if (a.version !== 'RFB 003.008\n' || a.w !== 1024 || a.h !== 768 || !lit) throw new Error(`version ${a.version}, ${a.w}x${a.h}, ${lit} lit`);

  // A viewer: its key event is left out, its frame request answered after it.
  const viewer = await loginApi('viewer', 'viewer-password');
  const v = await rfb(viewer);
  v.ws.send(Buffer.from([4, 1, 0, 0, 0, 0, 0, 0x61, 4, 0, 0, 0, 0, 0, 0, 0x61]));
  if (!await v.frame()) throw new Error('the viewer\'s frame is black');
  v.ws.close();
  const ev = JSON.parse((await request('GET', '/v1/events?after=0&limit=1000', { cookie: admin.cookie })).body).events;
  if (!ev.some((e) => e.action === 'vm.display' && e.actor === 'user viewer' && /watch only/.test(e.message))) throw new Error('no vm.display event of the viewer');

  r = await request('POST', '/v1/vms/d1/stop', { cookie: admin.cookie, csrf: admin.csrf, body: { timeout: 5 } });
  await waitFor(() => a.ws.closed, 'the display\'s close', 60000);
  if (a.ws.closed.code !== 1000 || a.ws.closed.reason !== 'The VM stopped: its display is gone.') throw new Error(`close ${JSON.stringify(a.ws.closed)}`);
  console.log('# the display closed with: ' + a.ws.closed.reason);
  process.exit(0);
})().catch((e) => { console.log(`error: ${e.stack || e}`); process.exit(1); });
