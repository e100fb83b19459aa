// TAP lines for the browser tests: tap(PREFIX) gives ok(cond, name, detail), which
// prints "ok - PREFIX: name" (or "not ok" and the detail as comments), check(name, fn),
// which runs fn (true: passed; a string: failed, saying why; a throw: failed) and goes
// on, and failures(), the count so far.
'use strict';

function tap(prefix) {
  let failed = 0;
  function ok(cond, name, detail) {
    console.log(`${cond ? 'ok' : 'not ok'} - ${prefix}: ${name}`);
    if (!cond) {
      failed++;
      if (detail !== undefined) console.log(`# ${String(detail).split('\n').join('\n# ')}`);
    }
    return cond;
  }
  async function check(name, fn) {
    try {
      const r = await fn();
      if (r !== undefined) ok(r === true, name, r);
    } catch (e) {
      ok(false, name, e.stack || e);
    }
  }
  return { ok, check, failures: () => failed };
}

module.exports = { tap };
