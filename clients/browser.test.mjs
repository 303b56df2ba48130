// The chat page in a real browser: headless Chromium (Debian's `chromium` package, driven by
// playwright-core; no browser is ever downloaded) against the live service binary.
//
// Three pages: two in `general` see each other join, chat and leave; the third, in `private`,
// sees none of it. A message containing markup is shown as text. Named pages see each other in
// the online list and each other's names on messages, and a page that joins later sees the
// room's last messages. A page cut off by the network (a TCP proxy in front of the service)
// reconnects by itself and shows each message it missed once, in order, with its sender; after
// a server restart that lost the room's history it says so. Screenshots of the page are saved
// to tests/artifacts/ for a person to look at.
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
import { cuttableProxy, startServer } from "./server.mjs";

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

/**
 * Opens the page in `room` (as `name`, if given) from `base` (the shared server unless given)
 * and waits until it is connected.
 */
async function openRoom(room, name = null, base = server.base) {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.problems = problems;
  const hash = name === null ? `#room=${encodeURIComponent(room)}` : `#room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`;
  await page.goto(room === "general" && name === null ? `${base}/` : `${base}/${hash}`);
  await page.locator('#status[data-status="open"]').waitFor(WAIT);
  assert.equal(await page.inputValue("#room"), room);
  assert.equal(await page.inputValue("#name"), name ?? "");
  return page;
}

const online = (page) => page.locator("#members li").allTextContents();

/** Waits until the online list is exactly `names` (in any order). */
async function waitForOnline(page, names) {
  const want = [...names].sort();
  const deadline = Date.now() + WAIT.timeout;
  for (;;) {
    const got = (await online(page)).sort();
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    if (Date.now() > deadline) assert.deepEqual(got, want, "the online list");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every line as `sender: text` (lines without a sender, such as warnings, as their text). */
const lines = (page) =>
  page.locator("#messages li").evaluateAll((items) =>
    items.map((li) => {
      const sender = li.querySelector(".sender");
      const text = li.querySelector(".text").textContent;
      return sender ? `${sender.textContent}: ${text}` : text;
    }),
  );

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

test("named pages see each other online and on messages; a later page sees the history", async () => {
  const ada = await openRoom("salon", "ada");
  await waitForOnline(ada, ["ada"]);
  const bob = await openRoom("salon", "Bób");
  await waitForOnline(ada, ["ada", "Bób"]);
  await waitForOnline(bob, ["ada", "Bób"]);
  await waitForText(ada, "🚪 Someone joined room 'salon'");
  await send(ada, "bonjour");
  await waitForText(bob, "💬 bonjour");
  await send(bob, "salut ada");
  await waitForText(ada, "💬 salut ada");
  assert.deepEqual(await lines(ada), ["Bób: 🚪 Someone joined room 'salon'", "ada: 💬 bonjour", "Bób: 💬 salut ada"]);
  assert.deepEqual(await lines(bob), ["ada: 💬 bonjour", "Bób: 💬 salut ada"]);

  // A third page, anonymous, joins later: it sees the last messages and who sent them, and
  // the others see it online.
  const late = await openRoom("salon");
  await waitForText(late, "💬 salut ada");
  assert.deepEqual(await lines(late), ["ada: 💬 bonjour", "Bób: 💬 salut ada"]);
  await waitForOnline(late, ["ada", "Bób", "anonymous"]);
  await waitForOnline(ada, ["ada", "Bób", "anonymous"]);
  await send(late, "hello");
  await waitForText(ada, "💬 hello");
  assert.equal((await lines(ada)).at(-1), "anonymous: 💬 hello");

  await mkdir(artifacts, { recursive: true });
  await ada.screenshot({ path: path.join(artifacts, "chat-presence.png") });
  await bob.close();
  await waitForOnline(ada, ["ada", "anonymous"]);
  for (const page of [ada, late]) assert.deepEqual(page.problems, []);
  await ada.close();
  await late.close();
});

/**
 * A page's problems, less the browser's own report of each reconnect attempt that failed while
 * the network or the server was down (Chromium logs those as console errors).
 */
const problemsBesidesReconnects = (page) =>
  page.problems.filter((p) => !/^console: WebSocket connection to '[^']*' failed: /.test(p));

/** Records every value the status badge takes (`data-status`), in `window.statusLog`. */
async function recordStatus(page) {
  await page.evaluate(() => {
    const badge = document.getElementById("status");
    window.statusLog = [badge.dataset.status];
    new MutationObserver(() => window.statusLog.push(badge.dataset.status)).observe(badge, {
      attributes: true,
      attributeFilter: ["data-status"],
    });
  });
}

test("a page cut off from the network reconnects and shows what it missed once, in order, with senders", async () => {
  // The page reaches the service through a proxy that can drop its connections: the network
  // fails, the service stays up and the room goes on without the page.
  const proxy = await cuttableProxy(server.port);
  try {
    const ada = await openRoom("reconnect", "ada", proxy.base);
    await recordStatus(ada);
    const bob = await openRoom("reconnect", "bob");
    await waitForText(ada, "🚪 Someone joined room 'reconnect'");
    await send(bob, "before");
    await waitForText(ada, "💬 before");

    proxy.cut();
    await ada.locator('#status:not([data-status="open"])').waitFor(WAIT);
    const missed = ["one", "two", "three", "four", "five"].map((n) => `missed ${n}`);
    for (const text of missed) await send(bob, text);
    await waitForText(bob, "💬 missed five");
    // Still cut: the page cannot have seen any of it.
    assert.equal(await ada.locator("#messages li .text", { hasText: "missed" }).count(), 0);
    proxy.heal();

    // It reconnects by itself (its backoff is at most a few seconds here).
    await ada.locator('#status[data-status="open"]').waitFor({ timeout: 20000 });
    await waitForText(ada, "💬 missed five");
    await send(bob, "after");
    await waitForText(ada, "💬 after");
    assert.deepEqual(await lines(ada), [
      "bob: 🚪 Someone joined room 'reconnect'",
      "bob: 💬 before",
      ...missed.map((text) => `bob: 💬 ${text}`),
      "bob: 💬 after",
    ]);
    const statuses = await ada.evaluate(() => window.statusLog);
    assert.equal(statuses[0], "open");
    assert.ok(statuses.includes("reconnecting"), `the badge showed the reconnect: ${statuses}`);
    assert.equal(statuses.at(-1), "open");
    assert.equal(await ada.textContent("#status"), "connected");
    // Bob saw Ada leave and come back.
    await waitForText(bob, "👋 Someone left room 'reconnect'");
    await waitForOnline(bob, ["ada", "bob"]);

    await mkdir(artifacts, { recursive: true });
    await ada.screenshot({ path: path.join(artifacts, "chat-reconnect.png") });
    assert.deepEqual(problemsBesidesReconnects(ada), []);
    assert.deepEqual(bob.problems, []);
    await ada.close();
    await bob.close();
  } finally {
    proxy.close();
  }
});

test("a page whose server lost the room's history says so after reconnecting", async () => {
  // In-memory history dies with the process: a restart on the same port is a new epoch.
  const first = await startServer();
  let second = null;
  try {
    const ada = await openRoom("lost", "ada", first.base);
    await recordStatus(ada);
    const bob = await openRoom("lost", "bob", first.base);
    await waitForText(ada, "🚪 Someone joined room 'lost'");
    await send(bob, "one");
    await waitForText(ada, "💬 one");
    await bob.close();
    await waitForText(ada, "👋 Someone left room 'lost'");

    await first.stop();
    await ada.locator('#status:not([data-status="open"])').waitFor(WAIT);
    second = await startServer({ port: first.port });
    await ada.locator('#status[data-status="open"]').waitFor({ timeout: 20000 });
    const notice = "⚠️ some messages sent while you were away may be missing (the server lost the room's history)";
    await waitForText(ada, notice);
    const again = await openRoom("lost", "bob", second.base);
    await waitForText(ada, "🚪 Someone joined room 'lost'");
    await send(again, "two");
    await waitForText(ada, "💬 two");
    assert.deepEqual(await lines(ada), [
      "bob: 🚪 Someone joined room 'lost'",
      "bob: 💬 one",
      "bob: 👋 Someone left room 'lost'",
      notice,
      "bob: 🚪 Someone joined room 'lost'",
      "bob: 💬 two",
    ]);
    assert.equal(await ada.locator("#messages li.error").count(), 1, "the notice looks like a warning");
    const statuses = await ada.evaluate(() => window.statusLog);
    assert.ok(statuses.includes("reconnecting"), `${statuses}`);
    await mkdir(artifacts, { recursive: true });
    await ada.screenshot({ path: path.join(artifacts, "chat-history-lost.png") });
    assert.deepEqual(problemsBesidesReconnects(ada), []);
    assert.deepEqual(again.problems, []);
    await ada.close();
    await again.close();
  } finally {
    await first.stop();
    await second?.stop();
  }
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
