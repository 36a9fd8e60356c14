// End-to-end test of the demo page (client-js/demo) in Debian's chromium,
// driven by playwright-core. Two pages, each served by its own annolive
// instance with --static, draw, move and relabel boxes and polygons on the
// same image. Each page shows the other's changes, cursor and claim, and a
// conflict notice. Screenshots go to .run/test-output/browser/.
//
// Environment:
//   ANNOLIVE_CHROMIUM   the browser binary (default: /usr/bin/chromium)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';

import { REPO, TestEnv, httpSnapshot, withTimeout } from './harness.mjs';

const CLIENT_DIR = path.join(REPO, 'client-js');
const DEMO_DIR = path.join(CLIENT_DIR, 'demo');
const OUTPUT_DIR = path.join(REPO, '.run', 'test-output', 'browser');
const CHROMIUM = process.env.ANNOLIVE_CHROMIUM ?? '/usr/bin/chromium';
const ROOM = 'browser-demo';
const WAIT_MS = 20000;

const { chromium } = createRequire(path.join(CLIENT_DIR, 'package.json'))('playwright-core');
const { linkImage } = await import(pathToFileURL(path.join(DEMO_DIR, 'link-image.mjs')).href);

const env = new TestEnv('browser');
let browser;
let pageA;
let pageB;
const pageErrors = [];

/** Opens the demo from instance in a new page, as name, and waits until it has joined. */
async function openDemo(instance, name) {
  const page = await browser.newPage({ viewport: { width: 1000, height: 620 } });
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`${name} console: ${message.text()}`);
  });
  await page.goto(`${instance.httpUrl}/?room=${ROOM}&name=${name}`);
  await page.waitForFunction(() => window.annoliveDemo?.room && window.annoliveDemo.session.status === 'open', null, { timeout: WAIT_MS });
  return page;
}

/** Returns the live objects of a kind in the page's replica. */
function objectsOf(page, kind) {
  return page.evaluate((k) => window.annoliveDemo.room.objects().filter((o) => o.kind === k), kind);
}

/** Waits until fn(arg), run in the page, returns a truthy value; the error shows the page's state. */
async function waitInPage(page, fn, arg, what) {
  try {
    return await withTimeout(page.waitForFunction(fn, arg, { timeout: WAIT_MS }), WAIT_MS + 5000, what);
  } catch (err) {
    const state = await page.evaluate(() => JSON.stringify({
      status: window.annoliveDemo?.session.status,
      client: window.annoliveDemo?.room?.client,
      presence: [...(window.annoliveDemo?.room?.presence.values() ?? [])],
      claims: [...(window.annoliveDemo?.room?.claims.values() ?? [])],
    })).catch((e) => `(page state unavailable: ${e.message})`);
    throw new Error(`timed out waiting for ${what}; page state: ${state}`, { cause: err });
  }
}

/** Drags with the mouse between two points given in image pixels of the page's overlay. */
async function drag(page, from, to) {
  const box = await page.locator('#overlay').boundingBox();
  await page.mouse.move(box.x + from[0], box.y + from[1]);
  await page.mouse.down();
  await page.mouse.move(box.x + (from[0] + to[0]) / 2, box.y + (from[1] + to[1]) / 2, { steps: 4 });
  await page.mouse.move(box.x + to[0], box.y + to[1], { steps: 4 });
  await page.mouse.up();
}

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does) or set ANNOLIVE_CHROMIUM`);
  linkImage();
  fs.mkdirSync(OUTPUT_DIR, { recursive: true });
  await env.init();
  await env.startRedis();
  const a = await env.startInstance('page-a', { args: ['--static', DEMO_DIR] });
  const b = await env.startInstance('page-b', { args: ['--static', DEMO_DIR] });
  const args = typeof process.getuid === 'function' && process.getuid() === 0 ? ['--no-sandbox'] : [];
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  pageA = await openDemo(a, 'Ana');
  pageB = await openDemo(b, 'Bo');
}, { timeout: 90000 });

after(async () => {
  await browser?.close();
  await env.cleanup();
}, { timeout: 60000 });

test('two pages on two instances see each other draw, move and relabel', { timeout: 120000 }, env.wrap(async () => {
  // Ana draws a box.
  await pageA.click('#tool-box');
  await drag(pageA, [60, 60], [220, 170]);
  await waitInPage(pageB, () => window.annoliveDemo.room.objects().some((o) => o.kind === 'bbox'), null, 'Bo to see the box');
  const [box] = await objectsOf(pageB, 'bbox');
  assert.equal(box.fields.label, 'car');
  assert.equal(box.fields.item, 'item:sample.jpg');
  assert.ok(box.fields.geometry[2] > 100, `width of ${box.fields.geometry}`);
  assert.ok(box.fields.geometry[3] > 80, `height of ${box.fields.geometry}`);

  // Bo selects it, relabels it and moves it, and Ana's page shows both changes.
  await pageB.click(`#overlay polygon[data-id="${box.id}"]`);
  await pageB.selectOption('#label', 'bus');
  await waitInPage(pageA, (id) => window.annoliveDemo.room.get(id)?.fields.label === 'bus', box.id, 'Ana to see the new label');
  const [x, y] = box.fields.geometry;
  const scale = await pageB.evaluate(() => document.getElementById('overlay').getBoundingClientRect().width / document.getElementById('image').naturalWidth);
  await drag(pageB, [(x + 20) * scale, (y + 20) * scale], [(x + 60) * scale, (y + 50) * scale]);
  await waitInPage(pageA, ([id, x0]) => window.annoliveDemo.room.get(id)?.fields.geometry[0] > x0 + 20, [box.id, x], 'Ana to see the box move');

  // Bo draws a polygon: three clicks and a double-click.
  await pageB.click('#tool-polygon');
  const area = await pageB.locator('#overlay').boundingBox();
  for (const [px, py] of [[300, 80], [420, 100], [380, 220]]) await pageB.mouse.click(area.x + px, area.y + py);
  await pageB.mouse.dblclick(area.x + 320, area.y + 200);
  await waitInPage(pageA, () => window.annoliveDemo.room.objects().some((o) => o.kind === 'polygon'), null, 'Ana to see the polygon');
  const [polygon] = await objectsOf(pageA, 'polygon');
  assert.equal(polygon.fields.geometry[0].length, 8, 'four points');

  // The pages agree with the server.
  const snapshot = await httpSnapshot(env.instances[0], ROOM);
  const ids = snapshot.objects.map((o) => o.id).sort();
  for (const page of [pageA, pageB]) {
    const mine = await page.evaluate(() => window.annoliveDemo.room.objects().map((o) => o.id));
    assert.deepStrictEqual(mine.sort(), ids);
  }
  await pageB.screenshot({ path: path.join(OUTPUT_DIR, 'edits-b.png') });
}));

test('a page shows the other member cursor and claim, and a conflict notice', { timeout: 120000 }, env.wrap(async () => {
  const [box] = await objectsOf(pageA, 'bbox');
  // Bo's pointer over the image is Ana's remote cursor; Bo's selection claims the box.
  const area = await pageB.locator('#overlay').boundingBox();
  await pageB.click('#tool-select');
  await pageB.mouse.move(area.x + 30, area.y + 300, { steps: 3 });
  const bo = await pageB.evaluate(() => window.annoliveDemo.room.client);
  await waitInPage(pageA, (client) => document.querySelector(`#overlay g.cursor[data-client="${client}"]`), bo, 'Ana to see Bo\'s cursor');
  // Ana still has the box she drew selected, and claimed: a click on empty image releases it.
  const areaA = await pageA.locator('#overlay').boundingBox();
  await pageA.click('#tool-select');
  await pageA.mouse.click(areaA.x + 20, areaA.y + areaA.height - 20);
  await waitInPage(pageB, (id) => window.annoliveDemo.room.claimOf(id) === null, box.id, 'Ana\'s claim to end');
  await pageB.click(`#overlay polygon[data-id="${box.id}"]`);
  await waitInPage(pageA, ([id, client]) => window.annoliveDemo.room.claimOf(id)?.client === client, [box.id, bo], 'Ana to see Bo\'s claim');
  await waitInPage(pageA, () => document.querySelector('#overlay .remote-selection'), null, 'Ana to see Bo\'s selection');

  // Ana relabels from a base that misses every write: the server keeps the current label and
  // Ana's page shows a conflict notice naming who wrote it.
  await pageA.evaluate((id) => window.annoliveDemo.room.edit({ op: 'update', id, base: {}, set: { label: 'dog' } }), box.id);
  await waitInPage(pageA, () => document.querySelector('#notices li.conflict'), null, 'a conflict notice on Ana\'s page');
  const text = await pageA.locator('#notices li.conflict').first().textContent();
  assert.match(text, /label is now "bus"/);
  assert.equal(await pageB.evaluate((id) => window.annoliveDemo.room.get(id).fields.label, box.id), 'bus');

  await pageA.screenshot({ path: path.join(OUTPUT_DIR, 'page-a.png') });
  await pageB.screenshot({ path: path.join(OUTPUT_DIR, 'page-b.png') });
  assert.deepStrictEqual(pageErrors, [], 'no errors in the pages');
}));
