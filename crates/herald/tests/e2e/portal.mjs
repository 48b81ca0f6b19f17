// The tenant portal in a real headless Chromium, inside an iframe of another site's page, as a
// platform embeds it: a link minted with the tenant's key opens the portal in the frame; the
// tenant creates a webhook, sends a test event, sees the delivery and retries it; a page on an
// origin HERALD_PORTAL_FRAME_ANCESTORS does not list is refused the frame; a read-only link
// offers no change.
//
// Run by crates/herald/tests/it/suite/portal_browser.rs, which starts Herald and passes:
//   HERALD_URL      http://localhost:PORT of a dev-mode Herald (retry schedule "10ms") whose
//                   HERALD_PORTAL_FRAME_ANCESTORS is http://127.0.0.1:EMBED_PORT: the embedding
//                   page (127.0.0.1) and the portal (localhost) are different sites, so the
//                   portal's cookie is a third-party one in the frame
//   HERALD_KEY      a tenant key (key_…:…)
//   EMBED_PORT      the free loopback port the embedding page is served on
//   CHROMIUM        the browser to drive (Debian's /usr/bin/chromium)
//   SCREENSHOT_DIR  where the PNGs go (NN-name.png, and failure.png)
//
// It prints one line per step, then `OK` (exit 0); on failure the step, the error, the page and
// frame it was on and the browser's console errors, and writes failure.png (exit 1): see
// harness.mjs. Screenshots named
// `frame-…` are the frame's whole page (the iframe stretched to its content); `embedded-…` the
// platform's page with the portal in it.

import http from 'node:http';
import path from 'node:path';

import {
  apiOf,
  check,
  listen,
  log,
  pathOf,
  quotedText,
  receiver as makeReceiver,
  required,
  runSteps,
  shotFile,
  step,
  until,
  visible,
} from './harness.mjs';

/** The theme every link of this script carries. */
const THEME = { title: 'Acme webhooks', accent_color: '#7c3aed', logo_url: 'https://acme.example/logo.svg' };
/** The frame's height on the embedding page (the viewport is 1100×700). */
const FRAME_HEIGHT = 560;

const BASE = required('HERALD_URL').replace(/\/+$/, '');
const TENANT_KEY = required('HERALD_KEY');
const EMBED_PORT = Number(required('EMBED_PORT'));
const EMBED_ORIGIN = `http://127.0.0.1:${EMBED_PORT}`;

// ---------------------------------------------------------------------------------------------
// Servers of the script's own: the receiver Herald delivers to, and the platform's pages.

const receiver = makeReceiver();
const api = apiOf(BASE);

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A platform's app: `/` is a settings page with the portal link `frameSrc` in an iframe. */
function embedder() {
  const site = {
    frameSrc: 'about:blank',
    server: http.createServer((req, res) => {
      if (req.url !== '/') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme · Settings</title><link rel="icon" href="data:,">
<style>
  body { margin: 0; font: 15px/1.4 system-ui, sans-serif; background: #f3f1f8; color: #1d1530; }
  header { background: #1d1530; color: #fff; padding: 12px 24px; font-weight: 600; }
  main { padding: 16px 24px; }
  h1 { font-size: 18px; margin: 0 0 12px; }
  iframe { display: block; width: 100%; height: ${FRAME_HEIGHT}px; border: 1px solid #d9d3e6; border-radius: 8px; background: #fff; }
</style></head>
<body><header>Acme · Dashboard</header><main><h1>Settings › Webhooks</h1>
<iframe id="portal" title="Webhooks" src="${escapeHtml(site.frameSrc)}"></iframe></main></body></html>`);
    }),
    port: 0,
    get origin() {
      return `http://127.0.0.1:${this.port}`;
    },
  };
  return site;
}

const listed = embedder();
const unlisted = embedder();

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * A portal link minted with the tenant key, on Herald's address here: the minted URL is under
 * HERALD_PUBLIC_URL, which the test leaves at its default.
 */
async function mint(extra = {}) {
  const response = await api('POST', '/v1/portal-sessions', TENANT_KEY, { theme: THEME, ...extra });
  check(response.status === 201, `POST /v1/portal-sessions answered ${response.status}: ${response.text}`);
  const link = response.json;
  check(link?.object === 'portal_session', `not a portal_session: ${response.text}`);
  check(link.read_only === (extra.read_only ?? false), `read_only should be ${extra.read_only ?? false}: ${response.text}`);
  check(typeof link.expires_at === 'string', `no expires_at: ${response.text}`);
  const minted = new URL(link.url);
  check(/^\/portal\/[A-Za-z0-9_-]{22,}$/.test(minted.pathname), `the link's path is not /portal/<token>: ${link.url}`);
  return `${BASE}${minted.pathname}`;
}

/** The embedding page's iframe as a Playwright frame, once it has loaded something. */
async function portalFrame(page) {
  const element = await page.waitForSelector('iframe#portal');
  return until('the iframe to have a frame', () => element.contentFrame());
}

/** Opens the embedding page `site` with `src` in its iframe; the iframe's frame. */
async function openEmbedded(page, site, src) {
  site.frameSrc = src;
  await page.goto(`${site.origin}/`);
  const frame = await portalFrame(page);
  state.frame = frame;
  return frame;
}

/** Waits until the frame has loaded a page whose path is `wanted` (a string or a RegExp). */
async function frameAt(frame, wanted, what) {
  await until(`the frame to show ${what} (it is at ${frame.url()})`, () => {
    const at = frame.url().startsWith(BASE) && pathOf(frame.url());
    return typeof wanted === 'string' ? at === wanted : wanted.test(at || '');
  });
  await frame.waitForLoadState();
}

/**
 * Clicks something in the frame that loads another page there (a new document, maybe at the
 * same URL: a form's answer), and waits until that page has loaded.
 */
async function clickAndLoad(frame, locator) {
  const before = frame.url();
  await frame.evaluate(() => {
    window.portalTestOldPage = true;
  });
  await locator.click();
  await until(`clicking ${locator} on ${before} to load another page`, () =>
    frame.evaluate(() => !window.portalTestOldPage && document.readyState === 'complete').catch(() => false),
  );
}

/** Lets the page and the frame lay out and paint (twice) before the next click or picture. */
async function settle(page, frame) {
  const twoFrames = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  await page.evaluate(twoFrames);
  await frame.evaluate(twoFrames);
}

/** The embedding page as the customer sees it, the portal in its frame. */
async function embeddedShot(page, name) {
  const file = shotFile(`embedded-${name}`);
  await page.screenshot({ path: file, fullPage: true });
  log(`  screenshot ${path.basename(file)}`);
}

/**
 * The frame's whole page: the iframe stretched to its content, and the window to the iframe
 * (Chromium paints a cross-site frame only where it is in the window), then both back.
 */
async function frameShot(page, frame, name) {
  const height = (await frame.evaluate(() => document.documentElement.scrollHeight)) + 2;
  const iframe = page.locator('iframe#portal');
  const viewport = page.viewportSize();
  const setHeight = (h) =>
    iframe.evaluate((element, px) => {
      element.style.height = `${px}px`;
    }, h);
  await setHeight(height);
  const top = await iframe.evaluate((element) => element.getBoundingClientRect().top + window.scrollY);
  await page.setViewportSize({ width: viewport.width, height: Math.ceil(top + height + 40) });
  await settle(page, frame);
  const file = shotFile(`frame-${name}`);
  await iframe.screenshot({ path: file });
  await page.setViewportSize(viewport);
  await setHeight(FRAME_HEIGHT);
  await settle(page, frame);
  log(`  screenshot ${path.basename(file)}`);
}

async function timelineEntries(frame) {
  return frame.locator('ol.timeline > li').count();
}

// ---------------------------------------------------------------------------------------------
// The steps

const state = {};

step('a tenant key mints a themed link', async () => {
  state.link = await mint();
  log(`  link ${state.link.replace(/[^/]+$/, '…')}`);
});

step('inside the listed embedder, the link opens the themed portal with a partitioned cookie', async ({ page, context }) => {
  const frame = await openEmbedded(page, listed, state.link);
  await frameAt(frame, '/dashboard/webhooks', 'the portal\'s webhooks page');
  await visible(frame.getByRole('heading', { name: 'Webhooks', exact: true }), 'the heading "Webhooks"');
  const brand = await visible(frame.locator('header .brand'), 'the theme title in the header');
  const brandText = (await brand.innerText()).trim();
  check(brandText === THEME.title, `the header should read "${THEME.title}", reads "${brandText}"`);
  const title = await frame.title();
  check(title.endsWith(`· ${THEME.title}`), `the tab title should end with the theme title, is "${title}"`);
  const accent = await frame.evaluate(() =>
    getComputedStyle(document.documentElement).getPropertyValue('--accent').trim().toLowerCase(),
  );
  check(accent === THEME.accent_color, `--accent should be the theme's ${THEME.accent_color}, is "${accent}"`);
  // The portal, and nothing else: no sign-out, no keys, no org switch.
  for (const name of ['Overview', 'API keys', 'Switch org']) {
    check((await frame.getByRole('link', { name, exact: true }).count()) === 0, `the portal offers "${name}"`);
  }
  check(
    (await frame.getByRole('button', { name: 'Sign out', exact: true }).count()) === 0,
    'the portal offers "Sign out"',
  );
  await visible(frame.getByText('No webhooks yet').first(), 'the empty state "No webhooks yet"');

  const cookies = await context.cookies();
  const cookie = cookies.find((c) => c.name === 'herald_portal');
  check(cookie, `no herald_portal cookie; cookies: ${JSON.stringify(cookies.map((c) => c.name))}`);
  check(cookie.httpOnly === true, 'the herald_portal cookie must be HttpOnly');
  check(cookie.sameSite === 'None', `the framed portal's cookie must be SameSite=None, is ${cookie.sameSite}`);
  check(cookie.secure === true, 'the framed portal\'s cookie must be Secure');
  check(cookie.path === '/dashboard', `the portal cookie's path should be /dashboard, is ${cookie.path}`);
  if ('partitionKey' in cookie) log(`  cookie partition ${cookie.partitionKey}`);
  await embeddedShot(page, 'webhooks-empty');
  await frameShot(page, frame, 'webhooks-empty');
});

step('New webhook: the catalog picker shows descriptions and examples; created, the secret shows once', async ({ page }) => {
  const frame = state.frame;
  await clickAndLoad(frame, await visible(frame.getByRole('link', { name: 'New webhook', exact: true }), 'the "New webhook" link'));
  await frameAt(frame, '/dashboard/webhooks/new', 'the new-webhook form');
  const url = frame.getByLabel('Endpoint URL', { exact: true });
  await visible(url, 'the "Endpoint URL" field');
  await url.fill(`http://127.0.0.1:${receiver.port}/hook`);
  await frame.getByLabel('Name', { exact: true }).fill('orders');
  const filled = frame.getByRole('checkbox', { name: 'order.filled', exact: true });
  await visible(filled, 'the catalog checkbox "order.filled"');
  await filled.check();
  // Its description, and its example opened.
  const choice = frame.locator('div.type').filter({ has: filled });
  const description = (await choice.locator('.muted').first().innerText()).trim();
  check(description === 'Order fully filled', `order.filled should be described "Order fully filled", is "${description}"`);
  await choice.locator('details.example > summary').click();
  const example = await visible(choice.locator('details.example pre'), 'the example of order.filled');
  const exampleText = await example.innerText();
  check(exampleText.includes('"status": "filled"'), `the example of order.filled reads ${exampleText}`);
  await frameShot(page, frame, 'webhook-form');

  await clickAndLoad(frame, frame.getByRole('button', { name: 'Create webhook', exact: true }));
  const secret = await visible(frame.locator('#signing-secret'), 'the signing secret (#signing-secret)');
  const value = (await secret.innerText()).trim();
  check(value.startsWith('whsec_'), `#signing-secret should start with whsec_, reads "${value}"`);
  await visible(frame.getByText('shown only this once').first(), 'the note that the secret is shown once');
  await embeddedShot(page, 'webhook-created');
  await frameShot(page, frame, 'webhook-created');

  // The webhook's own page, reached from the list: the secret is not shown again.
  await clickAndLoad(frame, frame.getByRole('navigation').getByRole('link', { name: 'Webhooks', exact: true }));
  await clickAndLoad(frame, await visible(frame.getByRole('link', { name: 'orders', exact: true }).first(), 'the webhook "orders" in the list'));
  await frameAt(frame, /^\/dashboard\/webhooks\/[^/]+$/, 'the webhook\'s page');
  state.webhookUrl = frame.url();
  check((await frame.locator('#signing-secret').count()) === 0, 'the signing secret is shown again: it must be shown once');
});

step('Send test event: the receiver gets it, and it shows on the webhook\'s page and in the log', async ({ page }) => {
  const frame = state.frame;
  await clickAndLoad(frame, await visible(frame.getByRole('button', { name: 'Send test event', exact: true }), 'the "Send test event" button'));
  await visible(frame.getByText('Test event sent.').first(), 'the notice "Test event sent."');
  state.deliveryUrl = frame.url();
  check(/^\/dashboard\/deliveries\/[^/]+$/.test(pathOf(state.deliveryUrl)), `Send test event should land on the delivery, is at ${state.deliveryUrl}`);
  await until('the receiver to get the test event', () => receiver.requests.length >= 1);
  check(receiver.requests[0].headers['webhook-signature']?.startsWith('v1,'), 'the test delivery is not signed');
  state.testEventId = receiver.requests[0].headers['webhook-id'];

  // The webhook's page lists it, delivered (reloaded until it is).
  await until('a delivered delivery on the webhook\'s page', async () => {
    await frame.goto(state.webhookUrl);
    const row = frame.getByRole('row').filter({ hasText: 'delivered' });
    return (await row.count()) > 0 && (await frame.locator('a.delivery-link').count()) > 0;
  });
  await frameShot(page, frame, 'webhook-detail');

  // And the delivery log.
  await clickAndLoad(frame, frame.getByRole('navigation').getByRole('link', { name: 'Deliveries', exact: true }));
  await frameAt(frame, '/dashboard/deliveries', 'the delivery log');
  const logUrl = frame.url();
  await until('a delivered row in the delivery log', async () => {
    await frame.goto(logUrl);
    return (await frame.getByRole('row').filter({ hasText: 'delivered' }).count()) > 0;
  });
  await embeddedShot(page, 'deliveries');
  await frameShot(page, frame, 'deliveries');
});

step('the delivery\'s page: Retry sends it again', async ({ page }) => {
  const frame = state.frame;
  const row = frame.getByRole('row').filter({ hasText: 'delivered' }).first();
  await clickAndLoad(frame, row.locator('a.delivery-link').first());
  await frameAt(frame, /^\/dashboard\/deliveries\/[^/]+$/, 'a delivery\'s page');
  const detailUrl = frame.url();
  check(pathOf(detailUrl) === pathOf(state.deliveryUrl), `the log's delivery ${detailUrl} is not the test's ${state.deliveryUrl}`);
  await visible(frame.locator('#delivery-status'), 'the delivery\'s status (#delivery-status)');
  check(/\bdelivered\b/i.test(await frame.locator('#delivery-status').innerText()), 'the test delivery should read delivered');
  check((await timelineEntries(frame)) === 1, `the timeline should have 1 attempt, has ${await timelineEntries(frame)}`);
  await frameShot(page, frame, 'delivery');

  const before = receiver.requests.length;
  await clickAndLoad(frame, frame.getByRole('button', { name: 'Retry', exact: true }));
  await visible(frame.getByText('Retry queued').first(), 'the confirmation "Retry queued"');
  await until('the receiver to get the retried delivery', () => receiver.requests.length > before);
  const again = receiver.requests[receiver.requests.length - 1];
  check(again.headers['webhook-id'] === state.testEventId, `the retry carried another event id: ${again.headers['webhook-id']}`);
  await until('the timeline to show the second attempt', async () => {
    await frame.goto(detailUrl);
    return (await timelineEntries(frame)) === 2;
  });
  await embeddedShot(page, 'delivery-retried');
  await frameShot(page, frame, 'delivery-retried');

  // The list now has something to show in each column.
  await clickAndLoad(frame, frame.getByRole('navigation').getByRole('link', { name: 'Webhooks', exact: true }));
  await visible(frame.getByRole('link', { name: 'orders', exact: true }).first(), 'the webhook "orders" in the list');
  await embeddedShot(page, 'webhooks');
  await frameShot(page, frame, 'webhooks');
});

step('a page on an origin not listed is refused the frame', async ({ context }) => {
  const link = await mint();
  // What Herald answers, read without a browser (the link, then the page it leads to with the
  // cookie it set): framing allowed for the listed origin alone.
  const opened = await fetch(link, { redirect: 'manual' });
  const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0];
  check(cookie.startsWith('herald_portal='), `opening the link set no portal cookie: ${cookie}`);
  for (const [url, headers] of [
    [link, {}],
    [`${BASE}/dashboard/webhooks`, { cookie }],
  ]) {
    const response = await fetch(url, { redirect: 'manual', headers });
    const csp = response.headers.get('content-security-policy') ?? '';
    const ancestors = /frame-ancestors ([^;]*)/.exec(csp)?.[1]?.trim();
    check(ancestors === EMBED_ORIGIN, `${pathOf(url)}: frame-ancestors should be exactly ${EMBED_ORIGIN}, CSP is "${csp}"`);
    check(!csp.includes(`:${unlisted.port}`), `${pathOf(url)}: the unlisted origin is in the CSP "${csp}"`);
  }

  const page = await context.newPage();
  const refusals = [];
  page.on('console', (message) => {
    if (/frame-ancestors|Refused to (display|frame)/i.test(message.text())) refusals.push(message.text());
  });
  const framed = [];
  page.on('response', (response) => {
    if (response.frame() !== page.mainFrame() && response.url().startsWith(BASE)) {
      framed.push({ url: response.url(), status: response.status(), csp: response.headers()['content-security-policy'] ?? '' });
    }
  });
  unlisted.frameSrc = link;
  await page.goto(`${unlisted.origin}/`);
  const element = await page.waitForSelector('iframe#portal');
  // The frame navigated: the link, then the portal page the browser then refuses to show.
  await until('the frame to have been answered by the portal', () =>
    framed.some((r) => pathOf(r.url) === '/dashboard/webhooks'),
  );
  // Give a wrongly shown portal time to render: the check below must not pass by being early.
  await page.waitForTimeout(1000);
  const frame = await element.contentFrame();
  const url = frame?.url() ?? '(no frame)';
  let text = '';
  if (frame && !url.startsWith('chrome-error://')) {
    text = await frame.evaluate(() => document.body?.innerText ?? '').catch(() => '');
  }
  log(`  unlisted embedder's frame at ${url}; ${refusals.length} refusal(s) in the console`);
  for (const line of refusals) log(`    ${line.slice(0, 200)}`);
  check(!url.startsWith(BASE), `the frame shows the portal page ${url} on an unlisted origin`);
  check(!text.includes(THEME.title) && !text.includes('Webhooks'), `the frame shows portal content: ${text.slice(0, 300)}`);
  check(
    url.startsWith('chrome-error://') || url === 'about:blank' || url === '(no frame)',
    `the refused frame should end on Chromium's error page, is at ${url}`,
  );
  const shownHere = framed.filter((r) => pathOf(r.url) === '/dashboard/webhooks');
  for (const r of shownHere) {
    check(r.csp.includes(`frame-ancestors ${EMBED_ORIGIN}`), `the portal page came without its frame-ancestors: ${r.csp}`);
  }
  const file = shotFile('unlisted-embedder-refused');
  await page.screenshot({ path: file, fullPage: true });
  log(`  screenshot ${path.basename(file)}`);
  await page.close();
});

step('a read-only link in the listed embedder shows the webhook and offers no change', async ({ page }) => {
  const link = await mint({ read_only: true });
  const frame = await openEmbedded(page, listed, link);
  await frameAt(frame, '/dashboard/webhooks', 'the read-only portal\'s webhooks page');
  await visible(frame.getByRole('link', { name: 'orders', exact: true }).first(), 'the webhook "orders"');
  check(
    (await frame.getByRole('link', { name: 'New webhook', exact: true }).count()) === 0,
    'a read-only portal offers "New webhook"',
  );
  await clickAndLoad(frame, frame.getByRole('link', { name: 'orders', exact: true }).first());
  await frameAt(frame, /^\/dashboard\/webhooks\/[^/]+$/, 'the webhook\'s page');
  for (const name of ['Send test event', 'Rotate secret', 'Disable']) {
    check((await frame.getByRole('button', { name, exact: true }).count()) === 0, `a read-only portal offers "${name}"`);
  }
  await frameShot(page, frame, 'read-only-webhook');
});

// ---------------------------------------------------------------------------------------------

runSteps({
  contextOptions: {
    viewport: { width: 1100, height: 700 },
    timezoneId: 'America/New_York',
    locale: 'en-US',
  },
  failureDetails: async () => [
    `frame: ${state.frame?.url()}`,
    ...(await quotedText('frame text', state.frame.locator('body'))),
    `receiver: ${receiver.requests.length} request(s)`,
  ],
  servers: [receiver.server, listed.server, unlisted.server],
  before: async () => {
    await receiver.start();
    listed.port = await listen(listed.server, EMBED_PORT);
    unlisted.port = await listen(unlisted.server);
    log(`embedder on ${listed.origin} (listed), ${unlisted.origin} (not listed); Herald at ${BASE}`);
  },
});
