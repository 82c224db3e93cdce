// End-to-end test of bootstrapd's operator page in real headless Chromium.
//
// It builds and starts the real daemon on loopback (no DHCP, TFTP on a free port), makes a MAC
// "discovered" by asking for its provision script, then clicks through the page: generator →
// /ipxe/ link → the script's kernel line; the farm id validation; the token (refused, then
// accepted); assigning the discovered node; its timeline and stuck badge; the kernels list;
// HTML in records shown as text; at farm scale (180 more MACs): the counts line, server-side
// search by MAC fragment and farm id, the stuck filter, sorting, pages, a shared link, a
// refresh that updates rows in place (open row, half-typed form, focus and position kept)
// and one without change (three 304s, under 1 KB); the boot and fleet bar charts; a phone
// screen; an axe-core accessibility audit. Every check reads the
// running daemon's real answers. A full-page screenshot goes to test/web/out/web.png, or to
// $SCREENSHOT (relative to the repository: SCREENSHOT=docs/web.png refreshes the docs).
//
// Environment: BOOTSTRAPD_IPXE_DIR (the five stock iPXE binaries; default <repo>/var/ipxe),
// CHROMIUM (default /usr/bin/chromium), KEEP_TMP=1 keeps the temp dir and the daemon's log,
// VERBOSE=1 prints the log even on success.
// Exit status 0 only when every check passed.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const ipxeDir = process.env.BOOTSTRAPD_IPXE_DIR || path.join(repo, 'var', 'ipxe');
// The /uefi/ stubs (make embed); the media links need them.
const embedDir = process.env.BOOTSTRAPD_IPXE_EMBED_DIR || path.join(repo, 'var', 'ipxe-embed');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
// Every run's picture differs (port, times), so the committed docs/web.png is only rewritten
// when asked (SCREENSHOT=docs/web.png): a test run leaves the work tree clean.
const screenshot = path.resolve(repo, process.env.SCREENSHOT || path.join('test', 'web', 'out', 'web.png'));

const DISCOVERED = '52:54:00:de:ad:01'; // asks for a script, gets assigned through the page
const BOOTED = '52:54:00:de:ad:02'; // a record made through the API, boots to the kernel
const STUCK = '52:54:00:de:ad:03'; // seeded: got its iPXE binary 20 minutes ago, then nothing
const HOSTILE_ARGS = '<img src=x onerror=window.__xss=1> <b>bold</b>';
const HOSTILE_DISPLAY = '<i>qa</i> (v3)';

let failures = 0;
let step = '';
function ok(cond, what) {
  if (cond) {
    console.log(`  ok   ${what}`);
  } else {
    failures++;
    console.log(`  FAIL ${what}`);
  }
  return cond;
}
function section(name) {
  step = name;
  console.log(`# ${name}`);
}

function freeTCPPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function freeUDPPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, what, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

async function main() {
  for (const f of ['ipxe-amd64.efi', 'ipxe-arm64.efi', 'snponly.efi', 'undionly.kpxe', 'ipxe.lkrn']) {
    if (!fs.existsSync(path.join(ipxeDir, f))) {
      throw new Error(`${ipxeDir}/${f} is missing: run \`make ipxe\` or set BOOTSTRAPD_IPXE_DIR`);
    }
  }
  if (!fs.existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install chromium`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrapd-web-'));
  const cleanups = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try { await c(); } catch (e) { console.log(`cleanup: ${e.message}`); }
    }
    if (process.env.KEEP_TMP) console.log(`temp dir kept: ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  };

  try {
    section('build and start bootstrapd');
    const bin = path.join(tmp, 'bootstrapd');
    execFileSync('go', ['build', '-o', bin, './cmd/bootstrapd'], { cwd: repo, stdio: 'inherit' });

    const kernels = path.join(tmp, 'kernels');
    fs.mkdirSync(path.join(kernels, 'net'), { recursive: true });
    // Not a real kernel: the page only lists it and the script only names it.
    fs.writeFileSync(path.join(kernels, 'zos-test.efi'), randomBytes(64 * 1024));
    fs.symlinkSync('../zos-test.efi', path.join(kernels, 'net', 'test.efi'));
    const token = randomBytes(24).toString('hex');
    const tokenFile = path.join(tmp, 'token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });

    const httpPort = await freeTCPPort();
    const tftpPort = await freeUDPPort();
    const base = `http://127.0.0.1:${httpPort}`;
    const config = path.join(tmp, 'appliance.yaml');
    fs.writeFileSync(config, [
      'http:',
      `  listen: "127.0.0.1:${httpPort}"`,
      'tftp:',
      `  listen: "127.0.0.1:${tftpPort}"`,
      'dhcp:',
      '  enabled: false',
      'paths:',
      `  data: ${JSON.stringify(path.join(tmp, 'data'))}`,
      `  kernels: ${JSON.stringify(kernels)}`,
      `  ipxe: ${JSON.stringify(ipxeDir)}`,
      `  ipxe_embed: ${JSON.stringify(embedDir)}`,
      'networks:',
      '  prod: "production (v3)"',
      '  test: "testing (v3)"',
      `  qa: ${JSON.stringify(HOSTILE_DISPLAY)}`,
      'admin:',
      `  socket: ${JSON.stringify(path.join(tmp, 'admin.sock'))}`,
      `  token_file: ${JSON.stringify(tokenFile)}`,
      'log:',
      '  level: debug',
      '',
    ].join('\n'));

    // The stuck node is written before the daemon opens the database (events.stuck_after is
    // at least a minute: waiting for it would make the test slow).
    fs.mkdirSync(path.join(tmp, 'data'), { recursive: true });
    execFileSync('go', ['run', './test/web/seed', '-db', path.join(tmp, 'data', 'bootstrapd.db'), '-mac', STUCK, '-ago', '20m'],
      { cwd: repo, stdio: 'inherit' });

    const logPath = path.join(tmp, 'bootstrapd.log');
    const logFd = fs.openSync(logPath, 'w');
    const daemon = spawn(bin, ['serve', '--config', config], { cwd: tmp, stdio: ['ignore', logFd, logFd] });
    let exited = null;
    daemon.on('exit', (code, sig) => { exited = { code, sig }; });
    cleanups.push(async () => {
      if (exited) return;
      daemon.kill('SIGTERM');
      for (let i = 0; i < 100 && !exited; i++) await sleep(100);
      if (!exited) daemon.kill('SIGKILL');
    });
    cleanups.push(() => {
      if (failures || process.env.VERBOSE) {
        console.log(`--- bootstrapd log (${logPath})`);
        console.log(fs.readFileSync(logPath, 'utf8').split('\n').slice(-60).join('\n'));
      }
    });
    await waitFor(async () => {
      if (exited) throw new Error(`bootstrapd exited (${JSON.stringify(exited)}): ${fs.readFileSync(logPath, 'utf8')}`);
      const r = await fetch(`${base}/healthz`);
      return r.ok;
    }, 'bootstrapd /healthz');
    ok(true, `bootstrapd answers on ${base}`);

    const auth = { Authorization: `Bearer ${token}` };
    const apiJSON = async (p, init = {}) => {
      const r = await fetch(base + p, { ...init, headers: { ...auth, ...(init.headers || {}) } });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    };

    section('traffic: a discovered node and a booted one');
    let r = await fetch(`${base}/provision/${DISCOVERED}?arch=x86_64-efi`);
    ok(r.ok, `GET /provision/${DISCOVERED} → ${r.status}`);
    const created = await apiJSON('/api/v1/nodes', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mac: BOOTED, network: 'test', farm: 3, args: HOSTILE_ARGS }),
    });
    ok(created.status === 201, `API: create ${BOOTED} with HTML in its args → ${created.status}`);
    r = await fetch(`${base}/provision/${BOOTED}`);
    const bootedScript = await r.text();
    ok(r.ok && bootedScript.includes('runmode=test farmer_id=3'), `GET /provision/${BOOTED} boots test farm 3`);
    r = await fetch(`${base}/kernel/net/test.efi?mac=${BOOTED}`);
    ok(r.ok && (await r.arrayBuffer()).byteLength === 64 * 1024, 'GET /kernel/net/test.efi sends the whole kernel');

    section('browser');
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    cleanups.push(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    // Chromium logs every 4xx as "Failed to load resource"; those are checked below by URL.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`console: ${m.text()}`);
    });
    const refused = [];
    page.on('response', (q) => {
      if (q.status() >= 400) refused.push(`${q.status()} ${q.request().method()} ${q.url().slice(base.length)}`);
    });
    // A reload cancels the old document's fetches still in flight (net::ERR_ABORTED);
    // that is the browser leaving the page, not the appliance failing. Each request
    // remembers which document sent it, so only those are forgiven.
    let documents = 0;
    const sentBy = new WeakMap();
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) documents++; });
    page.on('request', (q) => sentBy.set(q, documents));
    page.on('requestfailed', async (q) => {
      // A refused token is a 401 response, not a failed request; downloads we do not start.
      // Chromium ends a fetch answered without a body (the lists' 304 Not Modified) as
      // "failed" (net::ERR_ABORTED) after its response arrived: that one is an answer.
      const aborted = q.failure() && q.failure().errorText === 'net::ERR_ABORTED';
      // The abort can be reported just before the new document commits: decide a moment later.
      if (aborted) await new Promise((r) => setTimeout(r, 1000));
      if (aborted && sentBy.get(q) < documents) return;
      const r = await q.response().catch(() => null);
      if (r && r.status() === 304) return;
      pageErrors.push(`request failed: ${q.url()} ${q.failure() && q.failure().errorText}`);
    });
    const offsite = [];
    page.on('request', (q) => { if (!q.url().startsWith(base)) offsite.push(q.url()); });

    await page.goto(`${base}/`);
    await page.evaluate(() => document.addEventListener('securitypolicyviolation',
      (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)));
    ok((await page.title()) === 'bootstrapd', 'the page loads at /');

    section('generator');
    await page.waitForSelector('#gen-network option[value="test"]', { state: 'attached' });
    const options = await page.$$eval('#gen-network option', (os) => os.map((o) => [o.value, o.textContent]));
    ok(options.length === 3, `3 networks offered: ${JSON.stringify(options)}`);
    const qaOption = options.find((o) => o[0] === 'qa');
    ok(qaOption && qaOption[1].includes(HOSTILE_DISPLAY), 'a display name with HTML is shown as text');
    ok((await page.$$('#gen-network option i')).length === 0, 'no element made from a display name');
    ok(options.some((o) => o[0] === 'prod' && o[1].includes('no kernel')), 'prod, without net/prod.efi, is marked "no kernel"');

    await page.selectOption('#gen-network', 'test');
    await page.fill('#gen-farm', '42');
    await page.fill('#gen-args', 'console=ttyS0');
    await page.waitForSelector('#gen-links:not([hidden])');
    const hrefs = await page.$$eval('#gen-links a', (as) => as.map((a) => a.getAttribute('href')));
    const want = [
      '/ipxe/test/42/console%3DttyS0', '/iso/test/42/console%3DttyS0', '/usb/test/42/console%3DttyS0',
      '/uefimg/test/42/console%3DttyS0', '/uefi/test/42/console%3DttyS0', '/uefi/test/42/console%3DttyS0?arch=arm64',
      '/snponly/test/42/console%3DttyS0', '/krn/test/42/console%3DttyS0',
    ];
    ok(JSON.stringify(hrefs) === JSON.stringify(want), `every medium's link: ${JSON.stringify(hrefs)}`);
    const statics = await page.$$eval('#static-links a', (as) => as.map((a) => a.getAttribute('href')));
    ok(['/krn-generic', '/uefi-generic', '/krn-provision', '/uefi-provision'].every((s) => statics.includes(s)),
      `static links: ${JSON.stringify(statics)}`);
    ok((await page.textContent('#gen-links')).includes(`${base}/ipxe/test/42/console%3DttyS0`), 'the full URL is shown');

    await Promise.all([page.waitForNavigation(), page.click('#gen-links a[href^="/ipxe/"]')]);
    ok(page.url() === `${base}/ipxe/test/42/console%3DttyS0`, `clicked the /ipxe/ link: ${page.url()}`);
    const script = await page.evaluate(() => document.body.innerText);
    ok(script.startsWith('#!ipxe'), 'it is an iPXE script');
    ok(script.includes('runmode=test farmer_id=42 console=ttyS0'), 'its kernel line has runmode=test farmer_id=42 console=ttyS0');
    await page.goBack();
    await page.waitForSelector('#gen-network option[value="test"]', { state: 'attached' });

    // "/" in the arguments travels as "___" and arrives as "/".
    await page.selectOption('#gen-network', 'test');
    await page.fill('#gen-farm', '42');
    await page.fill('#gen-args', 'console=ttyS0 root=/dev/ram0');
    await page.waitForSelector('#gen-args-warn:not([hidden])');
    const slashHref = await page.getAttribute('#gen-links a[href^="/ipxe/"]', 'href');
    ok(slashHref === '/ipxe/test/42/console%3DttyS0%20root%3D___dev___ram0', `"/" is written "___": ${slashHref}`);
    const slashScript = await page.evaluate(async (h) => (await fetch(h)).text(), slashHref);
    ok(slashScript.includes('farmer_id=42 console=ttyS0 root=/dev/ram0'), 'and the server turns it back into "/"');

    await page.fill('#gen-args', 'console=ttyS0; reboot');
    await page.waitForSelector('#gen-args-error:not([hidden])');
    ok((await page.textContent('#gen-args-error')).includes('“;”'), 'args with ";" are refused, naming the character');
    ok(await page.isHidden('#gen-links'), 'no links while the args are refused');
    await page.fill('#gen-args', 'console=ttyS0');

    await page.fill('#gen-farm', 'abc');
    await page.waitForSelector('#gen-farm-error:not([hidden])');
    const farmErr = await page.textContent('#gen-farm-error');
    ok(/positive integer/.test(farmErr), `farm "abc" is refused: ${farmErr}`);
    ok((await page.getAttribute('#gen-farm', 'aria-invalid')) === 'true', 'and the field is marked invalid');
    ok(await page.isHidden('#gen-links'), 'and no link is shown');
    await page.fill('#gen-farm', '0');
    ok(/positive integer/.test(await page.textContent('#gen-farm-error')), 'farm "0" is refused');
    await page.fill('#gen-farm', '42');
    ok(await page.isHidden('#gen-farm-error'), 'farm "42" clears the error');

    section('expert: a kernel file and a format (/expert, /generate)');
    await page.goto(`${base}/expert?network=test&farm=7&args=console%3DttyS0&kernel=zos-test.efi&format=snponly`);
    await page.waitForSelector('#gen-kernel option[value="zos-test.efi"]', { state: 'attached' });
    await page.waitForSelector('#gen-links:not([hidden])');
    ok((await page.inputValue('#gen-farm')) === '7' && (await page.inputValue('#gen-kernel')) === 'zos-test.efi',
      '/expert fills the generator: farm 7, kernel zos-test.efi');
    const expertHrefs = await page.$$eval('#gen-links a', (as) => as.map((a) => a.getAttribute('href')));
    ok(expertHrefs.includes('/snponly/test/7/console%3DttyS0/zos-test.efi') && expertHrefs.includes('/ipxe/test/7/console%3DttyS0/zos-test.efi'),
      `every link names the kernel: ${JSON.stringify(expertHrefs)}`);
    ok((await page.getAttribute('#gen-links tr.chosen a', 'href')) === '/snponly/test/7/console%3DttyS0/zos-test.efi',
      'the format the link named is marked');
    const expertScript = await (await fetch(`${base}/ipxe/test/7/console%3DttyS0/zos-test.efi`)).text();
    ok(expertScript.includes('/kernel/zos-test.efi\n') && expertScript.includes('farmer_id=7 console=ttyS0 ||'),
      'that script boots zos-test.efi with the operator\'s arguments last');
    await page.fill('#gen-args', '');
    await page.waitForSelector('#gen-links a[href="/ipxe/test/7//zos-test.efi"]', { state: 'attached' });
    ok((await (await fetch(`${base}/ipxe/test/7//zos-test.efi`)).text()).includes('/kernel/zos-test.efi\n'),
      'no arguments: an empty segment before the kernel, served');
    ok((await page.getAttribute('#gen-share-link', 'href')) === '/expert?network=test&farm=7&kernel=zos-test.efi',
      'the share link names the kernel');
    await page.selectOption('#gen-kernel', '');
    await page.waitForSelector('#gen-links a[href="/ipxe/test/7"]', { state: 'attached' });
    ok(true, 'the network\'s default again: no kernel segment');
    const bad = await fetch(`${base}/expert?kernel=nope.efi`, { redirect: 'manual' });
    ok(bad.status === 404 && (await bad.text()).includes('nope.efi'), '/expert with a missing kernel: 404 naming it');
    const gen = await fetch(`${base}/generate`, { redirect: 'manual' });
    ok(gen.status === 302 && gen.headers.get('location') === '/#generator', '/generate leads to the generator');
    await page.goto(`${base}/`);
    await page.waitForSelector('#gen-network option[value="test"]', { state: 'attached' });
    await page.selectOption('#gen-network', 'test');
    await page.fill('#gen-farm', '42');
    await page.fill('#gen-args', 'console=ttyS0');

    section('media downloads');
    // Every link the generator shows must be served. The media endpoints (issue 5) may not be
    // in this build yet: a route gin does not know answers "not found: …" and is reported, not
    // failed; anything it does serve must be a download under the name the link announces.
    await page.waitForSelector('#gen-links:not([hidden])');
    const links = await page.$$eval('#gen-links a, #static-links a',
      (as) => as.map((a) => ({ href: a.getAttribute('href'), file: a.getAttribute('download') })));
    const notYet = [];
    let served = 0;
    for (const l of links) {
      const res = await fetch(base + l.href);
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status === 404 && body.toString().startsWith('not found: ')) {
        notYet.push(l.href.split('/')[1]);
        continue;
      }
      served++;
      const cd = res.headers.get('content-disposition') || '';
      if (l.file) {
        ok(res.status === 200 && body.length > 0 && cd.includes(l.file), `${l.href} → ${res.status}, ${body.length} bytes, ${cd}`);
      } else {
        ok(res.status === 200 && body.toString().startsWith('#!ipxe'), `${l.href} → ${res.status}, a script`);
      }
    }
    if (notYet.length) console.log(`  note not served by this build yet: ${[...new Set(notYet)].join(' ')}`);
    ok(served >= 1, `${served} of ${links.length} links served`);
    if (!notYet.includes('iso')) {
      // A fresh page: Chromium does not start downloads from a page restored by goBack() above.
      await page.goto(base + '/');
      await page.waitForSelector('#gen-network option[value="test"]', { state: 'attached' });
      await page.selectOption('#gen-network', 'test');
      await page.fill('#gen-farm', '42');
      await page.fill('#gen-args', 'console=ttyS0');
      await page.waitForSelector('#gen-links:not([hidden])');
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#gen-links a[href^="/iso/"]')]);
      ok(dl.suggestedFilename() === 'ipxe-test.iso', `clicking the ISO link downloads ${dl.suggestedFilename()}`);
      const saved = await dl.path();
      ok(saved && fs.statSync(saved).size > 0, 'and the download is not empty');
    }

    section('token');
    ok(await page.isHidden('#nodes-body'), 'nodes are hidden before a token');
    await page.fill('#token', 'not-the-token');
    await page.click('#token-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#token-status').textContent.includes('token refused'));
    ok(true, 'a wrong token shows "token refused"');
    ok(await page.isHidden('#nodes-body'), 'and the nodes stay hidden');

    await page.fill('#token', token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#nodes-body:not([hidden])');
    ok((await page.textContent('#token-status')).includes('accepted'), 'the right token is accepted');
    const cookies = await context.cookies();
    ok(cookies.length === 0, `no cookie set (${cookies.length})`);
    const stored = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length }));
    ok(stored.local === 0 && stored.session === 0, 'token not in web storage unless asked');

    section('nodes');
    const discRow = `#discovered tr.main[data-mac="${DISCOVERED}"]`;
    await page.waitForSelector(discRow);
    ok((await page.textContent(discRow)).includes('unknown'), `${DISCOVERED} is listed as discovered, unknown`);
    ok((await page.textContent(discRow)).includes('x86_64-efi'), 'with its arch');

    // The record with HTML in its args: shown as text, nothing executed.
    const knownRow = `#known tr.main[data-mac="${BOOTED}"]`;
    await page.waitForSelector(knownRow);
    ok((await page.textContent(knownRow)).includes(HOSTILE_ARGS), 'args with HTML are shown as text');
    ok((await page.$$('#known img, #known b')).length === 0, 'no element made from record data');
    ok((await page.evaluate(() => window.__xss)) === undefined, 'no script ran from record data');

    // Its timeline: script, kernel requested, kernel sent.
    await page.click(`${knownRow} button.expander`);
    const knownDetail = `#known tr.detail[data-mac="${BOOTED}"]`;
    await page.waitForSelector(`${knownDetail} table.events:not([hidden])`);
    const stages = await page.$$eval(`${knownDetail} table.events tbody tr td:nth-child(3)`, (tds) => tds.map((t) => t.textContent));
    ok(stages.includes('script_served') && stages.includes('kernel_sent'), `timeline of ${BOOTED}: ${JSON.stringify(stages)}`);

    // The seeded node stopped after TFTP 20 minutes ago: stuck (events.stuck_after: 10m).
    const stuckRow = `#discovered tr.main[data-mac="${STUCK}"]`;
    await page.waitForSelector(stuckRow);
    ok(!!(await page.$(`${stuckRow} .badge.stuck`)), `${STUCK} shows the "stuck" badge`);
    ok((await page.textContent(stuckRow)).includes('tftp_sent'), 'with the stage it stopped after');
    await page.click(`${stuckRow} button.expander`);
    const stuckDetail = `#discovered tr.detail[data-mac="${STUCK}"]`;
    await page.waitForSelector(`${stuckDetail} table.events:not([hidden])`);
    const stuckStages = await page.$$eval(`${stuckDetail} table.events tbody tr td:nth-child(3)`, (tds) => tds.map((t) => t.textContent));
    ok(JSON.stringify(stuckStages) === '["offer_binary","tftp_sent"]', `its timeline: ${JSON.stringify(stuckStages)}`);
    ok(!(await page.$(`#discovered tr.main[data-mac="${BOOTED}"] .badge.stuck`)), `${BOOTED} (kernel sent) is not stuck`);
    ok(!(await page.$(`${discRow} .badge.stuck`)), `${DISCOVERED} (asked a moment ago) is not stuck`);

    section('assign');
    await page.click(`${discRow} button.assign-open`);
    const form = `#discovered tr.detail[data-mac="${DISCOVERED}"] form.assign`;
    await page.waitForSelector(form);
    ok(await page.evaluate((f) => document.activeElement === document.querySelector(`${f} select`), form),
      'the assign form opens with the network list focused');
    await page.selectOption(`${form} select`, 'test');
    await page.fill(`${form} input[name="farm"]`, 'abc');
    await page.click(`${form} button[type="submit"]`);
    await page.waitForSelector(`${form} p.error:not([hidden])`);
    ok(/positive integer/.test(await page.textContent(`${form} p.error:not([hidden])`)), 'assign with farm "abc" is refused in the page');
    ok((await apiJSON(`/api/v1/nodes/${DISCOVERED}`)).status === 404, 'and nothing was sent');

    // A server-side refusal shows the server's error text: a network removed from
    // appliance.yaml (and reloaded) after the page was loaded.
    await page.fill(`${form} input[name="farm"]`, '7');
    await page.evaluate((f) => {
      const o = document.createElement('option');
      o.value = 'gone';
      o.textContent = 'gone';
      document.querySelector(`${f} select`).append(o);
    }, form);
    await page.selectOption(`${form} select`, 'gone');
    await page.click(`${form} button[type="submit"]`);
    await page.waitForSelector(`${form} p.assign-error:not([hidden])`);
    const serverErr = await page.textContent(`${form} p.assign-error`);
    ok(serverErr.includes('Not assigned') && serverErr.includes('unknown network') && serverErr.includes('gone'),
      `the server's refusal is shown: ${serverErr}`);
    ok((await apiJSON(`/api/v1/nodes/${DISCOVERED}`)).status === 404, 'and no record exists');

    await page.selectOption(`${form} select`, 'test');
    await page.fill(`${form} input[name="farm"]`, '7');
    await page.click(`${form} button[type="submit"]`);
    await page.waitForSelector('#nodes-status:not([hidden])');
    ok((await page.textContent('#nodes-status')).includes('assigned to network test, farm 7'), 'the page says it is assigned');
    const rec = await apiJSON(`/api/v1/nodes/${DISCOVERED}`);
    ok(rec.status === 200 && rec.body.network === 'test' && rec.body.farm === 7,
      `API: the record exists: ${JSON.stringify(rec.body)}`);
    await page.waitForSelector(`#known tr.main[data-mac="${DISCOVERED}"]`);
    ok((await page.textContent(discRow)).includes('known'), 'the node is now listed as known');
    r = await fetch(`${base}/provision/${DISCOVERED}`);
    ok((await r.text()).includes('runmode=test farmer_id=7'), 'its provision script now boots test farm 7');

    section('farm scale: counts, search, filters, sorting, pages');
    // 120 more MACs ask for a script (unknown) and 60 records are imported: the discovered
    // table then needs three pages of 50, and the known one two.
    const FARM = (i) => `52:54:00:c0:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    for (let i = 0; i < 120; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => fetch(`${base}/provision/${FARM(i + j).replaceAll(':', '-')}`).then((x) => x.text())));
    }
    const csv = Array.from({ length: 60 }, (_, i) => `${FARM(1000 + i)},test,${i < 30 ? 5150 : 5151},`).join('\n') + '\n';
    const imp = await fetch(`${base}/api/v1/import`, { method: 'POST', headers: { ...auth, 'Content-Type': 'text/csv' }, body: csv });
    ok(imp.status === 200, `API: 60 records imported → ${imp.status}`);
    await page.click('#refresh');
    const apiDisc = (await apiJSON('/api/v1/discovered?limit=1')).body;
    const apiKnown = (await apiJSON('/api/v1/nodes?limit=1')).body;
    await page.waitForFunction((n) => document.querySelector('#nodes-counts').textContent.includes(`${n} known`), apiDisc.counts.known);
    const countsText = await page.textContent('#nodes-counts');
    ok(countsText === `${apiDisc.counts.known} known, ${apiDisc.counts.unknown} unknown, ${apiDisc.counts.stuck} stuck, ${apiDisc.counts.booted} booted in the last hour`,
      `the counts line: "${countsText}"`);
    ok(apiDisc.counts.known === 62 && apiDisc.counts.unknown === 121 && apiDisc.counts.stuck === 1, `API counts ${JSON.stringify(apiDisc.counts)}`);

    const rowMacs = (t) => page.$$eval(`#${t} tr.main`, (trs) => trs.map((tr) => tr.dataset.mac));
    let macs = await rowMacs('discovered');
    ok(macs.length === 50, `the discovered table shows one page: ${macs.length} rows of ${apiDisc.total}`);
    ok((await page.textContent('#discovered-pageinfo')) === `Rows 1–50 of ${apiDisc.total}.`, `page info: ${await page.textContent('#discovered-pageinfo')}`);
    ok(await page.isDisabled('#discovered-prev'), '"Previous" is off on the first page');
    await page.click('#discovered-next');
    await page.waitForFunction(() => document.querySelector('#discovered-pageinfo').textContent.startsWith('Rows 51–100'));
    const page2 = await rowMacs('discovered');
    ok(page2.length === 50 && !page2.some((m) => macs.includes(m)), 'page 2: 50 other rows');
    await page.click('#discovered-next');
    await page.waitForFunction(() => document.querySelector('#discovered-pageinfo').textContent.startsWith('Rows 101–'));
    const page3 = await rowMacs('discovered');
    ok(page3.length === apiDisc.total - 100 && await page.isDisabled('#discovered-next'), `page 3: the last ${page3.length} rows, "Next" off`);
    ok(new Set([...macs, ...page2, ...page3]).size === apiDisc.total, 'the three pages hold every discovered MAC once');
    await page.click('#discovered-prev');
    await page.waitForFunction(() => document.querySelector('#discovered-pageinfo').textContent.startsWith('Rows 51–100'));
    ok(JSON.stringify(await rowMacs('discovered')) === JSON.stringify(page2), '"Previous" goes back to page 2');
    ok((await rowMacs('known')).length === 50 && (await page.textContent('#known-pageinfo')) === `Rows 1–50 of ${apiKnown.total}.`,
      'the known table shows its first 50 records');

    // Search by a MAC fragment in the hyphen spelling, as typed.
    const seenResponses = [];
    const onResp = (q) => { if (q.url().includes('/api/v1/')) seenResponses.push(q.url().slice(base.length)); };
    page.on('response', onResp);
    await page.fill('#node-q', '52-54-00-c0-00-1');
    await page.waitForFunction(() => document.querySelector('#discovered-pageinfo').textContent.includes('matching')
      || !document.querySelector('#discovered-empty').hidden);
    macs = await rowMacs('discovered');
    const wantSearch = (await apiJSON('/api/v1/discovered?q=52-54-00-c0-00-1&limit=1000')).body;
    ok(macs.length === wantSearch.total && wantSearch.total === 16 && macs.every((m) => m.startsWith('52:54:00:c0:00:1')),
      `search "52-54-00-c0-00-1": ${macs.length} rows, all matching (API: ${wantSearch.total})`);
    ok(seenResponses.some((u) => u.startsWith('/api/v1/discovered?q=52-54-00-c0-00-1&')), 'the search is done by the server');
    ok(!seenResponses.some((u) => /\/api\/v1\/(nodes|discovered)$/.test(u)), 'the page never asks for a whole list');
    page.off('response', onResp);
    ok(page.url().includes('q=52-54-00-c0-00-1'), `the URL keeps the search: ${page.url().slice(base.length)}`);

    // Farm id in the known table.
    await page.fill('#node-q', '5151');
    await page.waitForFunction(() => document.querySelector('#known-pageinfo').textContent === 'Rows 1–30 of 30 matching.');
    ok((await rowMacs('known')).length === 30, 'search by farm id: the 30 records of farm 5151');
    ok(await page.isVisible('#discovered-empty') && (await page.textContent('#discovered-empty')).includes('No node matches'),
      'no discovered MAC has that farm: the table says so');

    // The stuck filter, through the counts line.
    await page.fill('#node-q', '');
    await page.click('#nodes-counts button.stuck');
    await page.waitForFunction((m) => {
      const rows = document.querySelectorAll('#discovered tr.main');
      return rows.length === 1 && rows[0].dataset.mac === m;
    }, STUCK);
    ok((await page.inputValue('#node-state')) === 'stuck', 'clicking "1 stuck" shows only the stuck node');
    ok(page.url().includes('state=stuck'), 'and the URL says so');
    ok((await rowMacs('known')).length === 0 && (await page.textContent('#known-empty')).includes('No node matches'),
      'no record is stuck');

    // Sorting: by requests, most first; then by MAC, descending.
    await page.selectOption('#node-state', '');
    await page.waitForFunction(() => document.querySelectorAll('#discovered tr.main').length === 50);
    await page.click('#discovered thead button[data-sort="count"]');
    await page.waitForFunction(() => document.querySelector('#discovered thead button[data-sort="count"]').closest('th').getAttribute('aria-sort') === 'descending');
    const apiByCount = (await apiJSON('/api/v1/discovered?sort=count&order=desc&limit=50')).body.items.map((d) => d.mac);
    await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll('#discovered tr.main')].map((r) => r.dataset.mac)) === w,
      JSON.stringify(apiByCount)).then(() => ok(true, 'sorted by requests, most first, as the API orders them'),
      () => ok(false, 'sorted by requests, most first, as the API orders them'));
    await page.click('#known thead button[data-sort="mac"]');
    await page.waitForFunction(() => document.querySelector('#known thead button[data-sort="mac"]').closest('th').getAttribute('aria-sort') === 'descending');
    const knownDesc = await rowMacs('known');
    ok(knownDesc.length === 50 && knownDesc.every((m, i) => i === 0 || knownDesc[i - 1] > m), 'known nodes by MAC, descending');
    ok(page.url().includes('dsort=count') && page.url().includes('korder=desc'), `the URL keeps the sort orders: ${page.url().slice(base.length)}`);

    // A shared link opens with the same view.
    const shared = await context.newPage();
    await shared.goto(`${base}/?q=52%3A54%3A00%3Ac0%3A00%3A0&state=unknown`);
    await shared.fill('#token', token);
    await shared.click('#token-form button[type="submit"]');
    await shared.waitForSelector('#nodes-body:not([hidden])');
    await shared.waitForFunction(() => document.querySelectorAll('#discovered tr.main').length === 16);
    ok((await shared.inputValue('#node-q')) === '52:54:00:c0:00:0' && (await shared.inputValue('#node-state')) === 'unknown',
      'a shared link fills the search and the filter, and shows its 16 rows');
    await shared.close();

    section('refresh in place');
    await page.goto(`${base}/`);
    await page.fill('#token', token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('#discovered tr.main').length === 50);
    // Open an unknown node's row, half-fill its assign form, and scroll so it is in view.
    const target = (await page.$$eval('#discovered tr.main', (trs) => trs.filter((tr) => tr.querySelector('button.assign-open'))
      .map((tr) => tr.dataset.mac)))[10];
    await page.click(`#discovered tr.main[data-mac="${target}"] button.assign-open`);
    const targetDetail = `#discovered tr.detail[data-mac="${target}"]`;
    await page.waitForSelector(`${targetDetail} form.assign`);
    await page.fill(`${targetDetail} input[name="farm"]`, '12');
    await page.evaluate((sel) => { document.querySelector(sel).__mark = 'kept'; }, targetDetail);
    await page.$eval(targetDetail, (e) => e.scrollIntoView({ block: 'center' }));
    const before = await page.evaluate((sel) => ({ top: document.querySelector(sel).getBoundingClientRect().top, y: scrollY }), targetDetail);
    // A node the page has not seen asks for a script: it is the newest, so it comes first.
    // Boot activity reaches the page's lists up to 10 s late (one view serves every
    // operator); an admin write shows at once, so another row on the page gets a record.
    const NEWCOMER = '52:54:00:c1:00:01';
    await fetch(`${base}/provision/${NEWCOMER}`).then((x) => x.text());
    const other = (await page.$$eval('#discovered tr.main', (trs) => trs.filter((tr) => tr.querySelector('button.assign-open'))
      .map((tr) => tr.dataset.mac)))[3];
    await page.evaluate((m) => { document.querySelector(`#discovered tr.main[data-mac="${m}"]`).__mark = 'kept'; }, other);
    const rec3 = await apiJSON('/api/v1/nodes', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mac: other, network: 'test', farm: 77 }) });
    ok(rec3.status === 201, `API: ${other} gets a record (farm 77) → ${rec3.status}`);
    await page.focus(`${targetDetail} input[name="farm"]`);
    await page.evaluate(() => document.querySelector('#refresh').click());
    await page.waitForSelector(`#discovered tr.main[data-mac="${NEWCOMER}"]`);
    ok((await rowMacs('discovered'))[0] === NEWCOMER, 'after a refresh the new MAC is the first row');
    const after = await page.evaluate((sel) => ({
      same: document.querySelector(sel).__mark === 'kept',
      farm: document.querySelector(`${sel} input[name="farm"]`).value,
      focused: document.activeElement === document.querySelector(`${sel} input[name="farm"]`),
      top: document.querySelector(sel).getBoundingClientRect().top,
    }), targetDetail);
    ok(after.same, 'the open row was updated in place, not rebuilt');
    const otherRow = await page.evaluate((m) => {
      const tr = document.querySelector(`#discovered tr.main[data-mac="${m}"]`);
      return { same: tr.__mark === 'kept', text: tr.textContent, known: !!tr.querySelector('.badge.known') && !tr.querySelector('.badge.unknown') };
    }, other);
    ok(otherRow.same && otherRow.known && otherRow.text.includes('test / 77') && !otherRow.text.includes('Assign'),
      `${other}'s row now says known, test / 77, in the same row element`);
    ok(after.farm === '12' && after.focused, 'the half-typed assign form keeps its value and the focus');
    ok(Math.abs(after.top - before.top) <= 2, `the open row stays where the operator was looking (${before.top} → ${after.top} px)`);

    // Nothing changed: the next automatic refresh (every 10 s) costs three 304s, under 1 KB.
    await sleep(300);
    const sizes = [];
    const onResponse = async (r) => {
      if (!r.url().includes('/api/v1/')) return;
      let bytes;
      try {
        const z = await r.request().sizes();
        bytes = z.responseHeadersSize + z.responseBodySize;
      } catch {
        bytes = (await r.headersArray()).reduce((n, h) => n + h.name.length + h.value.length + 4, 0) + (await r.body()).length;
      }
      sizes.push({ url: r.url().slice(base.length), status: r.status(), bytes });
    };
    const stamp = await page.textContent('#nodes-updated');
    page.on('response', onResponse);
    await page.waitForFunction((s) => {
      const t = document.querySelector('#nodes-updated').textContent;
      return t !== s && t.includes('(no change)');
    }, stamp, { timeout: 20000 });
    await sleep(300);
    page.off('response', onResponse);
    const bytes = sizes.reduce((n, x) => n + x.bytes, 0);
    ok(sizes.length === 3 && sizes.every((x) => x.status === 304),
      `the automatic refresh without change: ${JSON.stringify(sizes.map((x) => `${x.status} ${x.url.split('?')[0]}`))}`);
    ok(bytes > 0 && bytes <= 1024, `and it transferred ${bytes} bytes (≤ 1 KB)`);

    section('charts');
    const fleet = (await apiJSON('/api/v1/fleet')).body;
    ok(fleet.hours.length === 24 && fleet.slowest, `API fleet: ${fleet.hours.reduce((a, h) => a + h.boots, 0)} boots, slowest ${fleet.slowest}`);
    ok((await page.$$('#fleet-hours svg rect')).length === 24, 'boots per hour: 24 bars');
    ok((await page.$$eval('#fleet-hours svg rect', (rs) => rs.filter((r) => Number(r.getAttribute('height')) > 0).length)) >= 1,
      'at least one hour has boots');
    ok(!!(await page.$('#fleet-steps svg g.slowest')), 'the slowest step is marked');
    ok((await page.textContent('#fleet-summary')).includes('Slowest step'), `summary: ${await page.textContent('#fleet-summary')}`);
    await page.fill('#node-q', BOOTED);
    await page.waitForSelector(`#known tr.main[data-mac="${BOOTED}"]`);
    await page.click(`#known tr.main[data-mac="${BOOTED}"] button.expander`);
    const chart = `#known tr.detail[data-mac="${BOOTED}"] .boot-chart svg`;
    await page.waitForSelector(chart);
    const label = await page.getAttribute(chart, 'aria-label');
    ok(label.includes('→ kernel requested') && label.includes('→ kernel sent'), `${BOOTED}'s boot as a bar chart: ${label}`);
    ok((await page.$$(`${chart} rect`)).length >= 2, 'one bar per step');
    await page.fill('#node-q', '');
    await page.waitForFunction(() => document.querySelectorAll('#discovered tr.main').length === 50);

    section('phone screen');
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    ok(overflow <= 0, `no sideways scroll of the page at 390 px (tables scroll in their box): ${overflow}`);
    ok(await page.isVisible('#node-q'), 'the search box is on screen');
    await page.setViewportSize({ width: 1280, height: 900 });

    section('kernels');
    await page.waitForSelector('#kernel-list tbody tr');
    const kernelText = await page.textContent('#kernel-list');
    ok(kernelText.includes('zos-test.efi') && kernelText.includes('64.0 KiB'), 'zos-test.efi is listed with its size');
    const sha = execFileSync('sha256sum', [path.join(kernels, 'zos-test.efi')]).toString().split(' ')[0];
    ok(kernelText.includes(sha), 'with its sha256');
    const netRows = await page.$$eval('#network-kernels tbody tr', (trs) => trs.map((tr) => tr.textContent));
    ok(netRows.some((t) => t.startsWith('test') && t.includes('zos-test.efi')), 'network test boots zos-test.efi');
    ok(netRows.some((t) => t.startsWith('prod') && t.includes('none')), 'network prod boots nothing');
    ok(netRows.some((t) => t.startsWith('test') && /zos-test\.efi.*none/.test(t)), 'network test has no arm64 kernel, shown beside its x86-64 one');

    section('kernel pulls');
    // A pull of something that is not a kernel (the test's random bytes, from the daemon
    // itself) fails, changes nothing, and is on the page with its reason.
    const pull = await fetch(`${base}/api/v1/networks/test/pull`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: `${base}/kernel/zos-test.efi` }),
    });
    ok(pull.status === 502, `a pull of random bytes is refused by the header check: ${pull.status}`);
    await page.click('#kernels-refresh');
    await page.waitForSelector('#kernel-pulls tbody tr');
    const pullText = await page.textContent('#kernel-pulls tbody');
    ok(pullText.includes('net/test.efi') && pullText.includes('error'), `the failed pull is listed: ${pullText.slice(0, 200)}`);
    const afterPull = await page.$$eval('#network-kernels tbody tr', (trs) => trs.map((tr) => tr.textContent));
    ok(afterPull.some((t) => t.startsWith('test') && t.includes('zos-test.efi')), 'network test still boots zos-test.efi after the failed pull');

    section('accessibility (axe-core)');
    // Evaluated through the DevTools protocol, not a <script> tag: the page is checked as the
    // daemon serves it, Content-Security-Policy included.
    await page.evaluate(fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
    const axe = await page.evaluate(async () => {
      const r = await window.axe.run(document);
      return {
        passes: r.passes.length,
        violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) })),
      };
    });
    ok(axe.passes > 10, `axe ran ${axe.passes} passing rules`);
    const serious = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    ok(serious.length === 0, `no serious or critical axe violation with every section open ${JSON.stringify(serious)}`);
    if (axe.violations.length) console.log(`  note axe (minor/moderate): ${JSON.stringify(axe.violations)}`);

    section('screenshot');
    // Show a node's timeline and a filled generator in the picture.
    await page.fill('#node-q', DISCOVERED);
    await page.waitForSelector(discRow);
    if ((await page.getAttribute(`${discRow} button.expander`, 'aria-expanded')) !== 'true') {
      await page.click(`${discRow} button.expander`);
    }
    await page.click('#refresh');
    const discDetail = `#discovered tr.detail[data-mac="${DISCOVERED}"]`;
    await page.waitForFunction((sel) => document.querySelectorAll(`${sel} table.events tbody tr`).length >= 2, discDetail)
      .then(() => ok(true, `${DISCOVERED}'s timeline shows its boot after the assignment`),
        () => ok(false, `${DISCOVERED}'s timeline shows its boot after the assignment`));
    await page.selectOption('#gen-network', 'test');
    await page.fill('#gen-farm', '42');
    await page.waitForSelector('#gen-links:not([hidden])');
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    ok(fs.statSync(screenshot).size > 10000, `screenshot saved to ${path.relative(repo, screenshot)}`);

    section('token kept for the tab, then forgotten');
    await page.check('#token-keep');
    await page.fill('#token', token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#token-status').textContent.includes('accepted'));
    ok((await page.evaluate(() => sessionStorage.getItem('bootstrapd.token'))) === token, 'ticked: the token is in sessionStorage');
    await page.reload();
    await page.waitForSelector(`#discovered tr.main[data-mac="${DISCOVERED}"]`);
    ok(true, 'after a reload the nodes are listed without typing the token again');
    ok((await context.cookies()).length === 0, 'still no cookie');
    await page.click('#token-forget');
    ok(await page.isHidden('#nodes-body'), '"Forget token" hides the nodes');
    ok((await page.evaluate(() => sessionStorage.length + localStorage.length)) === 0, 'and clears the storage');

    section('page health');
    ok(offsite.length === 0, `no request left the appliance ${JSON.stringify(offsite)}`);
    ok(pageErrors.length === 0, `no page errors ${JSON.stringify(pageErrors)}`);
    // Only the refusals the test provoked: the wrong token and the removed network.
    const expected = new Set(['401 GET /api/v1/nodes', '401 GET /api/v1/discovered', '401 GET /api/v1/fleet', '400 POST /api/v1/nodes']);
    const unexpected = refused.filter((x) => !expected.has(x.split('?')[0]));
    ok(unexpected.length === 0, `no other 4xx/5xx answer to the page ${JSON.stringify(unexpected)}`);
  } catch (e) {
    failures++;
    console.log(`  FAIL ${step}: ${e.stack || e}`);
  } finally {
    await cleanup();
  }
  console.log(failures ? `FAIL: ${failures} check(s) failed` : 'PASS');
  process.exit(failures ? 1 : 0);
}

main();
