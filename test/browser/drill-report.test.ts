// The DOM types are for the functions that run in the page (page.$eval, page.evaluate).
/// <reference lib="dom" />
// The drill report as an operator opens it: a file, in a real browser, with the network
// off. Its plots must render from what is inlined (uPlot, chart code, data), and nothing
// in the data (a trial's error message) may run as script.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderDrillReport } from '../../src/dashboard/drill-report.js';
import { artifactPath, closeBrowser, collectErrors, launchChromium } from './browser.js';
import { HOSTILE, sampleDrill } from './sample-drill.js';

let browser: Browser | null = null;
let dir = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'leaderd-report-'));
  browser = await launchChromium();
}, 30_000);

afterAll(async () => {
  await closeBrowser(browser);
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

/** Open `file` with every request that is not for a file: URL refused, and the browser offline. */
async function openOffline(file: string): Promise<{ page: Page; errors: string[]; blocked: string[] }> {
  const page = await browser!.newPage();
  const errors = collectErrors(page);
  const blocked: string[] = [];
  await page.setOfflineMode(true);
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    if (req.url().startsWith('file:')) void req.continue();
    else {
      blocked.push(req.url());
      void req.abort();
    }
  });
  await page.setViewport({ width: 1200, height: 1100 });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load', timeout: 10_000 });
  return { page, errors, blocked };
}

/** Pixels of the chart's canvas in `selector` that are (about) the colour `rgb`. */
function countPixels(page: Page, selector: string, rgb: [number, number, number]): Promise<number> {
  return page.$eval(
    selector,
    (el, [r, g, b]) => {
      const canvas = el.querySelector('canvas');
      if (!canvas) return -1;
      const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4)
        if (data[i + 3]! > 200 && Math.abs(data[i]! - r!) < 40 && Math.abs(data[i + 1]! - g!) < 40 && Math.abs(data[i + 2]! - b!) < 40) n++;
      return n;
    },
    rgb,
  );
}

describe('drill report in a browser, network off', () => {
  it('renders the latency plot and the leadership timeline from the file alone, with the trial table', async () => {
    const file = join(dir, 'report.html');
    writeFileSync(file, renderDrillReport(sampleDrill()));
    const { page, errors, blocked } = await openOffline(file);
    try {
      await page.waitForSelector('#latency-chart canvas', { timeout: 5000 });
      // Blue dots: acknowledged writes; red along the top: the failed ones.
      expect(await countPixels(page, '#latency-chart', [37, 99, 235])).toBeGreaterThan(100);
      expect(await countPixels(page, '#latency-chart', [220, 38, 38])).toBeGreaterThan(20);
      // Timeline bars in the first three member colours.
      for (const colour of [
        [37, 99, 235],
        [22, 163, 74],
        [217, 119, 6],
      ] as [number, number, number][])
        expect(await countPixels(page, '#timeline-chart', colour)).toBeGreaterThan(100);
      expect(await page.$$eval('#trials tbody tr', (rows) => rows.length)).toBe(3);
      await page.screenshot({ path: artifactPath('drill-report.png'), fullPage: true });
      expect(blocked).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('shows a hostile error message as text: nothing in the data runs as script', async () => {
    const file = join(dir, 'hostile.html');
    writeFileSync(file, renderDrillReport(sampleDrill()));
    const { page } = await openOffline(file);
    try {
      await page.waitForSelector('#latency-chart canvas', { timeout: 5000 });
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      const cell = await page.$eval('#trials tbody tr:last-child td:last-child', (td) => td.textContent);
      expect(cell).toBe(HOSTILE);
    } finally {
      await page.close();
    }
  });

  it('the proof that the pixel check can fail: a report whose chart code is broken draws nothing', async () => {
    const broken = renderDrillReport(sampleDrill()).replace('function lineChart(el, xs, lines, opts) {', '$& return;');
    expect(broken).not.toBe(renderDrillReport(sampleDrill()));
    const file = join(dir, 'broken.html');
    writeFileSync(file, broken);
    const { page, errors } = await openOffline(file);
    try {
      await page.waitForSelector('#timeline-chart canvas', { timeout: 5000 }).catch((err: Error) => {
        throw new Error(`${err.message}; page errors: ${errors.join('; ')}`);
      });
      expect(await countPixels(page, '#latency-chart', [37, 99, 235])).toBe(-1);
    } finally {
      await page.close();
    }
  });
});
