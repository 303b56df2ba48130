// The generated client (as the service serves it at /asyncapi/client.js) against the live
// service binary: the tutorial's conversation, requests by ref, errors, encoding of the room
// name, and reconnecting after a server restart.
//
// Run: `make test` (or `cargo build -p room-chat && node --test clients/client.test.mjs`).
// Node 20 has no global WebSocket, so the client is given the `ws` package's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket, WebSocketServer } from "ws";
import { cuttableProxy, loadClient, startServer, until } from "./server.mjs";

let server;
let client; // the module

before(async () => {
  server = await startServer();
  client = await loadClient(server.base);
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

function open(room, options = {}, name = undefined) {
  return new client.RoomChatClient({ room_name: room, name }, { baseUrl: server.ws, WebSocket, ...options });
}

/** A notification payload without its place in history, which differs from run to run. */
function withoutPlace(payload) {
  const { offset, epoch, ...rest } = payload;
  return rest;
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
    sender: null,
    offset: null,
    epoch: null,
  });

  bob.sendRoomChat({ message: "hi ada" });
  for (const notes of [adaNotes, bobNotes]) {
    const frame = await notes.next();
    assert.equal(frame.action, "room_notification");
    assert.deepEqual(withoutPlace(frame.payload), { message: "💬 hi ada", room_name: "general", sender: null });
    assert.equal(typeof frame.payload.offset, "number");
    assert.equal(typeof frame.payload.epoch, "string");
    assert.equal(frame.ref, undefined, "broadcasts carry no ref");
  }

  bob.close();
  assert.equal(bob.status, "closed");
  assert.deepEqual(withoutPlace((await adaNotes.next()).payload), {
    message: "👋 Someone left room 'general'",
    room_name: "general",
    sender: null,
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
  assert.deepEqual(withoutPlace((await hereNotes.next()).payload), { message: "💬 bonjour", room_name: name, sender: null });
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

test("a display name goes into the query and comes back as the sender", async () => {
  assert.equal(client.RoomChatClient.address({ room_name: "a b", name: "Zoë" }), "/ws/room/a%20b?name=Zo%C3%AB");
  assert.equal(client.RoomChatClient.address({ room_name: "a b", name: "" }), "/ws/room/a%20b");
  const ada = await joined(open("names", {}, "ada"));
  const notes = recorder(ada, "room_notification");
  ada.sendRoomChat({ message: "hello" });
  assert.equal((await notes.next()).payload.sender, "ada");
  const presence = await ada.requestPresence();
  assert.deepEqual(presence.payload.members.map((m) => m.name), ["ada"]);
  const history = await ada.requestHistory({ since: null, limit: 10 });
  assert.deepEqual(history.payload.messages.map((m) => [m.message, m.sender]), [["💬 hello", "ada"]]);
  ada.close();
});

test("after a reconnect the client delivers every missed message exactly once, in order, before newer ones", async () => {
  const proxy = await cuttableProxy(server.port);
  const reader = new client.RoomChatClient(
    { room_name: "recovery", name: "reader" },
    { baseUrl: proxy.ws, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 100 } },
  );
  const writer = await joined(open("recovery", {}, "writer"));
  const seen = [];
  const recoveries = [];
  reader.onRoomNotification((frame) => {
    if (frame.payload.message.startsWith("💬")) seen.push(frame.payload.message);
  });
  reader.onRecovery((event) => recoveries.push(event));
  await joined(reader);
  const sent = [];
  const send = (text) => {
    sent.push(`💬 ${text}`);
    writer.sendRoomChat({ message: text });
  };
  try {
    send("before");
    await until(() => seen.length === 1, "the first message");
    // Cut: the reader is off while messages keep coming.
    proxy.cut();
    await until(() => reader.status !== "open", "the cut to be noticed");
    for (let i = 0; i < 20; i++) send(`while away ${i}`);
    await writer.requestPing(); // the writer's messages are through the server
    proxy.heal();
    // And more while it reconnects and recovers: none may come twice or overtake the missed.
    const live = setInterval(() => send(`live ${sent.length}`), 5);
    await until(() => recoveries.length === 1, "the recovery");
    clearInterval(live);
    send("last");
    await until(() => seen.at(-1) === "💬 last", "the last message");
    assert.deepEqual(seen, sent);
    assert.equal(recoveries[0].recovered, true);
    assert.ok(recoveries[0].missed >= 20, `missed ${recoveries[0].missed}`);
  } finally {
    reader.close();
    writer.close();
    proxy.close();
  }
});

test("a gap larger than the history is reported, and what is kept is still delivered in order", async () => {
  const small = await startServer({ env: { HISTORY_SIZE: "3" } });
  const proxy = await cuttableProxy(small.port);
  try {
    const reader = new client.RoomChatClient(
      { room_name: "gap" },
      { baseUrl: proxy.ws, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 100 } },
    );
    const writer = new client.RoomChatClient({ room_name: "gap" }, { baseUrl: small.ws, WebSocket });
    await reader.requestPing();
    await writer.requestPing();
    const seen = [];
    reader.onRoomNotification((frame) => {
      if (frame.payload.message.startsWith("💬")) seen.push(frame.payload.message);
    });
    const recovery = new Promise((resolve) => reader.onRecovery(resolve));
    const first = new Promise((resolve) => reader.onRoomNotification(resolve));
    writer.sendRoomChat({ message: "0" });
    await first;
    proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 1; i <= 6; i++) writer.sendRoomChat({ message: String(i) });
    await writer.requestPing();
    proxy.heal();
    const event = await recovery;
    assert.deepEqual(event, { recovered: false, missed: 3, reason: "gap" });
    assert.deepEqual(seen, ["💬 0", "💬 4", "💬 5", "💬 6"]);
    reader.close();
    writer.close();
  } finally {
    proxy.close();
    await small.stop();
  }
});
