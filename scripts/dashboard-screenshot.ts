// The README's screenshots, taken from a live cluster: `leaderd local` (3 nodes, a free
// base port, a temp data dir), a steady write load, a transfer drill against it (saved where
// the dashboard lists it), then a kill -9 of the leader; the dashboard of a surviving node
// goes to docs/dashboard.png and the drill's report to docs/drill-report.png.
//   npm run screenshot:dashboard
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { LeaderdClient } from '../src/client/leaderd-client.js';
import { localClientAddress, localMetricsAddress } from '../src/cli/local-ports.js';
import { sleep, waitFor } from '../bench/procs.js';

const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'dist/src/cli/main.js');
const base = 24_000 + 300 * Math.floor(Math.random() * 20);
const dir = mkdtempSync(join(tmpdir(), 'leaderd-screenshot-'));
const endpoints = [1, 2, 3].map((i) => localClientAddress(i, base));
const local = spawn(process.execPath, [cli, 'local', '--base-port', String(base), '--data-dir', dir, '--no-view'], { stdio: 'ignore' });
const client = new LeaderdClient({ endpoints, timeoutMs: 3000 });
const browser = await puppeteer.launch({ executablePath: process.env.LEADERD_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
let writing = true;
try {
  const leader = () => client.leader();
  await waitFor('a leader', async () => ((await leader()).leaderId !== '' ? true : undefined), 30_000, 200);
  // About 200 writes a second from 4 writers, for the charts.
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; writing; i++) {
      await client.put(`demo/${w}/${i % 100}`, String(i)).catch(() => sleep(50));
      await sleep(15);
    }
  });
  await sleep(25_000);
  const drill = spawn(
    process.execPath,
    [cli, 'drill', '--fault', 'transfer', '--trials', '3', '--endpoints', endpoints.join(','), '--report-dir', dir],
    {
      stdio: 'inherit',
    },
  );
  await new Promise((r) => drill.once('exit', r));
  await sleep(5000);
  // kill -9 of the leader: its pid is in its log.
  const l = await leader();
  const pid = Number(/"pid":(\d+)/.exec(readFileSync(join(dir, `${l.leaderId}.log`), 'utf8'))![1]);
  process.kill(pid, 'SIGKILL');
  const survivor = [1, 2, 3].find((i) => `n${i}` !== l.leaderId)!;
  await sleep(15_000);
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
  await page.goto(`http://${localMetricsAddress(survivor, base)}/`, { waitUntil: 'load' });
  await page.waitForSelector('#drills-body tr a', { timeout: 10_000 });
  await sleep(1500);
  await page.screenshot({ path: join(root, 'docs/dashboard.png'), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click('#drills-body tr a')]);
  await page.waitForSelector('#latency-chart canvas');
  await page.screenshot({ path: join(root, 'docs/drill-report.png'), fullPage: true });
  console.log(`killed ${l.leaderId} (pid ${pid}); screenshots of n${survivor}'s dashboard in docs/`);
  writing = false;
  await Promise.all(writers);
} finally {
  writing = false;
  await browser.close();
  client.close();
  local.kill('SIGINT');
  await new Promise((r) => local.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
