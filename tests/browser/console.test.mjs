// The onboarding journey, click by click, in a real browser (Debian's chromium driven by
// playwright-core) against the real stack: sign in → create a draft with three variants → launch
// at 10% → events arrive → exposures and the lift table update live → export → settings → stop
// → list pages → delete a draft → a stopping rule pauses an experiment by itself: the alert is
// pushed to its results page, listed and acknowledged in the feed, and its rule, state and reason
// are on the experiment's page, where rules and a draft's rollout plan are edited.
// Screenshots of every screen go to $SCREENSHOT_DIR (test-output/screenshots by default).
//
// Run through scripts/test-browser.sh, which builds the dashboard, starts the control plane and
// sets LITMUS_URL and LITMUS_TOKEN (and has the watch job look every second). Every wait is on UI
// state; nothing sleeps, except polling the API for what background jobs do.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../lib/random.mjs';

const require = createRequire(new URL('../../dashboard/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const BASE = process.env.LITMUS_URL ?? 'http://127.0.0.1:8010';
const TOKEN = process.env.LITMUS_TOKEN ?? 'devtoken';
const SHOTS = process.env.SCREENSHOT_DIR ?? new URL('../../test-output/screenshots/', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TIMEOUT = 15_000;

const run = Date.now().toString(36);
const NAME = `Model Ranking ${run}`;

let browser;
let context;
let page;
const problems = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    // playwright gives every launch a fresh, empty --user-data-dir of its own.
  });
  // Reduced motion turns chart animations off, so screenshots show final values.
  context = await browser.newContext({ viewport: { width: 1280, height: 860 }, reducedMotion: 'reduce', acceptDownloads: true });
  context.setDefaultTimeout(TIMEOUT);
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The browser logs refused requests itself: the WebSocket (when the server has none yet)
    // and 4xx answers the console handles (a deliberate bad token, optional endpoints).
    if (m.type() === 'error' && !/WebSocket connection|Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
});

after(async () => {
  await browser?.close();
});

async function shot(name, opts = {}) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, ...opts });
}

async function api(method, path, body) {
  const res = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Waits until the element's text matches. */
async function textIs(locator, expected) {
  const re = expected instanceof RegExp ? expected : new RegExp(`^\\s*${String(expected).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  await locator.filter({ hasText: re }).first().waitFor();
}

const rand = mulberry32(42);
const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

// The journey is one story: after a failed step the rest are skipped (not timed out one by one),
// and a screenshot of the failure is kept.
let broken = null;
function step(name, fn) {
  test(name, async (t) => {
    if (broken) return t.skip(`skipped after the failure in “${broken}”`);
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      await shot(`failure-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`).catch(() => {});
      throw e;
    }
  });
}

let experimentId;
let experimentKey;

step('sign in with an API token (a wrong one is refused)', async () => {
  await page.goto(`${BASE}/experiments`);
  const token = page.getByLabel('API token');
  await token.waitFor();
  await shot('01-sign-in');
  await token.fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That token was not accepted').waitFor();
  await token.fill(TOKEN);
  await page.getByLabel('Your name (for the audit log)').fill('ds.tester');
  await token.press('Enter'); // keyboard submit
  await page.getByRole('heading', { level: 1, name: 'Experiments' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/experiments');
  assert.ok(!page.url().includes(TOKEN), 'the token never appears in a URL');
  // Keyboard: the first Tab reaches the skip link, with a visible focus ring.
  await shot('02-experiments');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Skip to content');
});

step('create a draft with three variants; errors show next to their fields', async () => {
  await page.getByRole('link', { name: 'New experiment' }).click();
  await page.getByRole('heading', { level: 1, name: 'New experiment' }).waitFor();
  await page.getByLabel(/^Name/).fill(NAME);
  await page.getByLabel(/^Description/).fill('Model C ranks better than A and B: higher order value per store.');
  await page.getByLabel(/^Owner team/).fill('pricing-ds');
  await page.getByLabel('Unit type').fill('store_id');

  const row = (i) => page.getByTestId(`variant-${i}`);
  const setVariant = async (i, key, name, weight, config) => {
    await row(i).getByLabel('Key').fill(key);
    await row(i).getByLabel('Display name').fill(name);
    await row(i).getByLabel('Weight').fill(weight);
    await row(i).getByLabel('Config JSON').fill(config);
  };
  await setVariant(0, 'model_a', 'Model A', '0.5', '{"model": "a"}');
  await setVariant(1, 'model_b', 'Model B', '0.3', '{"model": "b"}');
  await page.getByRole('button', { name: 'Add variant' }).click();
  await setVariant(2, 'model_c', 'Model C', '0.3', '{"model":');
  // Config JSON is checked as you type; weights must sum to 1.
  await row(2).getByText('Not valid JSON').waitFor();
  await textIs(page.getByTestId('weight-sum'), /1\.1000.*must be 1/);
  await row(2).getByLabel('Config JSON').fill('{"model": "c"}');
  await page.getByRole('button', { name: 'Split weights evenly' }).click();
  await textIs(page.getByTestId('weight-sum'), /1\.0000 ✓/);
  assert.equal(await row(0).getByLabel('Weight').inputValue(), '0.3334');

  // A targeting mistake only the server catches: its message lands next to the targeting editor.
  await page.getByRole('button', { name: 'JSON', exact: true }).click();
  await page.getByLabel('Targeting condition (JSON)').fill('{"country": {"inn": ["US"]}}');
  await page.locator('#f-ramp-pct').fill('10');
  await page.getByRole('button', { name: 'Save draft' }).click();
  const targetingError = page.locator('#f-targeting-error');
  await textIs(targetingError, /targeting\.country\.inn.*unknown operator/i);
  await page.getByTestId('form-error').waitFor();
  await shot('03-new-experiment-error');

  // A GrowthBook condition is read in its own dialect, said beside it, and its faults are ours.
  await page.getByLabel('Targeting condition (JSON)').fill('{"$and": [{"country": {"$in": "US"}}]}');
  await textIs(page.getByTestId('targeting-dialect'), /GrowthBook's dialect/);
  await page.getByRole('button', { name: 'Save draft' }).click();
  await textIs(targetingError, /targeting\.\$and\[0\]\.country\.\$in.*expected an array/i);

  await page.getByLabel('Targeting condition (JSON)').fill('{"country": {"in": ["US", "CA"]}}');
  await textIs(page.getByTestId('targeting-dialect'), /Litmus's dialect/);
  await page.getByRole('button', { name: 'Rules', exact: true }).click();
  assert.equal(await page.locator('#rule-0-attr').inputValue(), 'country');
  assert.equal(await page.locator('#rule-0-value').inputValue(), 'US, CA');

  // The sample-size calculator (the API's, or a browser estimate where the endpoint is missing).
  await page.getByRole('button', { name: 'Calculate sample size' }).click();
  await textIs(page.getByTestId('sample-size-result'), /units per variant/);
  // Its total is for the form's three variants, and it names no other count.
  await textIs(page.getByTestId('sample-size-arms'), '3');
  const perVariant = Number((await page.getByTestId('sample-size-per').innerText()).replace(/,/g, ''));
  await textIs(page.getByTestId('sample-size-total'), (perVariant * 3).toLocaleString('en-US'));
  assert.doesNotMatch(await page.getByTestId('sample-size-result').innerText(), /\b2 variants|variants:? 2\b/);
  await shot('04-new-experiment');

  await page.getByRole('button', { name: 'Save draft' }).click();
  await page.getByTestId('flash').waitFor();
  const m = /\/experiments\/([0-9a-f-]{36})$/.exec(new URL(page.url()).pathname);
  assert.ok(m, `detail URL, got ${page.url()}`);
  experimentId = m[1];
  await textIs(page.getByTestId('lifecycle').getByTestId('status'), 'DRAFT');
  const exp = await api('GET', `/experiments/${experimentId}`);
  experimentKey = exp.key;
  assert.equal(exp.status, 'draft');
  assert.deepEqual(exp.variants.map((v) => v.key), ['model_a', 'model_b', 'model_c']);
  assert.deepEqual(exp.variants.map((v) => v.config_json), [{ model: 'a' }, { model: 'b' }, { model: 'c' }]);
  assert.deepEqual(exp.targeting, { country: { in: ['US', 'CA'] } });
  assert.equal(exp.owner_team, 'pricing-ds');
  assert.equal(exp.unit_type, 'store_id');
  await shot('05-detail-draft');
});

step('while a draft, variants change in settings', async () => {
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('button', { name: 'Save changes' }).waitFor();
  const config = page.getByTestId('variant-1').getByLabel('Config JSON');
  assert.ok(await config.isEnabled(), 'variants are editable in a draft');
  await config.fill('{"model": "b", "temperature": 0.2}');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await textIs(page.getByTestId('settings-saved'), /Saved \(variants\)/);
  const exp = await api('GET', `/experiments/${experimentId}`);
  assert.deepEqual(exp.variants[1].config_json, { model: 'b', temperature: 0.2 });
  await page.getByRole('link', { name: 'Overview' }).click();
});

step('launch at 10%', async () => {
  assert.ok(experimentId, 'created');
  const lifecycle = page.getByTestId('lifecycle');
  assert.equal(await page.locator('#f-ramp-pct').inputValue(), '10');
  await page.getByRole('button', { name: 'Launch / Update ramp' }).click();
  await textIs(lifecycle.getByTestId('status'), 'RUNNING');
  await textIs(page.getByTestId('action-message'), 'Launched at 10%.');
  await page.getByTestId('audit-table').getByRole('cell', { name: 'launch', exact: true }).waitFor();
  assert.ok(await page.getByRole('button', { name: 'Pause' }).isEnabled());
  const exp = await api('GET', `/experiments/${experimentId}`);
  assert.equal(exp.status, 'running');
  assert.equal(exp.ramp_pct, 10);
  await shot('06-detail-running');
});

/** Assigns units through the API (ramp 10%) and returns those in the experiment. */
async function assignUnits(from, to) {
  const units = [];
  for (let start = from; start < to; start += 50) {
    const answers = await Promise.all(
      Array.from({ length: Math.min(50, to - start) }, (_, j) =>
        api('POST', '/assign', { experiment: experimentKey, unit_id: `store-${start + j}`, attributes: { country: 'US' } }).then((a) => ({ unit: `store-${start + j}`, ...a })),
      ),
    );
    units.push(...answers.filter((a) => a.in_experiment));
  }
  return units;
}

const EFFECT = { model_a: 100, model_b: 102, model_c: 115 };

function eventsFor(units, t0) {
  const events = [];
  for (const u of units) {
    const ts = (s) => new Date(t0 + s * 1000).toISOString();
    events.push({ kind: 'exposure', experiment: experimentKey, unit_id: u.unit, variant_key: u.variant_key, ts: ts(0), event_id: `${experimentKey}-x-${u.unit}` });
    const value = Math.round((EFFECT[u.variant_key] + 12 * gauss()) * 100) / 100;
    events.push({ kind: 'metric', experiment: experimentKey, unit_id: u.unit, variant_key: u.variant_key, metric: 'order_value', value, ts: ts(1), event_id: `${experimentKey}-m-${u.unit}` });
    if (rand() < (u.variant_key === 'model_c' ? 0.3 : 0.15)) {
      events.push({ kind: 'conversion', experiment: experimentKey, unit_id: u.unit, variant_key: u.variant_key, metric: 'purchase', ts: ts(2), event_id: `${experimentKey}-c-${u.unit}` });
    }
  }
  return events;
}

const count = (units, key) => units.filter((u) => u.variant_key === key).length;

step('results move live as events arrive: exposures, metric summaries, lift table', async (t) => {
  assert.ok(experimentId, 'launched');
  await page.getByRole('link', { name: 'Results' }).first().click();
  await page.getByRole('heading', { level: 2, name: 'Exposures' }).waitFor();
  await textIs(page.getByTestId('total-exposures'), '0');
  await page.getByTestId('no-lift').waitFor();
  const mode = page.locator('[data-testid="live-mode"][data-mode="polling"], [data-testid="live-mode"][data-mode="socket"]');
  await mode.waitFor();
  await shot('07-results-empty');

  const first = await assignUnits(0, 1500);
  assert.ok(first.length > 60, `about 10% of 1500 units are in the experiment, got ${first.length}`);
  const t0 = Date.now() - 10 * 60_000;
  const sent = eventsFor(first, t0);
  const ack = await api('POST', '/events/batch', { events: sent });
  assert.equal(ack.accepted, sent.length, JSON.stringify(ack).slice(0, 300));
  // No reload: the page picks the new numbers up by itself (WebSocket or 2-second polling).
  await textIs(page.getByTestId('total-exposures'), first.length.toLocaleString('en-US'));
  for (const key of ['model_a', 'model_b', 'model_c']) await textIs(page.getByTestId(`exposures-${key}`), String(count(first, key)));
  await page.getByTestId('lift-row-order_value-model_b').waitFor();
  await page.getByTestId('lift-row-order_value-model_c').waitFor();
  await page.getByTestId('lift-row-purchase-model_c').waitFor();
  await page.getByTestId('forest-order_value').waitFor();
  await page.getByTestId('exposure-chart').waitFor();
  const url = page.url();

  const second = await assignUnits(1500, 3000);
  const sent2 = eventsFor(second, t0 + 5 * 60_000);
  assert.equal((await api('POST', '/events/batch', { events: sent2 })).accepted, sent2.length);
  const all = [...first, ...second];
  t.diagnostic(`units in the experiment: ${first.length} + ${second.length}; live updates by ${await mode.getAttribute('data-mode')}`);
  await textIs(page.getByTestId('total-exposures'), all.length.toLocaleString('en-US'));
  for (const key of ['model_a', 'model_b', 'model_c']) await textIs(page.getByTestId(`exposures-${key}`), String(count(all, key)));
  assert.equal(page.url(), url, 'updated in place');

  // The lift table agrees with the API's numbers.
  const results = await api('GET', `/experiments/${experimentId}/results`);
  const lift = results.lift.find((l) => l.metric === 'order_value' && l.variant === 'model_c');
  assert.ok(lift.p_value < 0.05, `model_c is clearly better (p = ${lift.p_value})`);
  const rowText = await page.getByTestId('lift-row-order_value-model_c').innerText();
  assert.match(rowText, /higher/);
  assert.match(rowText, new RegExp(`\\+${(lift.rel_lift * 100).toFixed(1).replace('.', '\\.')}%`));
  const mean = results.variants.find((v) => v.key === 'model_a').metrics.order_value.mean;
  await textIs(page.getByTestId('mean-order_value-model_a'), mean.toLocaleString('en-US', { maximumFractionDigits: mean >= 100 ? 2 : 4 }));
  // P(best): a row per variant with the API's probability; the settings in words.
  const best = results.bayesian.find((b) => b.metric === 'order_value' && b.kind === 'mean');
  assert.ok(best?.prob_best, JSON.stringify(best));
  for (const key of ['model_a', 'model_b', 'model_c']) {
    await textIs(page.getByTestId(`prob-best-order_value-${key}`), new RegExp(`${key}.*${(best.prob_best[key] * 100).toFixed(1).replace('.', '\\.')}%`, 's'));
  }
  await textIs(page.getByTestId('readout-settings'), /Beta\(1, 1\) prior on conversion rates; flat prior on differences of means; always-valid intervals tuned to 5,000 units/);
  await textIs(page.getByTestId('readout-filter'), /every exposed unit/);
  // Cumulative lift over time, where the server has the timeseries endpoint.
  const ts = await fetch(`${BASE}/api/v1/experiments/${experimentId}/timeseries?interval=minute`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  await page.getByTestId(ts.ok ? 'lift-series' : 'timeseries-unavailable').waitFor();
  await shot('08-results');
});

step('export results as CSV and Markdown', async () => {
  const csv = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]).then(([d]) => d);
  assert.equal(csv.suggestedFilename(), `${experimentKey}-results.csv`);
  const csvText = readFileSync(await csv.path(), 'utf8');
  assert.match(csvText, /^experiment,variant,weight,exposures/);
  assert.match(csvText, /model_c/);
  const md = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download Markdown' }).click()]).then(([d]) => d);
  assert.match(readFileSync(await md.path(), 'utf8'), new RegExp(`^# ${NAME}`));
});

step('settings: variants are locked once running; metadata still changes', async () => {
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByText('Variants can change only while the experiment is a draft.').waitFor();
  assert.ok(await page.getByTestId('variant-0').getByLabel('Weight').isDisabled());
  const description = page.getByLabel(/^Description/);
  await description.fill('Model C ranks better than A and B (updated from the console).');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await textIs(page.getByTestId('settings-saved'), /Saved \(description\)/);
  const exp = await api('GET', `/experiments/${experimentId}`);
  assert.match(exp.description, /updated from the console/);
  await shot('09-settings');
});

step('pause, resume, update the ramp', async () => {
  await page.getByRole('link', { name: 'Overview' }).click();
  const lifecycle = page.getByTestId('lifecycle');
  await textIs(lifecycle.getByTestId('status'), 'RUNNING');
  await page.getByRole('button', { name: 'Pause' }).click();
  await textIs(lifecycle.getByTestId('status'), 'PAUSED');
  assert.ok(await page.getByRole('button', { name: 'Pause' }).isDisabled());
  await page.locator('#f-ramp-pct').fill('20');
  await page.getByRole('button', { name: 'Launch / Update ramp' }).click();
  await textIs(page.getByTestId('action-message'), 'Launched at 20%.');
  await textIs(lifecycle.getByTestId('status'), 'RUNNING');
  await page.locator('#f-ramp-pct').fill('25');
  await page.getByRole('button', { name: 'Launch / Update ramp' }).click();
  await textIs(page.getByTestId('action-message'), 'Ramp updated to 25%.');
  // A bad ramp is refused next to the field.
  await page.locator('#f-ramp-pct').fill('150');
  await page.getByRole('button', { name: 'Launch / Update ramp' }).click();
  await textIs(page.locator('#f-ramp-pct-error'), /0 to 100/);
  assert.equal((await api('GET', `/experiments/${experimentId}`)).ramp_pct, 25);
});

step('stop, with a confirmation', async () => {
  const lifecycle = page.getByTestId('lifecycle');
  await textIs(lifecycle.getByTestId('status'), 'RUNNING');
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await shot('10-stop-confirm', { fullPage: false });
  // Cancel first: nothing changes.
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal((await api('GET', `/experiments/${experimentId}`)).status, 'running');
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await dialog.getByRole('button', { name: 'Stop experiment' }).click();
  await textIs(lifecycle.getByTestId('status'), 'STOPPED');
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(await page.getByRole('button', { name: 'Launch / Update ramp' }).isDisabled());
  await page.getByTestId('audit-table').getByRole('cell', { name: 'stop', exact: true }).waitFor();
  const audit = await api('GET', `/experiments/${experimentId}/audit`);
  assert.deepEqual(audit.map((a) => a.action), ['create', 'update', 'launch', 'update', 'pause', 'launch', 'ramp', 'stop']);
  // The key's name first (the console's env admin token), then the signed-in name it sends.
  assert.ok(audit.slice(1).every((a) => a.actor === 'env:admin (ds.tester)'), `actions carry the signed-in name: ${JSON.stringify(audit.map((a) => a.actor))}`);
  assert.equal((await api('GET', `/experiments/${experimentId}`)).status, 'stopped');
  await shot('11-detail-stopped');
});

step('list: status filter and search', async () => {
  await page.getByRole('link', { name: 'Experiments', exact: true }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Experiments' }).waitFor();
  const filters = page.getByRole('group', { name: 'Filter by status' });
  // The list says which filter its rows answer (data-filter="status|query"): wait for that.
  const listFor = (filter) => page.locator(`[data-testid="experiments-table"][data-filter="${filter}"], [data-testid="experiments-empty"][data-filter="${filter}"]`);
  await filters.getByRole('button', { name: 'Stopped' }).click();
  await listFor('stopped|').waitFor();
  assert.match(page.url(), /status=stopped/);
  await listFor('stopped|').getByRole('link', { name: NAME }).waitFor();
  await filters.getByRole('button', { name: 'Running' }).click();
  await listFor('running|').waitFor();
  assert.equal(await listFor('running|').getByRole('link', { name: NAME }).count(), 0);
  await filters.getByRole('button', { name: 'All' }).click();
  await page.getByLabel('Search experiments').fill(run);
  await listFor(`|${run}`).waitFor();
  assert.match(page.url(), new RegExp(`q=${run}`));
  assert.equal(await listFor(`|${run}`).locator('tbody tr').count(), 1);
  await listFor(`|${run}`).getByRole('link', { name: NAME }).waitFor();
  await shot('12-list');
});

step('list: pages of 50, “Load more” for the rest', async () => {
  const tag = `paged${run}`;
  const arms = [{ key: 'a', weight: 0.5 }, { key: 'b', weight: 0.5 }];
  for (let i = 0; i < 53; i++) {
    await api('POST', '/experiments', { name: `Paged ${tag} ${String(i).padStart(2, '0')}`, variants: arms });
  }
  const list = page.locator(`[data-testid="experiments-table"][data-filter="|${tag}"]`);
  await page.getByLabel('Search experiments').fill(tag);
  await list.waitFor();
  assert.equal(await list.locator('tbody tr').count(), 50);
  await textIs(page.getByTestId('shown-count'), '50 shown, more to load');
  await page.getByTestId('load-more').click();
  await textIs(page.getByTestId('shown-count'), '53 shown');
  assert.equal(await page.getByTestId('load-more').count(), 0, 'nothing more to load');
  // newest first, each once, across the two pages
  const names = await list.locator('tbody tr .row-link').allTextContents();
  assert.deepEqual(names.map((n) => n.trim()), Array.from({ length: 53 }, (_, i) => `Paged ${tag} ${String(52 - i).padStart(2, '0')}`));
  await shot('12b-list-load-more');
});

step('delete a draft, with a confirmation; anything that ran has no delete', async () => {
  const doomed = await api('POST', '/experiments', { name: `Doomed ${run}`, variants: [{ key: 'a', weight: 0.5 }, { key: 'b', weight: 0.5 }] });
  await page.goto(`${BASE}/experiments/${doomed.id}`);
  await textIs(page.getByTestId('lifecycle').getByTestId('status'), 'DRAFT');
  await page.getByRole('button', { name: 'Delete draft' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await shot('12c-delete-confirm', { fullPage: false });
  await dialog.getByRole('button', { name: 'Delete draft' }).click();
  await textIs(page.getByTestId('flash'), `Draft “Doomed ${run}” deleted.`);
  assert.equal(new URL(page.url()).pathname, '/experiments');
  const gone = await fetch(`${BASE}/api/v1/experiments/${doomed.id}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(gone.status, 404);
  const audit = await api('GET', `/experiments/${doomed.id}/audit`);
  assert.deepEqual(audit.map((a) => [a.action, a.actor]), [['create', 'env:admin'], ['delete', 'env:admin (ds.tester)']]);
  await page.goto(`${BASE}/experiments/${experimentId}`);
  await textIs(page.getByTestId('lifecycle').getByTestId('status'), 'STOPPED');
  assert.equal(await page.getByRole('button', { name: 'Delete draft' }).count(), 0);
});

step('without the WebSocket, results fall back to polling every 2 s', async () => {
  // The socket is refused as soon as it opens (a proxy that drops upgrades, an older server).
  await page.routeWebSocket(/\/api\/v1\/ws\//, (ws) => ws.close());
  await page.goto(`${BASE}/experiments/${experimentId}/results`);
  const total = page.getByTestId('total-exposures');
  await total.waitFor();
  const before = Number((await total.innerText()).replace(/,/g, ''));
  await page.locator('[data-testid="live-mode"][data-mode="polling"]').waitFor();
  await api('POST', '/events/batch', {
    events: [{ kind: 'exposure', experiment: experimentKey, unit_id: `late-${run}`, variant_key: 'model_b', event_id: `${experimentKey}-late` }],
  });
  await textIs(total, (before + 1).toLocaleString('en-US'));
});

step('results render what newer servers add: SRM, guardrails, bandit, extra statistics', async () => {
  // A results document with every optional part, served in place of the real one.
  const arm = (key, weight, exposures, mean, rate, win) => ({
    key, weight, exposures, win_probability: win,
    metrics: { reward: { units: exposures, count: exposures * 2, sum: mean * exposures, mean, std: 0.4 } },
    conversions: { click: { units: Math.round(rate * exposures), rate } },
  });
  const lift = (variant, abs, lo, hi, p) => ({
    metric: 'reward', kind: 'mean', control: 'arm_a', variant, control_value: 1, variant_value: 1 + abs, abs_lift: abs, rel_lift: abs,
    ci_low: lo, ci_high: hi, p_value: p, test: 'welch_t', p_value_adjusted: Math.min(1, p * 2),
    bayes: { prob_better: p < 0.05 ? 0.99 : 0.4, expected_loss: 0.002 }, cuped: { abs_lift: abs * 0.9, ci_low: lo * 0.8, ci_high: hi * 0.8 },
    sequential: variant === 'arm_b' ? { not_enough_data: 'needs a positive variance and at least 2 units' } : { ci_low: lo * 1.5, ci_high: hi * 1.5, p_value: p * 3, method: 'msprt_normal_mixture', tuning_n: 5000 },
  });
  const doc = {
    experiment: experimentKey, id: experimentId, status: 'running', version: 9, control: 'arm_a', alpha: 0.05, generated_at: new Date().toISOString(),
    variants: [arm('arm_a', 0.34, 900, 1, 0.1, 0.01), arm('arm_b', 0.33, 1200, 0.9, 0.08, 0.0), arm('arm_c', 0.33, 700, 1.2, 0.14, 0.99)],
    lift: [lift('arm_b', -0.1, -0.15, -0.05, 0.001), lift('arm_c', 0.2, 0.1, 0.3, 0.0001)],
    srm: { p_value: 1e-9, expected: [0.34, 0.33, 0.33], observed: [900, 1200, 700], flagged: true },
    guardrails: [{ metric: 'latency_ms', violated: true, message: 'arm_b raises p95 latency by 12%' }],
    bandit: { variants: [{ key: 'arm_a', win_probability: 0.01, weight: 0.05 }, { key: 'arm_b', win_probability: 0, weight: 0.05 }, { key: 'arm_c', win_probability: 0.99, weight: 0.9 }], top_variant: 'arm_c', converged: true },
    sequential: { method: 'mSPRT', always_valid: true, tau: 0.1 },
    bayesian: [
      { metric: 'reward', kind: 'mean', prob_best: { arm_a: 0.01, arm_b: 0, arm_c: 0.99 } },
      { metric: 'click', kind: 'proportion', prob_best: null, note: 'not enough data: every arm needs a conversion' },
    ],
  };
  const resultsUrl = new RegExp(`/api/v1/experiments/${experimentId}/results$`);
  await page.route(resultsUrl, (route) => route.fulfill({ json: doc }));
  try {
    await page.goto(`${BASE}/experiments/${experimentId}/results`);
    await page.getByTestId('srm-warning').waitFor();
    await textIs(page.getByTestId('guardrail-warning'), /latency_ms.*raises p95 latency/s);
    await page.getByTestId('win-probability-chart').waitFor();
    await textIs(page.getByTestId('bandit'), /CONVERGED/);
    await page.getByTestId('extras').getByText('sequential').waitFor();
    await page.getByTestId('lift-more-reward').waitFor({ state: 'attached' });
    await textIs(page.getByTestId('lift-row-reward-arm_c'), /higher/);
    await textIs(page.getByTestId('lift-row-reward-arm_b'), /lower/);
    await page.getByText('More statistics for reward').click();
    await textIs(page.getByTestId('lift-more-reward'), /bayes · prob better.*99\.0%/s);
    await textIs(page.getByTestId('lift-more-reward'), /Always-valid test.*not enough data: needs a positive variance/s);
    await textIs(page.getByTestId('prob-best-reward-arm_c'), /arm_c.*99\.0%/s);
    await textIs(page.getByTestId('prob-best-click-note'), /Not enough data: every arm needs a conversion\./);
    await shot('16-results-optional-parts');
  } finally {
    await page.unroute(resultsUrl);
  }
});

step('a live bandit: the console shows the real readout converging on the best arm', async () => {
  const key = `bandit-${run}`;
  const arms = ['arm_a', 'arm_b', 'arm_c'];
  const exp = await api('POST', '/experiments', {
    key, name: `Bandit ${run}`, type: 'bandit', targeting: {},
    variants: arms.map((k, i) => ({ key: k, weight: i === 2 ? 0.34 : 0.33, config_json: { arm: k } })),
    bandit: { reweight_every_seconds: 1 },
  });
  await api('POST', `/experiments/${key}/launch`, { ramp_pct: 100 });
  const clicks = { arm_a: 20, arm_b: 24, arm_c: 90 };
  const events = [];
  for (const arm of arms) {
    for (let u = 0; u < 300; u++) {
      const unit_id = `${arm}-${run}-${u}`;
      events.push({ kind: 'exposure', experiment: key, unit_id, variant_key: arm });
      if (u < clicks[arm]) events.push({ kind: 'conversion', experiment: key, unit_id, variant_key: arm, metric: 'click' });
    }
  }
  assert.equal((await api('POST', '/events/batch', { events })).accepted, events.length);
  // The control plane's reweighting job serves the evidence within seconds.
  let readout;
  for (let i = 0; i < 100; i++) {
    readout = await api('GET', `/experiments/${key}/bandit`);
    if (readout.weights_version >= 1) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(readout.top_variant, 'arm_c');
  assert.ok(readout.weights_version >= 1, `reweighted: ${JSON.stringify(readout)}`);
  await page.goto(`${BASE}/experiments/${exp.id}/results`);
  await textIs(page.getByTestId('bandit'), /CONVERGED/);
  await textIs(page.getByTestId('bandit-top'), 'arm_c');
  await textIs(page.getByTestId('bandit-reward'), /click.*conversion rate.*higher is better/s);
  const pc = readout.variants.find((v) => v.key === 'arm_c');
  // P(best), exposed, rate, the weight served (moved from the launch's 34 %), the one proposed.
  assert.ok(pc.weight > 0.9, JSON.stringify(pc));
  await textIs(page.getByTestId('bandit-arm-arm_c'), new RegExp(`${(pc.win_probability * 100).toFixed(1)}%.*300.*30\\.00%.*${(pc.weight * 100).toFixed(1)}%.*${(pc.proposed_weight * 100).toFixed(1)}%`, 's'));
  await textIs(page.getByTestId('bandit-policy'), /thompson.*every 1 s.*adapting.*weight version [1-9]/s);
  await page.getByTestId('weight-history').waitFor();
  await shot('17-bandit');
});

let watched;
let ruleAlert;

step('a stopping rule pauses an experiment by itself; its open results page shows the alert as it is raised', async () => {
  const key = `watched-${run}`;
  watched = await api('POST', '/experiments', {
    key, name: `Watched ${run}`, variants: [{ key: 'control', weight: 0.5 }, { key: 'treatment', weight: 0.5 }],
    rules: [{ kind: 'max_sample', units: 5, action: 'pause' }],
  });
  assert.deepEqual(watched.rules, [{ kind: 'max_sample', action: 'pause', units: 5 }]);
  await api('POST', `/experiments/${key}/launch`, { ramp_pct: 100 });
  // The polling step refused this page's sockets; from here on they go through to the server (the
  // newest WebSocket route wins), so the alert arrives as a pushed message.
  await page.routeWebSocket(/\/api\/v1\/ws\//, (ws) => ws.connectToServer());
  await page.goto(`${BASE}/experiments/${watched.id}/results`);
  await page.locator('[data-testid="live-mode"][data-mode="socket"]').waitFor();
  const events = Array.from({ length: 12 }, (_, i) => ({ kind: 'exposure', experiment: key, unit_id: `watched-${run}-${i}`, variant_key: i % 2 ? 'treatment' : 'control' }));
  assert.equal((await api('POST', '/events/batch', { events })).accepted, events.length);
  // The watch job (every second in this stack) sees more than 5 units and pauses the experiment.
  let alerts = [];
  for (let i = 0; i < 100 && !alerts.length; i++) {
    alerts = await api('GET', `/alerts?experiment=${key}&kind=rule`);
    if (!alerts.length) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(alerts.length, 1, 'one alert for the rule, however often the job looks');
  ruleAlert = alerts[0];
  assert.equal(ruleAlert.action, 'pause');
  assert.equal(ruleAlert.severity, 'critical');
  assert.equal((await api('GET', `/experiments/${key}`)).status, 'paused');
  // Pushed to the page that is open (socket, or the polling fallback), critical and in words.
  const banner = page.locator('[data-testid="live-alert"][data-kind="rule"]');
  await textIs(banner, /CRITICAL.*Stopping rule.*units exposed, the maximum is 5.*Paused the experiment\..*Exposed units:.*\(limit 5\)/s);
  assert.equal(await page.getByTestId('live-mode').getAttribute('data-mode'), 'socket', 'pushed by the socket');
  await textIs(page.getByTestId('status').first(), 'PAUSED');
  await shot('18-results-live-alert');
  await banner.getByRole('button', { name: /^Dismiss alert/ }).click();
  await banner.waitFor({ state: 'detached' });
});

step('the alert feed: filter by kind, what the platform did, acknowledge (a refusal is explained)', async () => {
  assert.ok(ruleAlert, 'a rule alert was raised');
  await page.getByRole('link', { name: 'Alerts', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Alerts' }).waitFor();
  await page.getByLabel('Kind').selectOption('rule');
  const feed = page.locator('[data-testid="alerts-feed"][data-filter="rule|0|"]');
  await feed.waitFor();
  assert.match(page.url(), /kind=rule/);
  const item = feed.getByTestId(`alert-${ruleAlert.id}`);
  await textIs(item, new RegExp(`CRITICAL.*Stopping rule.*watched-${run}.*units exposed, the maximum is 5`, 's'));
  assert.equal(await item.getByTestId('alert-action').getAttribute('data-action'), 'pause');
  await textIs(item.getByTestId('alert-action'), 'Paused the experiment');
  await textIs(item.getByTestId('alert-facts'), /Rule 1:.*Maximum sample: 5 units → pause.*Exposed units:.*\(limit 5\)/s);
  // A read-only token's 403, simulated (this stack has admin tokens only), is said in words.
  const ackUrl = new RegExp(`/api/v1/alerts/${ruleAlert.id}/acknowledge$`);
  await page.route(ackUrl, (route) => route.fulfill({ status: 403, json: { error: { code: 'forbidden', message: 'this token may not POST' } } }));
  try {
    await item.getByRole('button', { name: 'Acknowledge' }).click();
    await textIs(item.getByTestId('ack-error'), /read-only: it cannot acknowledge alerts/);
  } finally {
    await page.unroute(ackUrl);
  }
  await item.getByRole('button', { name: 'Acknowledge' }).click();
  await textIs(item.getByTestId('alert-acknowledged'), /Acknowledged by env:admin \(ds\.tester\)/);
  const [acked] = await api('GET', `/alerts?experiment=${watched.key}&kind=rule`);
  assert.equal(acked.acknowledged_by, 'env:admin (ds.tester)');
  assert.ok(acked.acknowledged_at);
  await shot('19-alerts');
  // A fresh look at the unacknowledged ones no longer has it.
  await page.getByLabel('Unacknowledged only').check();
  await page.locator('[data-filter="rule|1|"]').first().waitFor();
  assert.equal(await page.getByTestId(`alert-${ruleAlert.id}`).count(), 0);
  await page.getByLabel('Unacknowledged only').uncheck();
  await feed.getByTestId(`alert-${ruleAlert.id}`).getByTestId('alert-experiment').click();
  await textIs(page.getByTestId('lifecycle').getByTestId('status'), 'PAUSED');
});

step('the Watch card: the rule holds, with its progress; the audit says why; rules are edited in place', async () => {
  const watch = page.getByTestId('watch');
  const exposed = (await api('GET', `/experiments/${watched.id}/results`)).variants.reduce((s, v) => s + v.exposures, 0);
  assert.equal(exposed, 12);
  await textIs(watch.getByTestId('rule-state-0'), 'HOLDS');
  await textIs(watch.getByTestId('rule-progress-0'), '12 of 5 units');
  await textIs(watch.getByTestId('rule-row-0'), /Maximum sample: 5 units.*Pause/s);
  await textIs(watch.getByTestId(`alert-${ruleAlert.id}`), /Paused the experiment.*Acknowledged by env:admin \(ds\.tester\)/s);
  // The job's audit entry: actor `rule`, and the reason in a sentence.
  const byRule = page.getByTestId('audit-table').locator('tbody tr').filter({ has: page.getByRole('cell', { name: 'rule', exact: true }) });
  await textIs(byRule, /pause.*running → paused.*rule.*stopping rule 1: \d+ units exposed, the maximum is 5/s);
  const audit = await api('GET', `/experiments/${watched.id}/audit`);
  const ruled = audit.filter((a) => a.actor === 'rule');
  assert.deepEqual(ruled.map((a) => a.action), ['pause']);
  assert.match(ruled[0].details.reason, /^stopping rule 1: \d+ units exposed, the maximum is 5$/);
  await shot('20-detail-watch');

  // A second rule: the API's own message lands next to the field it names.
  await watch.getByRole('button', { name: 'Edit stopping rules' }).click();
  await watch.getByRole('button', { name: 'Add rule' }).click();
  const added = watch.getByTestId('rule-edit-1');
  await added.getByLabel('Kind').selectOption('max_duration');
  await added.getByLabel('Days').fill('0');
  await added.getByLabel('Then').selectOption('stop');
  await watch.getByRole('button', { name: 'Save rules' }).click();
  await textIs(page.locator('#f-rules-1-days-error'), /max_duration rule needs `days`/);
  // Focus moves in the frame after the message is placed (requestAnimationFrame): wait for it,
  // rather than read it in the same instant as the message (a fresh run once read '').
  await page.waitForFunction(() => document.activeElement?.id === 'f-rules-1-days', null, { timeout: 5000 })
    .catch(() => {});
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-rules-1-days');
  await shot('21-rules-editor-error');
  await added.getByLabel('Days').fill('14');
  await watch.getByRole('button', { name: 'Save rules' }).click();
  await textIs(watch.getByTestId('watch-message'), 'Stopping rules saved (2).');
  await textIs(watch.getByTestId('rule-row-1'), /Maximum duration: 14 days.*Stop.*NOT YET.*of 14 days/s);
  assert.deepEqual((await api('GET', `/experiments/${watched.id}`)).rules, [
    { kind: 'max_sample', action: 'pause', units: 5 },
    { kind: 'max_duration', action: 'stop', days: 14 },
  ]);
  await page.getByTestId('audit-table').getByText('changed rules').waitFor();
});

step('a draft plans its safe rollout: steps, margin, units per step', async () => {
  const draft = await api('POST', '/experiments', {
    name: `Rollout ${run}`, variants: [{ key: 'control', weight: 0.5 }, { key: 'treatment', weight: 0.5 }],
    metrics: [{ name: 'errors', kind: 'proportion', role: 'guardrail', direction: 'decrease' }],
  });
  await page.goto(`${BASE}/experiments/${draft.id}`);
  const watch = page.getByTestId('watch');
  await watch.getByRole('button', { name: 'Plan a safe rollout' }).click();
  const editor = watch.getByTestId('rollout-editor');
  // Ramps must go up: the API says so next to the step.
  await editor.getByTestId('plan-step-1').getByLabel('Ramp (%)').fill('2');
  await editor.getByRole('button', { name: 'Save rollout plan' }).click();
  await textIs(page.locator('#f-rollout-steps-1-ramp-pct-error'), /strictly up/);
  await editor.getByTestId('plan-step-1').getByLabel('Ramp (%)').fill('25');
  await editor.getByTestId('plan-step-0').getByLabel('Hold (seconds)').fill('1800');
  await editor.getByLabel('Guardrail margin (%)').fill('2');
  await editor.getByLabel('New units per step').fill('500');
  await editor.getByRole('button', { name: 'Save rollout plan' }).click();
  await textIs(watch.getByTestId('watch-message'), 'Rollout plan saved.');
  const exp = await api('GET', `/experiments/${draft.id}`);
  assert.deepEqual(exp.rollout, {
    steps: [{ ramp_pct: 5, hold_seconds: 1800 }, { ramp_pct: 25, hold_seconds: 3600 }, { ramp_pct: 50, hold_seconds: 3600 }, { ramp_pct: 100, hold_seconds: 0 }],
    guardrail_margin: 0.02, min_units_per_step: 500,
  });
  await textIs(watch.getByTestId('rollout-step-0'), /5%.*hold 30 min/s);
  await textIs(watch.getByTestId('rollout-outcome'), /Not started: launching starts step 1 at 5%/);
  await shot('22-detail-rollout-plan');
});

step('keys: create one (its secret shown once), use it, revoke it', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Keys' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  const keyName = `ci-reader-${run}`;
  await page.getByLabel('Name (recorded in the audit log for what it changes)').fill(keyName);
  await page.getByLabel('Role').selectOption('read');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.getByTestId('key-secret-value').textContent()).trim();
  assert.match(secret, /^lk_[0-9a-f]{12}_[0-9a-f]{64}$/);
  await shot('16-keys-created', { fullPage: false });
  const row = page.getByTestId('keys-table').locator(`tr[data-key="${keyName}"]`);
  await textIs(row.getByTestId('key-status'), 'active');
  // The key reads and may not write.
  const call = (method, path) => fetch(`${BASE}/api/v1${path}`, { method, headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }, body: method === 'GET' ? undefined : '{}' });
  assert.equal((await call('GET', '/experiments')).status, 200);
  assert.equal((await call('POST', `/experiments/${experimentId}/pause`)).status, 403);
  // Shown once: after a reload the page holds no secret, nor does the listing.
  await page.reload();
  await page.getByTestId('keys-table').waitFor();
  assert.equal(await page.getByTestId('key-secret-value').count(), 0);
  assert.ok(!(await page.content()).includes(secret.slice(16)), 'the secret is not on the page again');
  page.once('dialog', (d) => d.accept());
  await row.getByRole('button', { name: `Revoke ${keyName}` }).click();
  await textIs(row.getByTestId('key-status'), 'revoked');
  const deadline = Date.now() + 5000;
  let status = 0;
  while (Date.now() < deadline && (status = (await call('GET', '/experiments')).status) !== 401) await new Promise((r) => setTimeout(r, 200));
  assert.equal(status, 401, 'a revoked key is refused within 5 s');
});

step('readable on a phone: no sideways scrolling', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [path, name] of [
    [`/experiments/${experimentId}/results`, '13-phone-results'],
    [`/experiments/${experimentId}`, '14-phone-detail'],
    ['/experiments/new', '15-phone-new'],
    ['/alerts', '15b-phone-alerts'],
    ['/keys', '15c-phone-keys'],
  ]) {
    await page.evaluate((p) => {
      history.pushState(null, '', p);
      dispatchEvent(new PopStateEvent('popstate'));
    }, path);
    await page.locator('main h1').waitFor();
    if (name.includes('results')) await page.getByTestId('lift-row-order_value-model_c').waitFor();
    if (name.includes('alerts')) await page.getByTestId('alerts-feed').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `${path} overflows sideways by ${overflow}px`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 860 });
});

step('a refused token sends you back to sign in', async () => {
  await page.evaluate(() => sessionStorage.setItem('litmus.token', 'revoked'));
  await page.goto(`${BASE}/experiments`);
  await page.getByText('Your session ended or the token was refused').waitFor();
  await page.getByLabel('API token').waitFor();
  assert.deepEqual(problems, [], 'no errors in the browser console');
});
