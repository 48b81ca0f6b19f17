// The Herald dashboard in a real headless Chromium: a new user signs in, creates a webhook,
// watches a delivery arrive, finds it again by the time the log shows, inspects it, retries a
// failed one, rotates the secret; CSRF is enforced; an admin switches org.
//
// Run by crates/herald/tests/it/suite/dashboard_browser.rs, which starts Herald and passes:
//   HERALD_URL        http://127.0.0.1:PORT of a dev-mode Herald (retry schedule "10ms")
//   HERALD_KEY        a tenant key (key_…:…)
//   HERALD_ADMIN_KEY  the admin key
//   HERALD_ORG_ID     the org of HERALD_KEY
//   CHROMIUM          the browser to drive (Debian's /usr/bin/chromium)
//   SCREENSHOT_DIR    where the full-page PNGs go (NN-name.png, and failure.png)
//
// It prints one line per step, then `OK` (exit 0); on failure the step, the error, the page it
// was on and the browser's console errors, and writes failure.png (exit 1): see harness.mjs.
//
// The UI contract it relies on (accessible names, ids and classes) is written out in each step.

import {
  apiOf,
  check,
  log,
  pathOf,
  receiver as makeReceiver,
  required,
  runSteps,
  screenshot,
  step,
  until,
  visible,
  quotedText,
} from './harness.mjs';

const BASE = required('HERALD_URL').replace(/\/+$/, '');
const TENANT_KEY = required('HERALD_KEY');
const ADMIN_KEY = required('HERALD_ADMIN_KEY');
const ORG_ID = required('HERALD_ORG_ID');

// The receiver: Herald delivers here. `receiver.status` is what it answers.
const receiver = makeReceiver();
const api = apiOf(BASE);

// ---------------------------------------------------------------------------------------------
// Helpers

/** Loads `url` again and again until `probe` (run on the loaded page) returns something truthy. */
async function reloadUntil(page, url, what, probe) {
  return until(what, async () => {
    await page.goto(url);
    return probe();
  });
}

/** A link of the main navigation (inside <nav>; anywhere on the page if there is no <nav>). */
async function navLink(page, name) {
  const inNav = page.getByRole('navigation').getByRole('link', { name, exact: true });
  if ((await inNav.count()) > 0) return inNav.first();
  return page.getByRole('link', { name, exact: true }).first();
}

async function clickNav(page, name) {
  const link = await navLink(page, name);
  await visible(link, `the navigation link "${name}"`);
  await link.click();
  await page.waitForLoadState();
}

async function publish(data) {
  const response = await api('POST', '/v1/events', TENANT_KEY, { event_type: 'order.filled', data });
  check(response.status === 202, `POST /v1/events answered ${response.status}: ${response.text}`);
  check(typeof response.json?.id === 'string', `POST /v1/events gave no id: ${response.text}`);
  return response.json.id;
}

async function signIn(page, key) {
  await page.goto(`${BASE}/dashboard/login`);
  await visible(page.getByLabel('API key', { exact: true }), 'the "API key" field');
  await page.getByLabel('API key', { exact: true }).fill(key);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState();
}

/**
 * The <select> labelled `label`. Matched on the start of the name: a <label> that wraps its
 * <select> gives it the name "Status failed" (the label, then the chosen option).
 */
function selectLabelled(page, label) {
  return page.getByLabel(new RegExp(`^\\s*${label}\\b`)).first();
}

async function alertText(page) {
  const alert = await visible(page.getByRole('alert').first(), 'an element with role="alert"');
  return (await alert.innerText()).trim();
}

/** The row of the deliveries log that mentions every one of `texts`. */
function deliveryRow(page, ...texts) {
  let rows = page.getByRole('row');
  for (const text of texts) rows = rows.filter({ hasText: text });
  return rows.first();
}

/** The innermost <section> or <details> whose heading/summary reads exactly `title`. */
function sectionTitled(page, title) {
  return page
    .locator('section, details')
    .filter({ has: page.getByText(title, { exact: true }) })
    .last();
}

async function timelineEntries(page) {
  return page.locator('ol.timeline > li').count();
}

async function signingSecret(page) {
  const secret = await visible(page.locator('#signing-secret'), 'the signing secret (#signing-secret)');
  const value = (await secret.innerText()).trim();
  check(value.startsWith('whsec_'), `#signing-secret should start with whsec_, reads "${value}"`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// The steps

const state = {};

step('the dashboard sends a signed-out visitor to the sign-in page', async ({ page }) => {
  await page.goto(`${BASE}/dashboard`);
  check(
    pathOf(page.url()) === '/dashboard/login',
    `GET /dashboard should land on /dashboard/login, landed on ${page.url()}`,
  );
  await visible(page.getByRole('button', { name: 'Sign in', exact: true }), 'the "Sign in" button');
  await screenshot(page, 'login');
});

step('a wrong key is refused with an alert', async ({ page }) => {
  await signIn(page, 'key_nope:nope');
  const text = await alertText(page);
  check(/invalid/i.test(text), `the alert should say the key is invalid, says "${text}"`);
  check(
    pathOf(page.url()).startsWith('/dashboard/login'),
    `a wrong key should stay on the sign-in page, is on ${page.url()}`,
  );
});

step('an investor key is refused', async ({ page }) => {
  const org = await api('POST', '/v1/orgs', ADMIN_KEY, { name: 'inv' });
  check(org.status === 201 && org.json?.id, `POST /v1/orgs answered ${org.status}: ${org.text}`);
  const key = await api('POST', '/v1/keys', ADMIN_KEY, { org_id: org.json.id, role: 'investor' });
  check(key.status === 201 && key.json?.key, `POST /v1/keys answered ${key.status}: ${key.text}`);
  await signIn(page, key.json.key);
  const text = await alertText(page);
  check(/investor/i.test(text), `the alert should mention "Investor", says "${text}"`);
  check(
    (await page.getByRole('button', { name: 'Sign out', exact: true }).count()) === 0,
    'an investor must not be signed in',
  );
});

step('a tenant signs in: the overview, and a strict HttpOnly session cookie', async ({ page, context }) => {
  await signIn(page, TENANT_KEY);
  check(pathOf(page.url()) === '/dashboard', `signing in should land on /dashboard, landed on ${page.url()}`);
  await visible(page.getByRole('button', { name: 'Sign out', exact: true }), 'the "Sign out" button');
  // All cookies: the session cookie may be scoped to Path=/dashboard, which a URL filter of
  // BASE (path /) would leave out.
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === 'herald_session');
  check(session, `no herald_session cookie; cookies: ${JSON.stringify(cookies.map((c) => c.name))}`);
  check(session.httpOnly === true, 'the herald_session cookie must be HttpOnly');
  check(session.sameSite === 'Strict', `the herald_session cookie must be SameSite=Strict, is ${session.sameSite}`);
  await screenshot(page, 'overview');
});

step('Webhooks starts empty', async ({ page }) => {
  await clickNav(page, 'Webhooks');
  await visible(page.getByText('No webhooks yet').first(), 'the empty state "No webhooks yet"');
  await screenshot(page, 'webhooks-empty');
});

step('a new webhook shows its signing secret once', async ({ page }) => {
  await page.getByRole('link', { name: 'New webhook' }).first().click();
  await page.waitForLoadState();
  await visible(page.getByLabel('Endpoint URL', { exact: true }), 'the "Endpoint URL" field');
  await page.getByLabel('Endpoint URL', { exact: true }).fill(`http://127.0.0.1:${receiver.port}/hook`);
  await page.getByLabel('Name', { exact: true }).fill('orders');
  await page.getByRole('checkbox', { name: 'order.filled', exact: true }).check();
  await page.getByLabel('More patterns', { exact: true }).fill('transfer.*');
  await screenshot(page, 'webhook-form');
  await page.getByRole('button', { name: 'Create webhook', exact: true }).click();
  await page.waitForLoadState();
  state.firstSecret = await signingSecret(page);
  await visible(page.getByRole('button', { name: 'Copy', exact: true }), 'the "Copy" button');
  await screenshot(page, 'webhook-created');

  await clickNav(page, 'Webhooks');
  const link = page.getByRole('link', { name: 'orders', exact: true }).first();
  await visible(link, 'the webhook "orders" in the list');
  await link.click();
  await page.waitForLoadState();
  state.webhookUrl = page.url();
  await visible(page.getByRole('button', { name: 'Rotate secret', exact: true }), 'the "Rotate secret" button');
  check(
    (await page.locator('#signing-secret').count()) === 0,
    `the signing secret is shown again on ${page.url()}: it must be shown once`,
  );
});

step('an event published through the API reaches the receiver', async () => {
  state.firstEvent = await publish({ order_id: 'o_1', qty: 3 });
  log(`  event ${state.firstEvent}`);
  await until('the receiver to get the first delivery', () => receiver.requests.length >= 1);
  const body = receiver.requests[0].body;
  check(body.includes('o_1'), `the receiver got ${body}`);
});

step('the delivery is in the log, and its page shows payload, headers and attempts', async ({ page }) => {
  await clickNav(page, 'Deliveries');
  const logUrl = page.url();
  const row = deliveryRow(page, 'order.filled', 'delivered');
  await reloadUntil(page, logUrl, 'a delivered order.filled row in the deliveries log', () => row.isVisible());
  await screenshot(page, 'deliveries');

  await row.locator('a.delivery-link').first().click();
  await page.waitForLoadState();
  await visible(page.getByRole('heading', { name: /Delivery/ }).first(), 'a heading containing "Delivery"');
  await visible(page.getByText('"order_id": "o_1"').first(), 'the pretty payload with "order_id": "o_1"');
  const headers = sectionTitled(page, 'Headers sent');
  await visible(headers, 'a section "Headers sent"');
  const headersText = await headers.innerText();
  check(headersText.includes('webhook-signature'), `"Headers sent" has no webhook-signature: ${headersText}`);
  check(headersText.includes('v1,'), `"Headers sent" has no v1, signature: ${headersText}`);
  const entries = await timelineEntries(page);
  check(entries === 1, `the attempts timeline (ol.timeline li) should have 1 entry, has ${entries}`);
  await screenshot(page, 'delivery');
});

step('a time read off the log, typed into the filter, finds that delivery', async ({ page }) => {
  await clickNav(page, 'Deliveries');
  const row = deliveryRow(page, 'order.filled', 'delivered');
  await visible(row, 'a delivered order.filled row in the deliveries log');
  const id = (await row.locator('a.delivery-link').first().innerText()).trim();
  // What the viewer sees, script included: the browser runs in a zone other than UTC.
  const shown = (await row.locator('time').first().innerText()).trim();
  check(
    /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/.test(shown),
    `the log should show times as "2026-11-23 09:41:03 UTC", shows "${shown}"`,
  );
  // Each filter's label stays on the line of its input.
  for (const field of await page.locator('form.filters .field').all()) {
    const label = await field.locator('label').boundingBox();
    const input = await field.locator('input, select').boundingBox();
    const middle = label.y + label.height / 2;
    check(
      middle > input.y && middle < input.y + input.height,
      `the label "${await field.locator('label').innerText()}" is not beside its input`,
    );
  }
  await page.getByLabel('From (UTC)', { exact: true }).fill(shown);
  await page.getByLabel('To (UTC)', { exact: true }).fill(shown);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  await page.waitForLoadState();
  await visible(
    page.locator('a.delivery-link', { hasText: id }),
    `the delivery ${id} in the log filtered from and to ${shown}`,
  );
  await screenshot(page, 'deliveries-by-time');
});

step('a failing receiver: the delivery fails after 2 attempts, and Retry delivers it', async ({ page }) => {
  receiver.status = 500;
  state.secondEvent = await publish({ order_id: 'o_2' });
  log(`  event ${state.secondEvent}`);

  await clickNav(page, 'Deliveries');
  await selectLabelled(page, 'Status').selectOption('failed');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  await page.waitForLoadState();
  const filteredUrl = page.url();
  const row = deliveryRow(page, 'order.filled', 'failed');
  await reloadUntil(page, filteredUrl, 'a failed order.filled row in the log filtered by status', () =>
    row.isVisible(),
  );
  await row.locator('a.delivery-link').first().click();
  await page.waitForLoadState();
  const detailUrl = page.url();
  await visible(page.getByText('"order_id": "o_2"').first(), 'the payload of the failed event ("o_2")');
  const entries = await timelineEntries(page);
  check(entries === 2, `the failed delivery should have 2 attempts in the timeline, has ${entries}`);
  const timeline = await page.locator('ol.timeline').first().innerText();
  check(timeline.includes('500'), `the timeline should mention the receiver's 500: ${timeline}`);
  check(receiver.requests.length >= 3, `the receiver should have had 3 requests, had ${receiver.requests.length}`);
  await screenshot(page, 'delivery-failed');

  receiver.status = 204;
  await page.getByRole('button', { name: 'Retry', exact: true }).click();
  await page.waitForLoadState();
  await visible(page.getByText('Retry queued').first(), 'the confirmation "Retry queued"');
  const status = page.locator('#delivery-status');
  await reloadUntil(page, detailUrl, 'the retried delivery to read "delivered" (#delivery-status)', async () =>
    /\bdelivered\b/i.test(await status.innerText()),
  );
  await until('the timeline to show the third attempt', async () => {
    if ((await timelineEntries(page)) === 3) return true;
    await page.goto(detailUrl);
    return false;
  });
  await screenshot(page, 'delivery-retried');
});

step('rotating the secret shows the new one once', async ({ page }) => {
  await clickNav(page, 'Webhooks');
  await page.getByRole('link', { name: 'orders', exact: true }).first().click();
  await page.waitForLoadState();
  await page.getByRole('button', { name: 'Rotate secret', exact: true }).click();
  await page.waitForLoadState();
  const rotated = await signingSecret(page);
  check(rotated !== state.firstSecret, 'the rotated secret is the same as the first one');
  await screenshot(page, 'secret-rotated');
  await page.goto(state.webhookUrl);
  await visible(page.getByRole('button', { name: 'Rotate secret', exact: true }), 'the webhook page');
  check(
    (await page.locator('#signing-secret').count()) === 0,
    'the rotated secret is shown again on the webhook page: it must be shown once',
  );
});

step('a form posted without its CSRF token is refused', async ({ page }) => {
  await page.goto(state.webhookUrl);
  const send = page.getByRole('button', { name: 'Send test event', exact: true });
  await visible(send, 'the "Send test event" button');
  const action = await send.evaluate((button) => button.form?.action ?? null);
  check(action, 'the "Send test event" button is not in a form');
  const removed = await page.evaluate(() => {
    const inputs = document.querySelectorAll('input[name="csrf"]');
    inputs.forEach((input) => input.remove());
    return inputs.length;
  });
  check(removed > 0, 'the page has no input[name="csrf"] to remove');
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.url() === action),
    send.click(),
  ]);
  check(response.status() === 403, `posting without the CSRF token answered ${response.status()}, not 403`);
  await page.waitForLoadState();
  const body = await page.locator('body').innerText();
  check(body.includes('CSRF'), `the 403 page should mention CSRF: ${body.slice(0, 500)}`);
  await screenshot(page, 'csrf-refused');

  const fetched = await page.evaluate(async (url) => {
    const r = await fetch(url, { method: 'POST', body: new URLSearchParams({ x: '1' }) });
    return { status: r.status, text: await r.text() };
  }, action);
  check(fetched.status === 403, `a fetch() POST without the token answered ${fetched.status}: ${fetched.text.slice(0, 300)}`);
});

step('the overview draws its charts', async ({ page }) => {
  await page.goto(`${BASE}/dashboard`);
  await visible(page.locator('svg.chart').first(), 'a chart (svg.chart) on the overview');
  await screenshot(page, 'overview-charts');
});

step('an admin signs in, switches to the tenant org and sees its webhook', async ({ page }) => {
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.waitForLoadState();
  check(
    pathOf(page.url()) === '/dashboard/login',
    `signing out should land on /dashboard/login, landed on ${page.url()}`,
  );
  await signIn(page, ADMIN_KEY);
  check(pathOf(page.url()) === '/dashboard', `the admin should land on /dashboard, landed on ${page.url()}`);
  await clickNav(page, 'Switch org');
  await selectLabelled(page, 'Organization').selectOption(ORG_ID);
  await page.getByRole('button', { name: 'Switch', exact: true }).click();
  await page.waitForLoadState();
  await clickNav(page, 'Webhooks');
  await visible(page.getByRole('link', { name: 'orders', exact: true }).first(), 'the tenant\'s webhook "orders"');
  await screenshot(page, 'admin-webhooks');
  await page.goto(`${BASE}/dashboard`);
  await visible(page.getByText('Queue depth').first(), '"Queue depth" on the admin overview');
  await screenshot(page, 'admin-overview');
});

// ---------------------------------------------------------------------------------------------

runSteps({
  // A zone other than UTC: a page that showed browser-local times would fail the time filter.
  contextOptions: {
    viewport: { width: 1280, height: 900 },
    timezoneId: 'America/New_York',
    locale: 'en-US',
  },
  failureDetails: async (page) => [
    ...(await quotedText('page text', page.locator('body'))),
    `receiver: ${receiver.requests.length} request(s), now answering ${receiver.status}`,
  ],
  servers: [receiver.server],
  before: () => receiver.start(),
});
