// The generated client (as a room-chat node serves it at /asyncapi/client.js) in a mixed fleet,
// run by tests/tests/mixed_fleet.rs, which owns the Redis and both nodes:
//
//   node client_recovery.mjs http://RUST_ADDR ws://127.0.0.1:PYTHON_PORT
//
// 1. On a room-chat node, next to a Python node's client in the same room: notices the Python
//    node sends (no `offset`) are delivered as live ones; after a reconnect the client still
//    delivers every missed room-chat message exactly once, in order, before newer ones, and the
//    Python messages sent while it was away are gone (they are in no history).
// 2. A client that has only seen offset-less notices reconnects with nothing to recover and
//    carries on.
// 3. On the Python node itself (which passes our offsets through but has no `history`): after a
//    reconnect the recovery is reported `failed` at once (the error frame echoes the request's
//    `ref`), and live delivery goes on.
//
// Exits non-zero, with the assertion, when anything is off; prints one line per part.
import assert from "node:assert/strict";
import { once } from "node:events";
import { WebSocket } from "ws";
import { cuttableProxy, loadClient, until } from "../../../clients/server.mjs";

const [rustBase, pythonWs] = process.argv.slice(2);
assert.ok(rustBase && pythonWs, "usage: client_recovery.mjs http://RUST_ADDR ws://PYTHON_ADDR");
const rustWs = rustBase.replace(/^http/, "ws");

const { RoomChatClient } = await loadClient(rustBase);

const FAST = { initialDelayMs: 50, maxDelayMs: 100 };

/** A plain WebSocket client of the Python node, as the tutorial's page is. */
async function tutorialClient(room) {
  const ws = new WebSocket(`${pythonWs}/ws/room/${encodeURIComponent(room)}`);
  const messages = [];
  ws.on("message", (data) => {
    const frame = JSON.parse(String(data));
    if (frame.action === "room_notification") messages.push(frame.payload.message);
  });
  await once(ws, "open");
  const client = {
    messages,
    chat(text) {
      ws.send(JSON.stringify({ action: "room_chat", payload: { message: text } }));
    },
    close() {
      ws.close();
    },
  };
  // Its own message back: the Python process is subscribed to the room.
  client.chat("(settled)");
  await until(() => messages.includes("💬 (settled)"), "the Python client's own message");
  return client;
}

/** Records what a generated client delivers. */
function record(chat) {
  const notes = [];
  const recoveries = [];
  const errors = [];
  chat.onRoomNotification((frame) => notes.push(frame.payload));
  chat.onRecovery((event) => recoveries.push({ ...event, at: Date.now() }));
  chat.onError((frame) => errors.push(frame.payload));
  return { notes, recoveries, errors, texts: () => notes.map((p) => p.message) };
}

/** Whether `part` appears in `whole` in the same order. */
function isSubsequence(part, whole) {
  let i = 0;
  for (const item of whole) if (item === part[i]) i += 1;
  return i === part.length;
}

async function onTheRustNode() {
  const room = "fleet-recovery";
  const proxy = await cuttableProxy(Number(new URL(rustBase).port));
  const reader = new RoomChatClient({ room_name: room, name: "reader" }, { baseUrl: proxy.ws, WebSocket, reconnect: FAST });
  const seen = record(reader);
  await reader.requestPing();
  const writer = new RoomChatClient({ room_name: room, name: "writer" }, { baseUrl: rustWs, WebSocket });
  await writer.requestPing();
  const py = await tutorialClient(room);
  await until(() => seen.texts().includes("💬 (settled)"), "the Python client's first message");
  const sentRust = [];
  const sentPy = [];
  const sendRust = (text) => {
    sentRust.push(`💬 ${text}`);
    writer.sendRoomChat({ message: text });
  };
  const sendPy = (text) => {
    sentPy.push(`💬 py ${text}`);
    py.chat(`py ${text}`);
  };
  try {
    sendPy("before");
    sendRust("before");
    await until(() => seen.texts().includes("💬 py before") && seen.texts().includes("💬 before"), "the first messages");
    const fromPython = seen.notes.find((p) => p.message === "💬 py before");
    assert.deepEqual(fromPython, { message: "💬 py before", room_name: room }, "a Python node's notice: no sender, offset or epoch");
    const joinedPython = seen.notes.find((p) => p.message.startsWith("🚪") && !("sender" in p));
    assert.deepEqual(joinedPython, { message: `🚪 Someone joined room '${room}'`, room_name: room });

    proxy.cut();
    await until(() => reader.status !== "open", "the cut to be noticed");
    for (let i = 0; i < 10; i++) sendRust(`away ${i}`);
    sendPy("away");
    // Everything sent so far has gone through Redis (the Python client hears both senders).
    await until(() => py.messages.includes("💬 away 9") && py.messages.includes("💬 py away"), "the messages sent while away");
    proxy.heal();
    // And more from both nodes while it reconnects and recovers.
    let n = 0;
    const live = setInterval(() => (n++ % 2 ? sendPy(`live ${n}`) : sendRust(`live ${n}`)), 5);
    await until(() => seen.recoveries.length === 1, "the recovery");
    clearInterval(live);
    sendRust("last");
    sendPy("last");
    await until(() => seen.texts().includes("💬 last") && seen.texts().includes("💬 py last"), "the last messages");

    const chats = seen.notes.filter((p) => p.message.startsWith("💬") && p.message !== "💬 (settled)");
    const rust = chats.filter((p) => p.sender === "writer");
    assert.deepEqual(rust.map((p) => p.message), sentRust, "each room-chat message once, in order");
    const offsets = rust.map((p) => p.offset);
    assert.ok(offsets.every((o, i) => i === 0 || o === offsets[i - 1] + 1), `consecutive offsets: ${offsets}`);
    const python = chats.filter((p) => !("sender" in p)).map((p) => p.message);
    assert.ok(isSubsequence(python, sentPy), `Python messages at most once, in order: ${python}`);
    assert.ok(python.includes("💬 py before") && python.includes("💬 py last"), `${python}`);
    assert.ok(!python.includes("💬 py away"), "a Python message sent while away is in no history");
    const { at, ...recovery } = seen.recoveries[0];
    assert.equal(recovery.recovered, true, JSON.stringify(recovery));
    assert.ok(recovery.missed >= 10, `missed ${recovery.missed}`);
    assert.deepEqual(seen.errors, []);
    console.log(
      `rust node: ${rust.length} stamped messages in order, ${python.length}/${sentPy.length} Python ones live, recovery ${JSON.stringify(recovery)}`,
    );
  } finally {
    reader.close();
    writer.close();
    py.close();
    proxy.close();
  }
}

async function onlyOffsetLessNotices() {
  const room = "fleet-python-only";
  const proxy = await cuttableProxy(Number(new URL(rustBase).port));
  const reader = new RoomChatClient({ room_name: room }, { baseUrl: proxy.ws, WebSocket, reconnect: FAST });
  const seen = record(reader);
  await reader.requestPing();
  const py = await tutorialClient(room);
  try {
    py.chat("one");
    await until(() => seen.texts().includes("💬 one"), "the first Python message");
    proxy.cut();
    await until(() => reader.status !== "open", "the cut to be noticed");
    py.chat("two");
    await until(() => py.messages.includes("💬 two"), "the message sent while away");
    proxy.heal();
    await until(() => reader.status === "open", "the reconnect");
    await reader.requestPing();
    py.chat("three");
    await until(() => seen.texts().includes("💬 three"), "a Python message after the reconnect");
    assert.deepEqual(
      seen.texts().filter((t) => t.startsWith("💬")),
      ["💬 (settled)", "💬 one", "💬 three"],
    );
    assert.deepEqual(seen.recoveries, [], "no position, nothing to recover");
    assert.deepEqual(seen.errors, []);
    console.log("offset-less only: delivered live, reconnected, nothing to recover");
  } finally {
    reader.close();
    py.close();
    proxy.close();
  }
}

async function onThePythonNode() {
  const room = "fleet-on-python";
  const proxy = await cuttableProxy(Number(new URL(pythonWs).port));
  const reader = new RoomChatClient({ room_name: room }, { baseUrl: proxy.ws, WebSocket, reconnect: FAST });
  const seen = record(reader);
  assert.equal((await reader.requestPing()).action, "pong");
  reader.sendRoomChat({ message: "(settled)" });
  await until(() => seen.texts().includes("💬 (settled)"), "the reader's own message");
  const writer = new RoomChatClient({ room_name: room, name: "writer" }, { baseUrl: rustWs, WebSocket });
  await writer.requestPing();
  try {
    writer.sendRoomChat({ message: "stamped" });
    await until(() => seen.texts().includes("💬 stamped"), "a room-chat message");
    const stamped = seen.notes.find((p) => p.message === "💬 stamped");
    assert.equal(typeof stamped.offset, "number", "the Python node passes our fields through");
    assert.equal(stamped.sender, "writer");
    proxy.cut();
    await until(() => reader.status !== "open", "the cut to be noticed");
    writer.sendRoomChat({ message: "away" });
    await writer.requestPing();
    const healed = Date.now();
    proxy.heal();
    await until(() => seen.recoveries.length === 1, "the recovery outcome");
    const { at, ...recovery } = seen.recoveries[0];
    assert.deepEqual(recovery, { recovered: false, missed: 0, reason: "failed" });
    // The client's request timeout is 10 s: an answer, not a timeout, ended the recovery.
    assert.ok(at - healed < 5000, `reported ${at - healed} ms after the network came back`);
    assert.equal(seen.errors.length, 1);
    assert.equal(seen.errors[0][0].type, "union_tag_invalid");
    writer.sendRoomChat({ message: "after" });
    await until(() => seen.texts().includes("💬 after"), "live delivery after the failed recovery");
    assert.ok(!seen.texts().includes("💬 away"));
    console.log(`python node: recovery reported failed ${at - healed} ms after the network came back, live delivery goes on`);
  } finally {
    reader.close();
    writer.close();
    proxy.close();
  }
}

await onTheRustNode();
await onlyOffsetLessNotices();
await onThePythonNode();
