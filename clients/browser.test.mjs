// The chat page in a real browser: headless Chromium (Debian's `chromium` package, driven by
// playwright-core; no browser is ever downloaded) against the live service binary.
//
// Three pages: two in `general` see each other join, chat and leave; the third, in `private`,
// sees none of it. A message containing markup is shown as text. A screenshot of the page is
// saved to tests/artifacts/chat.png for a person to look at.
//
// Run: `make test` (or `cargo build -p room-chat && node --test clients/browser.test.mjs`).
// Needs /usr/bin/chromium (`.ci/run` installs it) or $CHROMIUM.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const artifacts = path.join(root, "tests", "artifacts");
const WAIT = { timeout: 10000 };

let server;
let context;
let profile;

before(async () => {
  server = await startServer();
  // A fresh profile each run, so nothing from an earlier run (cache, storage) can leak in.
  profile = await mkdtemp(path.join(os.tmpdir(), "room-chat-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 900, height: 640 },
  });
});

after(async () => {
  await context?.close();
  await server?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Opens the page in `room` and waits until it is connected. */
async function openRoom(room) {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.problems = problems;
  await page.goto(room === "general" ? `${server.base}/` : `${server.base}/#room=${encodeURIComponent(room)}`);
  await page.locator('#status[data-status="open"]').waitFor(WAIT);
  assert.equal(await page.inputValue("#room"), room);
  return page;
}

const texts = (page) => page.locator("#messages li .text").allTextContents();

async function waitForText(page, text) {
  await page.locator("#messages li .text", { hasText: text }).first().waitFor(WAIT);
}

async function send(page, text) {
  await page.fill("#message", text);
  await page.click("#send-form button");
}

test("two pages in general chat and see each other join and leave; private sees nothing", async () => {
  const ada = await openRoom("general");
  const secret = await openRoom("private");
  const bob = await openRoom("general");

  await waitForText(ada, "🚪 Someone joined room 'general'");
  await send(ada, "hello bob");
  await waitForText(ada, "💬 hello bob");
  await waitForText(bob, "💬 hello bob");
  await send(bob, "hi ada");
  await waitForText(ada, "💬 hi ada");

  // Markup in a message is text: it shows as typed and creates no element.
  const markup = "<script>window.pwned = 1</script><b>bold?</b>";
  await send(bob, markup);
  await waitForText(ada, `💬 ${markup}`);
  assert.equal(await ada.locator("#messages script, #messages b").count(), 0);
  assert.equal(await ada.evaluate(() => window.pwned), undefined);

  await send(secret, "anyone?");
  await waitForText(secret, "💬 anyone?");

  await bob.close();
  await waitForText(ada, "👋 Someone left room 'general'");

  assert.deepEqual(await texts(ada), [
    "🚪 Someone joined room 'general'",
    "💬 hello bob",
    "💬 hi ada",
    `💬 ${markup}`,
    "👋 Someone left room 'general'",
  ]);
  assert.deepEqual(await texts(secret), ["💬 anyone?"], "the private room hears nothing of general");

  await mkdir(artifacts, { recursive: true });
  await ada.screenshot({ path: path.join(artifacts, "chat.png") });
  assert.deepEqual(ada.problems, []);
  assert.deepEqual(secret.problems, []);
  await ada.close();
  await secret.close();
});

test("changing the room box reconnects to the new room", async () => {
  const page = await openRoom("general");
  await page.fill("#room", "café");
  await page.press("#room", "Enter");
  await page.locator('#status[data-status="open"]').waitFor(WAIT);
  await send(page, "dans le café");
  await waitForText(page, "💬 dans le café");
  assert.equal(new URL(page.url()).hash, `#room=${encodeURIComponent("café")}`);
  assert.deepEqual(await texts(page), ["💬 dans le café"]);
  await page.close();
});

test("the API docs page renders without scripts", async () => {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  const response = await page.goto(`${server.base}/asyncapi`);
  assert.equal(response.status(), 200);
  assert.equal(await page.title(), "Room Chat 1.0.0 — AsyncAPI documentation");
  assert.equal(await page.locator("script").count(), 0);
  const card = page.locator("#message-room-chat-room-notification");
  await card.waitFor(WAIT);
  await mkdir(artifacts, { recursive: true });
  await page.locator("#channel-room-chat-operations").scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(artifacts, "docs.png") });
  await card.screenshot({ path: path.join(artifacts, "docs-message.png") });
  await page.close();
});
