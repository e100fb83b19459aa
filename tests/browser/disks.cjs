// Disks attached to and detached from a running VM from its page (tests/browser/run
// starts plinthd and the running VM con1 under the fake VMM, which answers plinth's
// hot-plug routes and "ejects" a disk 0.2 s after it is asked to): an operator adds a
// pool image (the row shows its id and the slot the VMM chose) and removes it again
// (after the confirmation); a viewer has neither control. One TAP line per check.
'use strict';
const path = require('path');
const nm = path.join(__dirname, '../../web/node_modules');
const puppeteer = require(path.join(nm, 'puppeteer-core'));

const URL1 = process.env.PLINTH_URL;
const OUT = process.env.OUT;
const VM = 'con1';
const { check, failures } = require('./tap.cjs').tap('web disks');
const { pageOfVm } = require('./client.cjs').client(URL1);
const { launch } = require('./client.cjs');

const rows = (page) => page.$$eval('#vm-disks tbody tr', (trs) => trs.map((tr) => tr.textContent));

(async () => {
  const browser = await launch(puppeteer);
  let a = null;

  await check('an operator attaches a pool image to the running VM: its row has the id and slot', async () => {
    a = await pageOfVm(browser, 'oper', 'operator-password', VM);
    await a.page.waitForFunction(() => document.querySelector('#d-image option[value="base"]'), { timeout: 10000 });
    await a.page.type('#d-id', 'web-data');
    await a.page.select('#d-image', 'base');
    await a.page.locator('#d-readonly').click();
    await a.page.locator('#d-add').click();
    await a.page.waitForFunction(() => document.querySelector('#vm-disks button.disk-remove[data-id="web-data"]'), { timeout: 10000 });
    const r = await rows(a.page);
    await a.page.screenshot({ path: path.join(OUT, 'disks-added.png') });
    return (r.length === 1 && /image base, read-only/.test(r[0]) && /web-data, 1/.test(r[0])) || `rows: ${JSON.stringify(r)}`;
  });
  await check('an id in use is refused with the daemon\'s sentence, and nothing changes', async () => {
    await a.page.type('#d-id', 'web-data');
    await a.page.locator('#d-add').click();
    await a.page.waitForFunction(() => /has a device with id web-data already/.test(document.querySelector('#notice').textContent), { timeout: 10000 });
    const r = await rows(a.page);
    return r.length === 1 || `rows: ${JSON.stringify(r)}`;
  });
  await check('a viewer sees the disk but neither control', async () => {
    const v = await pageOfVm(browser, 'viewer', 'viewer-password', VM);
    await v.page.waitForFunction(() => /web-data, 1/.test(document.querySelector('#vm-disks tbody').textContent), { timeout: 10000 });
    const hidden = await v.page.$eval('#disk-add', (f) => f.hidden);
    const buttons = await v.page.$$('#vm-disks button.disk-remove');
    await v.ctx.close();
    return (hidden && buttons.length === 0) || `form hidden ${hidden}, ${buttons.length} Remove buttons`;
  });
  await check('Remove (confirmed) detaches it once the guest ejected it', async () => {
    await a.page.locator('#vm-disks button.disk-remove[data-id="web-data"]').click();
    await a.page.locator('#confirm-ok').click();
    await a.page.waitForFunction(() => /Detached web-data/.test(document.querySelector('#notice').textContent), { timeout: 10000 });
    await a.page.waitForFunction(() => !document.querySelector('#vm-disks button.disk-remove'), { timeout: 5000 }).catch(() => {});
    const r = await rows(a.page);
    return (r.length === 1 && /none/.test(r[0])) || `rows: ${JSON.stringify(r)}`;
  });
  await check('no errors in the page', async () => (!a || !a.page.errors.length) || a.page.errors.join('\n'));
  await browser.close();
  process.exit(failures() ? 1 : 0);
})().catch((e) => {
  console.log(`not ok - web disks: the test ran to the end\n# ${e.stack || e}`);
  process.exit(1);
});
