// The generated client (as the service serves it at /asyncapi/client.js) against the live
// service binary: the tutorial's conversation, requests by ref, errors, encoding of the room
// name, and reconnecting after a server restart.
//
// Run: `make test` (or `cargo build -p room-chat && node --test clients/client.test.mjs`).
// Node 20 has no global WebSocket, so the client is given the `ws` package's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { WebSocket, WebSocketServer } from "ws";
import { startServer } from "./server.mjs";

let server;
let client; // the module

before(async () => {
  server = await startServer();
  const response = await fetch(`${server.base}/asyncapi/client.js`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^text\/javascript/);
  const dir = await mkdtemp(path.join(os.tmpdir(), "room-chat-client-"));
  const file = path.join(dir, "client.mjs");
  await writeFile(file, await response.text());
  client = await import(pathToFileURL(file).href);
});

after(async () => {
  await server?.stop();
});

/** Collects the frames of one action, and waits for the next one. */
function recorder(chat, action) {
  const frames = [];
  const waiters = [];
  chat.on(action, (frame) => {
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  return {
    next(timeoutMs = 5000) {
      if (frames.length > 0) return Promise.resolve(frames.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${action} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((frame) => {
          clearTimeout(timer);
          resolve(frame);
        });
      });
    },
    pending: () => frames.length,
  };
}

function open(room, options = {}) {
  return new client.RoomChatClient({ room_name: room }, { baseUrl: server.ws, WebSocket, ...options });
}

/** Resolves when the client reports `open` and its first request has been answered. */
async function joined(chat) {
  await chat.requestPing();
  return chat;
}

test("two clients chat, see each other join and leave, and the sender gets its own message", async () => {
  const ada = await joined(open("general"));
  const adaNotes = recorder(ada, "room_notification");
  const bob = await joined(open("general"));
  const bobNotes = recorder(bob, "room_notification");

  assert.deepEqual((await adaNotes.next()).payload, {
    message: "🚪 Someone joined room 'general'",
    room_name: "general",
  });

  bob.sendRoomChat({ message: "hi ada" });
  for (const notes of [adaNotes, bobNotes]) {
    const frame = await notes.next();
    assert.equal(frame.action, "room_notification");
    assert.deepEqual(frame.payload, { message: "💬 hi ada", room_name: "general" });
    assert.equal(frame.ref, undefined, "broadcasts carry no ref");
  }

  bob.close();
  assert.equal(bob.status, "closed");
  assert.deepEqual((await adaNotes.next()).payload, {
    message: "👋 Someone left room 'general'",
    room_name: "general",
  });
  ada.close();
});

test("requestPing resolves with the pong that echoes its ref", async () => {
  const chat = open("pings");
  const pong = await chat.requestPing(undefined, { ref: "r1" });
  assert.deepEqual(pong, { action: "pong", payload: null, version: 1, ref: "r1" });
  const fresh = await chat.requestPing();
  assert.equal(fresh.action, "pong");
  assert.match(fresh.ref, /^r\d+$/);
  chat.close();
});

test("a frame the server cannot handle gets an error frame and the connection stays open", async () => {
  const chat = await joined(open("errors"));
  const errors = recorder(chat, "error");
  chat.sendFrame({ action: "shout", payload: {} });
  const frame = await errors.next();
  assert.equal(frame.action, "error");
  assert.equal(frame.payload[0].type, "union_tag_invalid");
  assert.deepEqual(frame.payload[0].loc, []);
  // A chat message without its text.
  chat.sendFrame({ action: "room_chat", payload: {} });
  const missing = await errors.next();
  assert.deepEqual(missing.payload[0].loc, ["room_chat", "payload", "message"]);
  assert.equal(missing.payload[0].type, "missing");
  assert.equal((await chat.requestPing()).action, "pong", "still open");
  assert.equal(chat.status, "open");
  chat.close();
});

test("room names are percent-encoded into the address and rooms are isolated", async () => {
  const room = "café & co/?#";
  assert.equal(client.RoomChatClient.address({ room_name: "a b" }), "/ws/room/a%20b");
  // `/` is refused by the server's room rule, so use the name without it for the live part.
  const name = room.replace("/", "");
  const here = await joined(open(name));
  const hereNotes = recorder(here, "room_notification");
  const elsewhere = await joined(open("elsewhere"));
  const elsewhereNotes = recorder(elsewhere, "room_notification");
  here.sendRoomChat({ message: "bonjour" });
  assert.deepEqual((await hereNotes.next()).payload, { message: "💬 bonjour", room_name: name });
  await elsewhere.requestPing();
  assert.equal(elsewhereNotes.pending(), 0, "another room hears nothing");
  here.close();
  elsewhere.close();
});

test("a request times out when no reply comes", async () => {
  const chat = await joined(open("timeouts"));
  // room_chat has no reply: asking for one must time out rather than hang.
  await assert.rejects(
    chat.requestFrame({ action: "room_chat", payload: { message: "x" } }, "pong", { timeoutMs: 200 }),
    client.RequestTimeoutError,
  );
  chat.close();
});

test("frames sent before the connection opens are delivered once it does", async () => {
  const chat = open("early");
  const notes = recorder(chat, "room_notification");
  assert.equal(chat.status, "connecting");
  chat.sendRoomChat({ message: "queued" });
  assert.equal((await notes.next()).payload.message, "💬 queued");
  chat.close();
});

test("the client reconnects with backoff after the server restarts, reporting each status", async () => {
  const first = await startServer();
  const statuses = [];
  const chat = new client.RoomChatClient(
    { room_name: "restart" },
    { baseUrl: first.ws, WebSocket, reconnect: { initialDelayMs: 100, maxDelayMs: 400 } },
  );
  chat.onStatus((event) => statuses.push(event.status));
  await chat.requestPing();
  await first.stop();
  const second = await startServer({ port: first.port });
  try {
    const reopened = new Promise((resolve) => {
      const stop = chat.onStatus((event) => {
        if (event.status === "open") {
          stop();
          resolve();
        }
      });
    });
    await reopened;
    assert.equal((await chat.requestPing()).action, "pong");
    assert.deepEqual(statuses.slice(0, 3), ["open", "reconnecting", "connecting"]);
    assert.equal(statuses.at(-1), "open");
  } finally {
    chat.close();
    await second.stop();
  }
});

test("the heartbeat pings by ref while the connection is open", async () => {
  const chat = open("heartbeat", { heartbeatIntervalMs: 50 });
  const pongs = recorder(chat, "pong");
  const first = await pongs.next();
  const second = await pongs.next();
  assert.match(first.ref, /^r\d+$/);
  assert.notEqual(first.ref, second.ref);
  chat.close();
});

test("a heartbeat left unanswered closes the connection and reconnects", async () => {
  // A WebSocket server that accepts and never answers: the socket stays open, the service is dead.
  const silent = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => silent.once("listening", resolve));
  let connections = 0;
  silent.on("connection", () => {
    connections += 1;
  });
  const chat = new client.RoomChatClient(
    { room_name: "silent" },
    {
      baseUrl: `ws://127.0.0.1:${silent.address().port}`,
      WebSocket,
      heartbeatIntervalMs: 50,
      requestTimeoutMs: 100,
      reconnect: { initialDelayMs: 50, maxDelayMs: 50 },
    },
  );
  const reconnecting = await new Promise((resolve) => {
    chat.onStatus((event) => {
      if (event.status === "reconnecting") resolve(event);
    });
  });
  assert.equal(reconnecting.code, 4000);
  assert.equal(reconnecting.reason, "heartbeat timeout");
  await new Promise((resolve) => {
    chat.onStatus((event) => {
      if (event.status === "open") resolve();
    });
  });
  assert.ok(connections >= 2, "connected again");
  chat.close();
  await new Promise((resolve) => silent.close(resolve));
});
