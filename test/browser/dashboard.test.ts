// The DOM types are for the functions that run in the page (page.$eval, waitForFunction).
/// <reference lib="dom" />
// The live dashboard in a real browser (headless Chromium) against a real 3-node cluster:
// the page names the leader; after a kill -9 of the leader it names the new one within
// 2 s and the change is on the timeline; the page logs no error. A screenshot is left in
// test-artifacts/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'puppeteer-core';
import { freePort, LocalCluster } from '../e2e/cluster.js';
import { artifactPath, closeBrowser, collectErrors, launchChromium } from './browser.js';
import { sampleDrill } from './sample-drill.js';

const DRILL_FILE = '2026-11-30T05-00-00-000Z.json';

let cluster: LocalCluster | null = null;
let browser: Browser | null = null;
const metricsPort = new Map<string, number>();

beforeAll(async () => {
  cluster = await LocalCluster.create({ nodes: 3, clusterId: 'e2e-dashboard' });
  // A drill saved where `leaderd drill` saves them, for the drills panel.
  const drills = join(cluster.root, 'drills');
  mkdirSync(drills);
  writeFileSync(join(drills, DRILL_FILE), JSON.stringify(sampleDrill()));
  for (const s of cluster.specs) {
    metricsPort.set(s.id, await freePort());
    cluster.start(s.id, { '--listen-metrics': `127.0.0.1:${metricsPort.get(s.id)}`, '--drills-dir': drills, '--log-level': 'info' });
  }
  await cluster.waitForLeader();
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await closeBrowser(browser);
  await cluster?.stop();
}, 30_000);

const url = (id: string) => `http://127.0.0.1:${metricsPort.get(id)}/`;

/** The leader the page names (data-leader of #leader), '' while it names none. */
const shownLeader = (page: Page) => page.$eval('#leader', (el) => (el as HTMLElement).dataset.leader ?? '');

async function openDashboard(id: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage();
  const errors = collectErrors(page);
  await page.setViewport({ width: 1280, height: 1000 });
  await page.goto(url(id), { waitUntil: 'load', timeout: 10_000 });
  return { page, errors };
}

describe('dashboard in a browser, real 3-node cluster', () => {
  it('lists the saved drill run, and its link opens the report with its plot drawn', async () => {
    const { page, errors } = await openDashboard(cluster!.running()[0]!);
    try {
      await page.waitForSelector(`#drills-body tr[data-name="${DRILL_FILE}"] a`, { timeout: 15_000 });
      expect(await page.$eval('#drills', (el) => (el as HTMLElement).hidden)).toBe(false);
      const cells = await page.$eval(`#drills-body tr[data-name="${DRILL_FILE}"]`, (tr) =>
        Array.from(tr.querySelectorAll('td')).map((td) => td.textContent),
      );
      expect(cells.slice(1, 5)).toEqual(['kill', '3', '0', '0']);
      await Promise.all([page.waitForNavigation({ timeout: 10_000 }), page.click(`#drills-body tr[data-name="${DRILL_FILE}"] a`)]);
      await page.waitForSelector('#latency-chart canvas', { timeout: 5000 });
      expect(await page.$$eval('#trials tbody tr', (rows) => rows.length)).toBe(3);
      expect(errors).toEqual([]);
      // Only names the listing shows are served.
      const res = await fetch(`${url(cluster!.running()[0]!)}drill-report?name=..%2F..%2Fn1.log`, { signal: AbortSignal.timeout(5000) });
      expect(res.status).toBe(404);
    } finally {
      await page.close();
    }
  });

  it('shows the leader, every member, and after kill -9 of the leader the new one within 2 s, on the timeline too', async () => {
    const c = cluster!;
    const old = await c.waitForLeader();
    // Served by a follower: the leader's own page goes down with it.
    const server = c.running().find((id) => id !== old.leaderId)!;
    const { page, errors } = await openDashboard(server);
    try {
      await page.waitForFunction(
        (leader) => document.querySelector<HTMLElement>('#leader')?.dataset.leader === leader,
        { timeout: 15_000 },
        old.leaderId,
      );
      await page.waitForFunction(() => document.querySelectorAll('#members-body tr:not([data-role=""])').length === 3, {
        timeout: 15_000,
      });
      const rows = await page.$$eval('#members-body tr', (trs) =>
        trs.map((tr) => ({ id: tr.getAttribute('data-id'), role: tr.getAttribute('data-role') })),
      );
      expect(rows.map((r) => r.id).sort()).toEqual(['n1', 'n2', 'n3']);
      expect(rows.find((r) => r.role === 'leader')?.id).toBe(old.leaderId);
      expect(await page.$eval('#conn', (el) => (el as HTMLElement).dataset.state)).toBe('live');

      const t0 = performance.now();
      await c.kill(old.leaderId, 'SIGKILL');
      await page.waitForFunction(
        (dead) => {
          const shown = document.querySelector<HTMLElement>('#leader')?.dataset.leader;
          return shown !== undefined && shown !== '' && shown !== dead;
        },
        { timeout: 2000, polling: 20 },
        old.leaderId,
      );
      const ms = Math.round(performance.now() - t0);
      const next = await shownLeader(page);
      console.log(`[browser] kill -9 of leader ${old.leaderId}: page served by ${server} shows ${next} after ${ms} ms`);
      // The page agrees with the cluster.
      const agreed = await c.waitForLeader({ not: old.leaderId, timeoutMs: 5000 });
      expect(next).toBe(agreed.leaderId);
      // The timeline's newest row is the change to the new leader; the dead member is unreachable.
      await page.waitForFunction(
        (leader) => document.querySelector('#timeline-body tr')?.getAttribute('data-leader') === leader,
        { timeout: 5000 },
        next,
      );
      const newest = await page.$eval('#timeline-body tr', (tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent));
      expect(newest[1]).toBe(`${old.leaderId} → ${next}`);
      expect(newest[3]).toBe('election-timeout');
      await page.waitForFunction(
        (dead) => document.querySelector(`#members-body tr[data-id="${dead}"]`)?.getAttribute('data-health') === 'unreachable',
        { timeout: 5000 },
        old.leaderId,
      );
      // The timeline chart drew (uPlot canvas present).
      expect(await page.$$eval('#timeline-chart canvas', (cs) => cs.length)).toBeGreaterThan(0);
      await page.screenshot({ path: artifactPath('dashboard-after-failover.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
