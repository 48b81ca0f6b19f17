// What the browser scripts (dashboard.mjs, portal.mjs) share: their environment, the receiver
// Herald delivers to, waiting, the API, screenshots, and running the steps in Chromium.
//
// Every script is given, besides its own variables:
//   CHROMIUM        the browser to drive (Debian's /usr/bin/chromium)
//   SCREENSHOT_DIR  where the PNGs go (NN-name.png, and failure.png)
// It declares its steps with `step(name, run)` and calls `runSteps`, which prints one line per
// step, then `OK` (exit 0); on failure the step, the error, the page it was on, the browser's
// console errors and the forms posted, and writes failure.png (exit 1).

import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

import { chromium } from 'playwright-core';

/** How long any one thing may take to appear. */
export const DEADLINE_MS = 30_000;
/** How often a polled page is reloaded. */
export const POLL_MS = 250;

/** The environment variable `name`; the script exits 2 without it. */
export function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (see the comment at the top of ${path.basename(process.argv[1])})`);
    process.exit(2);
  }
  return value;
}

const CHROMIUM = required('CHROMIUM');
const SCREENSHOT_DIR = required('SCREENSHOT_DIR');

const started = Date.now();
export function log(line) {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${seconds}s] ${line}`);
}

export class StepFailure extends Error {}

/** Throws a readable error unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new StepFailure(message);
}

/** Polls `probe` until it returns something truthy, or fails after DEADLINE_MS. */
export async function until(what, probe) {
  const deadline = Date.now() + DEADLINE_MS;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${lastError.message.split('\n')[0]})` : '';
      throw new StepFailure(`gave up after ${DEADLINE_MS / 1000}s waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Waits until the locator is visible, with a message naming what was expected. */
export async function visible(locator, what) {
  try {
    await locator.waitFor({ state: 'visible', timeout: DEADLINE_MS });
  } catch {
    throw new StepFailure(`expected to see ${what} (the page is at ${locator.page().url()})`);
  }
  return locator;
}

export function pathOf(url) {
  return new URL(url).pathname.replace(/\/+$/, '') || '/';
}

/** Starts `server` on 127.0.0.1:`port` (0: any free one); the port. */
export async function listen(server, port = 0) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server.address().port;
}

/**
 * The receiver Herald delivers to, on a loopback port once `start`ed: it records each request
 * and answers `status` (204, or that status with a short text).
 */
export function receiver() {
  const self = {
    status: 204,
    requests: [],
    port: 0,
    server: http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', () => {
        const status = self.status;
        self.requests.push({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          answered: status,
        });
        if (status === 204) {
          res.writeHead(204).end();
        } else {
          res.writeHead(status, { 'content-type': 'text/plain' }).end('receiver says no\n');
        }
      });
    }),
    async start() {
      self.port = await listen(self.server);
      log(`receiver on http://127.0.0.1:${self.port}/hook`);
    },
  };
  return self;
}

/** `api(method, path, key, body)` against Herald at `base`: `{status, json, text}`. */
export function apiOf(base) {
  return async (method, apiPath, key, body) => {
    const response = await fetch(`${base}${apiPath}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, json, text };
  };
}

let shot = 0;
/** The next screenshot's file: `NN-name.png` in SCREENSHOT_DIR. */
export function shotFile(name) {
  shot += 1;
  return path.join(SCREENSHOT_DIR, `${String(shot).padStart(2, '0')}-${name}.png`);
}

/** A full-page screenshot of `page`. */
export async function screenshot(page, name) {
  const file = shotFile(name);
  await page.screenshot({ path: file, fullPage: true });
  log(`  screenshot ${path.basename(file)}`);
}

const steps = [];
/** Declares the next step: `run({ page, context, browser })`. */
export function step(name, run) {
  steps.push({ name, run });
}

/**
 * Runs `before` (starting the script's servers), then the steps in order in a fresh headless
 * Chromium (`contextOptions` for its one context), stopping at the first failure, which it
 * reports with `failureDetails(page)`'s lines too. Closes `servers` at the end; prints `OK`
 * or sets the exit code to 1.
 */
export async function runSteps({ before = async () => {}, contextOptions, failureDetails = async () => [], servers = [] }) {
  const close = () => {
    for (const server of servers) server.close();
  };
  try {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await before();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    log(`chromium ${browser.version()}`);
    const context = await browser.newContext(contextOptions);
    context.setDefaultTimeout(DEADLINE_MS);
    context.setDefaultNavigationTimeout(DEADLINE_MS);
    const page = await context.newPage();

    const consoleErrors = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => consoleErrors.push(`page error: ${error.message}`));
    page.on('dialog', async (dialog) => {
      log(`  accepting ${dialog.type()} "${dialog.message()}"`);
      await dialog.accept();
    });
    // Every form posted and every error answer, frames included: what a failed step did last.
    const answers = [];
    page.on('response', (response) => {
      const request = response.request();
      if (request.method() === 'POST' || response.status() >= 400) {
        answers.push(`${response.status()} ${request.method()} ${response.url()}`);
      }
    });

    let failed = false;
    for (const [index, { name, run }] of steps.entries()) {
      const label = `step ${index + 1}/${steps.length}: ${name}`;
      log(label);
      try {
        await run({ page, context, browser });
      } catch (error) {
        failed = true;
        console.log(`FAILED at ${label}`);
        console.log(error instanceof StepFailure ? `  ${error.message}` : error.stack);
        console.log(`  page: ${page.url()}`);
        try {
          for (const line of await failureDetails(page)) console.log(`  ${line}`);
        } catch {
          // Nothing more to read.
        }
        for (const line of consoleErrors) console.log(`  ${line}`);
        for (const line of answers) console.log(`  ${line}`);
        try {
          const file = path.join(SCREENSHOT_DIR, 'failure.png');
          await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
          console.log(`  screenshot ${file}`);
        } catch (shotError) {
          console.log(`  no failure screenshot: ${shotError.message}`);
        }
        break;
      }
    }

    await browser.close();
    close();
    if (failed) {
      process.exitCode = 1;
    } else {
      console.log('OK');
    }
  } catch (error) {
    console.log(`FAILED before the steps: ${error.stack}`);
    close();
    process.exit(1);
  }
}

/** The text of `locator` (a page's or frame's body) for a failure report, quoted. */
export async function quotedText(what, locator) {
  const text = (await locator.innerText({ timeout: 2000 })).trim();
  return [`${what}:`, text.slice(0, 1500).replace(/^/gm, '  | ')];
}
