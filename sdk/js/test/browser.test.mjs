// The example page (sdk/js/example/index.html, using the built module) in headless Chromium
// (Debian's, driven by playwright-core), served by a tiny static server from another origin than
// the real edge (the built worker inside workerd): the variant the edge gives is rendered, the
// exposure reaches the control plane, and a conversion still queued when the page goes away leaves
// by sendBeacon. Needs scripts/build-worker.sh and scripts/build-sdk-js.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { startWorker, startSink, waitFor, experiment } from "../../../edge-worker/test/helpers.mjs";
import { startStatic } from "./static-server.mjs";

const { chromium } = createRequire(import.meta.url)("playwright-core");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

let w, sink, site, browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (scripts/setup-toolchain.sh installs Debian's chromium)`);
  sink = await startSink();
  w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, UNSIGNED_EVENTS: undefined } });
  const pub = await w.publish({
    version: 1,
    experiments: [experiment("checkout_cta", {
      variants: [
        { key: "blue", weight: 0.5, config_json: { color: "rgb(0, 0, 255)", label: "Buy (blue)" } },
        { key: "green", weight: 0.5, config_json: { color: "rgb(0, 128, 0)", label: "Buy (green)" } },
      ],
    })],
  });
  assert.equal(pub.status, 200, JSON.stringify(pub.body));
  site = await startStatic();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => {
  await browser?.close();
  await site?.close();
  await w?.dispose();
  await sink?.close();
});

test("the page renders the edge's variant and its exposure reaches the control plane; a queued conversion leaves by beacon", async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  const posted = [];
  page.on("request", (r) => r.url().endsWith("/v1/events") && posted.push({ type: r.resourceType(), body: r.postData() }));
  await page.addInitScript(() => {
    const send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => {
      localStorage.setItem("beacons", String(Number(localStorage.getItem("beacons") ?? 0) + 1));
      return send(url, data);
    };
  });
  const unit = "browser-ünit-1";
  await page.goto(`${site.url}/?edge=${encodeURIComponent(w.url)}&experiment=checkout_cta&unit=${encodeURIComponent(unit)}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15_000 });

  const raw = await w.assign({ unit_id: unit, attributes: { country: "US", browser: "chromium" }, experiments: ["checkout_cta"], expose: false });
  const want = raw.body.assignments[0];
  assert.equal(await page.textContent("#variant"), want.variant_key);
  assert.equal(await page.textContent("#reason"), "true / assigned");
  assert.equal(await page.getAttribute("#cta", "data-variant"), want.variant_key);
  assert.equal(await page.textContent("#cta"), want.config_json.label);
  assert.equal(await page.$eval("#cta", (b) => getComputedStyle(b).backgroundColor), want.config_json.color);
  assert.equal(await page.textContent("#unit"), unit);

  await page.waitForFunction(() => document.getElementById("events").textContent === "1 sent");
  const exposure = await waitFor(() => sink.delivered().find((e) => e.unit_id === unit && e.kind === "exposure"), { what: "the exposure at the control plane" });
  assert.equal(exposure.experiment, "checkout_cta");
  assert.equal(exposure.variant_key, want.variant_key);
  assert.deepEqual(exposure.attributes, { country: "US", browser: "chromium" });

  // A conversion, queued (the batch interval is 10 s), and the page left: sendBeacon takes it.
  await page.click("#cta");
  assert.match(await page.textContent("#events"), /1 queued/);
  await page.goto("about:blank"); // pagehide: sendBeacon
  const conversion = await waitFor(() => sink.delivered().find((e) => e.unit_id === unit && e.kind === "conversion"), { what: "the beacon's conversion" });
  assert.equal(conversion.metric, "purchase");
  assert.equal(conversion.variant_key, want.variant_key);
  assert.equal(posted.length, 1, "the exposure's flush went by fetch");
  // The beacon (counted by the init script below; the page is gone, its origin's storage is not).
  await page.goto(`${site.url}/not-there`);
  assert.equal(await page.evaluate(() => localStorage.getItem("beacons")), "1");
  assert.deepEqual(problems, []);
  await page.close();
});

test("without a unit the edge mints one; the page keeps it across reloads", async () => {
  const page = await browser.newPage();
  const url = `${site.url}/?edge=${encodeURIComponent(w.url)}&experiment=checkout_cta`;
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  const first = await page.textContent("#unit");
  assert.match(first, /^[0-9a-f-]{36}$/);
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  assert.equal(await page.textContent("#unit"), first);
  assert.notEqual(await page.textContent("#reason"), "false / fail_safe");
  await page.close();
});

test("an unreachable edge: the page still renders, with the control", async () => {
  const page = await browser.newPage();
  await page.goto(`${site.url}/?edge=${encodeURIComponent("http://127.0.0.1:9")}&experiment=checkout_cta&unit=u1`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20_000 });
  assert.equal(await page.textContent("#variant"), "control");
  assert.equal(await page.textContent("#reason"), "false / fail_safe");
  await page.close();
});
