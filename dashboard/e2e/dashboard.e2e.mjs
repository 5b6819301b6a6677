// Browser end-to-end test of the dashboard, as a person would use it.
//
// Runs the demo pipeline (feed simulator → producer → RabbitMQ and Kafka →
// workers, groups, stream reader, bridge, dashboard) against the real
// brokers, opens the page in Debian's chromium through playwright-core (no
// browser is ever downloaded), and checks:
//   * the page receives events;
//   * its numbers agree with the readers' own summaries: the worker split
//     adds up to what was published, every group and the stream got every
//     message, and so did the page's own stream from offset 0;
//   * after its connection is cut while ticks flow, the stream resumed from
//     the last event id has no offset gap and no duplicate;
// and saves a screenshot in the run's output folder.
//
// Environment: DEMO_BIN (binaries, default target/debug), E2E_SECONDS
// (producer run time, default 20), E2E_SCREENSHOT (an extra copy of the
// screenshot, e.g. docs/img/dashboard.png).
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = '/usr/bin/chromium';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const failures = [];
function check(cond, text) {
  console.log(`  ${cond ? '✔' : '✘'} ${text}`);
  if (!cond) failures.push(text);
}
function log(...a) { console.log('[e2e]', ...a); }

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function until(what, f, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    const v = await f();
    if (v) return v;
    await sleep(250);
  }
  throw new Error(`timed out after ${seconds}s waiting for ${what}`);
}

const load = (dir, name) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));

async function main() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  const port = await freePort();
  const release = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tb-e2e-')), 'release');
  const env = {
    ...process.env,
    DEMO_BIN: process.env.DEMO_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'debug'),
    DEMO_SECONDS: process.env.E2E_SECONDS || '20',
    DEMO_DASHBOARD_WAIT: release,
    DASHBOARD_PORT: String(port),
  };
  log(`pipeline: scripts/demo-pipeline.sh with binaries from ${env.DEMO_BIN}, ${env.DEMO_SECONDS}s`);
  const pipe = spawn(path.join(ROOT, 'scripts/demo-pipeline.sh'), [], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  pipe.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
  const exited = new Promise((r) => pipe.on('exit', (code) => r(code)));
  let browser;
  let userDataDir;
  try {
    const dir = await until('the run folder', () => { const m = out.match(/output in (out\/[^/\s]+)\//); return m && path.join(ROOT, m[1]); }, 60);
    const url = await until('the dashboard URL', () => { const m = out.match(/dashboard: (http:\/\/\S+)/); return m && m[1]; }, 60);
    await until('the dashboard to answer', async () => {
      try { return (await fetch(url + 'healthz')).ok; } catch { return false; }
    }, 180);

    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run'],
      viewport: { width: 1400, height: 1500 },
    });
    browser = context;
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // The page reads its stream from offset 0, so it can be checked
    // against everything the readers saw.
    await page.goto(url + '?from=0');
    const tb = (expr, arg) => page.evaluate(expr, arg);
    await until('events on the page', () => tb(() => window.tb.messages > 0), 120);
    log('page receives events');

    // Cut 1: the page's EventSource is closed; it resumes with its last id.
    const before = await tb(() => window.tb.messages);
    await tb(() => window.tb.kill());
    await until('the first resume', () => tb(() => window.tb.resumes >= 1), 60);
    await until('events after the first resume', () => tb((n) => window.tb.messages > n, before), 60);
    log('resumed after the page closed its connection');

    // The readers have drained: every count is final.
    await until('the readers to finish', () => fs.existsSync(path.join(dir, 'readers-done')), 600);
    const ws = load(dir, 'producer-ws.json');
    const messages = ws.ticks + ws.gaps;
    await until('the page to hold every message', () => tb((n) => window.tb.messages >= n, messages), 120);
    await sleep(2500); // two status events: the scraped numbers are the final ones
    const w = ['worker-1', 'worker-2'].map((n) => load(dir, `${n}.json`));
    const groups = ['group-analytics', 'group-archive', 'stream-reader'].map((n) => [n, load(dir, `${n}.json`)]);

    const pageNums = await tb(() => {
      const num = (sel) => { const e = document.querySelector(sel); return e ? Number(e.dataset.count) : null; };
      const readers = {};
      for (const r of document.querySelectorAll('#broadcast .bar-row')) readers[r.dataset.reader] = Number(r.dataset.count);
      return {
        workers: { 'worker-1': num('[data-worker="worker-1"]'), 'worker-2': num('[data-worker="worker-2"]') },
        dlq: num('#split-dlq'), total: num('#split-total'), published: num('#split-published'), readers,
        sse: { messages: window.tb.messages, gaps: window.tb.gaps, dups: window.tb.dups, resumes: window.tb.resumes },
        shown: { messages: document.getElementById('sse-messages').textContent, gaps: document.getElementById('sse-gaps').textContent, dups: document.getElementById('sse-dups').textContent },
      };
    });
    console.log('\npage:', JSON.stringify(pageNums));
    console.log(`summaries: ${messages} messages published; workers handled ${w[0].handled} + ${w[1].handled}, dead-lettered ${
      w.reduce((a, x) => a + Object.values(x.dead_lettered || {}).reduce((s, v) => s + v, 0), 0)}\n`);

    const dlq = w.reduce((a, x) => a + Object.values(x.dead_lettered || {}).reduce((s, v) => s + v, 0), 0);
    check(pageNums.published === messages, `page: published ${pageNums.published} = producer summary ${messages}`);
    check(pageNums.workers['worker-1'] === w[0].handled, `page: worker-1 ${pageNums.workers['worker-1']} = its summary ${w[0].handled}`);
    check(pageNums.workers['worker-2'] === w[1].handled, `page: worker-2 ${pageNums.workers['worker-2']} = its summary ${w[1].handled}`);
    check(pageNums.dlq === dlq, `page: dead letters ${pageNums.dlq} = the workers' summaries ${dlq}`);
    check(pageNums.total === messages, `page: the split adds up (${pageNums.total} = ${messages})`);
    for (const [name, s] of groups) {
      const unique = s.received - s.duplicates;
      check(pageNums.readers[name] === unique, `page: ${name} ${pageNums.readers[name]} = its summary ${unique}`);
      check(unique === messages, `${name} got every message (${unique} = ${messages})`);
    }
    check(pageNums.readers.dashboard === messages, `page: the dashboard's group ${pageNums.readers.dashboard} = ${messages}`);
    check(pageNums.sse.messages === messages, `page stream from offset 0 received every message once (${pageNums.sse.messages} = ${messages})`);
    check(pageNums.sse.gaps === 0 && pageNums.shown.gaps === '0', 'page stream: no offset gap across the resumes');
    check(pageNums.sse.dups === 0 && pageNums.shown.dups === '0', 'page stream: no duplicate across the resumes');
    check(pageNums.sse.resumes >= 1, `page stream resumed ${pageNums.sse.resumes} time(s) by Last-Event-ID`);
    check(errors.length === 0, `no script errors on the page ${errors.join('; ')}`);

    const shot = path.join(dir, 'dashboard-e2e.png');
    await page.screenshot({ path: shot, fullPage: true });
    log(`screenshot: ${path.relative(ROOT, shot)}`);
    if (process.env.E2E_SCREENSHOT) fs.copyFileSync(shot, path.resolve(ROOT, process.env.E2E_SCREENSHOT));
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
    fs.writeFileSync(release, '');
  }
  const code = await exited;
  fs.rmSync(path.dirname(release), { recursive: true, force: true });
  check(code === 0, `the demo pipeline's own summary holds (exit ${code})`);
}

main().then(() => {
  if (failures.length) {
    console.error(`\nFAILED: ${failures.length} check(s):\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  console.log('\nbrowser test passed');
}, (e) => {
  console.error('browser test error:', e);
  process.exit(1);
});
