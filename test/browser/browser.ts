// Headless Chromium for the browser tests: the Debian package (`apt-get install chromium`,
// which .ci/run does), driven by puppeteer-core; no browser is ever downloaded. A missing
// browser fails the test with the command that installs it: a dashboard nobody opened in
// a browser is not tested.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

/** The browser binary: $LEADERD_CHROMIUM, else Debian's /usr/bin/chromium. */
export const CHROMIUM = process.env.LEADERD_CHROMIUM ?? '/usr/bin/chromium';

/** Where tests leave screenshots (gitignored). */
export const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../test-artifacts');

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the browser tests need it. Install it with ` +
        '`apt-get update && apt-get install -y --no-install-recommends chromium` (as .ci/run does), or set LEADERD_CHROMIUM to a Chromium binary.',
    );
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'],
    timeout: 20_000,
    protocolTimeout: 20_000,
  });
}

/** Close the browser; if it does not close within 5 s, kill its process (by its pid). */
export async function closeBrowser(browser: Browser | null): Promise<void> {
  if (!browser) return;
  const proc = browser.process();
  await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

/** Every console error, page error and failed request of `page`, as lines. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${(e as Error).message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  return errors;
}
