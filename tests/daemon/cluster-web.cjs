// The web console's WebSockets of VMs on another host (tests/daemon/cluster-forward.sh
// runs it against h2's web listener, PLINTH_URL, for VMs that h1 owns): TAP lines.
//   node cluster-web.cjs streams CONSOLE_VM DISPLAY_VM DISPLAY_SOCKET
//     the console carries the VM's output and delivers what is typed; the display
//     carries the VM's RFB (its picture) and an operator's keys, not a viewer's
//   node cluster-web.cjs hold VM
//     opens the console and prints "open", then the close's code and reason as JSON
//   node cluster-web.cjs down VM
//     the VM's host is down: the console's WebSocket closes with the sentence
'use strict';
const fs = require('fs');
const path = require('path');
const lib = path.join(__dirname, '../browser');
const { check, failures } = require(path.join(lib, 'tap.cjs')).tap('cluster-forward');
const { waitFor, rfbHandshake, keyEvent, fullFrame } = require(path.join(lib, 'client.cjs'));
const { loginApi, ticket, wsOpen } = require(path.join(lib, 'client.cjs')).client(process.env.PLINTH_URL);

const origin = { Origin: process.env.PLINTH_URL };
const [mode, vm, dvm, dsock] = process.argv.slice(2);

async function open(user, password, kind, name) {
  const s = await loginApi(user, password);
  const t = await ticket(s, name, kind);
  return wsOpen(t.url, { Cookie: s.cookie, ...origin });
}

const keysOf = () => { try { return fs.readFileSync(`${dsock}.keys`, 'utf8'); } catch (e) { return ''; } };

async function streams() {
  await check('a web console on h2 of h1\'s VM: its output (the scrollback), and what is typed reaches the VM', async () => {
    const t0 = Date.now();
    const c = await open('admin', 'admin-password', 'console', vm);
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    await waitFor(() => c.ws.out.includes('fake-plinth: started'), 'the scrollback', 5000);
    const t1 = Date.now();
    c.ws.send('typed on h2\n');
    await waitFor(() => c.ws.out.includes('fake-plinth: input: typed on h2'), 'the echo of the input', 5000)
      .catch((e) => { throw new Error(`${e.message}; got ${JSON.stringify(c.ws.out.slice(-300))}, texts ${JSON.stringify(c.ws.texts)}`); });
    console.log(`# figure: relayed console: log-in, ticket, WebSocket and the owner's stream to the scrollback ${t1 - t0} ms; a line typed to its echo ${Date.now() - t1} ms`);
    c.ws.close();
    return true;
  });
  await check('a web display on h2 of h1\'s VM: its picture, and an operator\'s key reaches its VNC server', async () => {
    const c = await open('admin', 'admin-password', 'display', dvm);
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    const rfb = await rfbHandshake(c.ws);
    c.ws.send(keyEvent(0x71)); // 'q'
    const px = await fullFrame(c.ws, rfb);
    await waitFor(() => keysOf().includes('key 1 0x71'), 'the key in the fake server', 5000);
    c.ws.close();
    // 32-bit little-endian pixels, red at bits 16-23: the top left quadrant is red
    return (rfb.version === 'RFB 003.008\n' && rfb.w === 64 && px[2] === 255 && px[1] === 0 && px[0] === 0) ||
      `version ${JSON.stringify(rfb.version)}, ${rfb.w}x${rfb.h}, first pixel ${px.subarray(0, 4).toString('hex')}`;
  });
  await check('... a viewer\'s display through h2 is filtered there: the picture, never its keys', async () => {
    const c = await open('viewer', 'viewer-password', 'display', dvm);
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    const rfb = await rfbHandshake(c.ws);
    c.ws.send(keyEvent(0x76)); // 'v'
    await fullFrame(c.ws, rfb); // answered after the key: it went through the filter
    await new Promise((r) => setTimeout(r, 300));
    c.ws.close();
    return !keysOf().includes('0x76') || `the VM got ${JSON.stringify(keysOf())}`;
  });
}

async function down() {
  await check('the VM\'s host down: the console\'s WebSocket opens and closes with the one sentence', async () => {
    const c = await open('admin', 'admin-password', 'console', vm);
    if (c.status !== 101) return `open: ${c.status} ${c.body}`;
    await waitFor(() => c.ws.closed, 'the close', 5000);
    return (c.ws.closed.code === 1001 && c.ws.closed.reason === 'The VM\'s host is down.') ||
      JSON.stringify(c.ws.closed);
  });
}

async function hold() {
  const c = await open('admin', 'admin-password', 'console', vm);
  if (c.status !== 101) throw new Error(`open: ${c.status} ${c.body}`);
  console.log('open');
  await waitFor(() => c.ws.closed, 'the close', 60000);
  console.log(JSON.stringify(c.ws.closed));
}

({ streams, down, hold })[mode]().then(() => process.exit(failures() ? 1 : 0),
  (e) => { console.log(`# ${e}`); process.exit(1); });
