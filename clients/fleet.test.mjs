// The generated client in a fleet: two service processes on one Redis (a `redis-server` of the
// test's own), a writer on one and a reader on the other. The reader is forced off by a TCP
// proxy while messages are sent through the other process; on reconnecting it gets each missed
// message exactly once, in order, before newer ones. Then Redis forgets everything (FLUSHALL)
// while the reader is off: the room's history starts a new epoch, and the reader's recovery says
// so (`reason: "epoch"`) instead of pretending nothing was missed.
//
// Run: `make test` (or `cargo build -p room-chat && node --test clients/fleet.test.mjs`).
// Needs `redis-server` (or $REDIS_SERVER).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { cuttableProxy, loadClient, startRedis, startServer, until } from "./server.mjs";

let redis;
let one;
let two;
let client; // the module

before(async () => {
  redis = await startRedis();
  one = await startServer({ redisUrl: redis.url });
  two = await startServer({ redisUrl: redis.url });
  client = await loadClient(one.base);
});

after(async () => {
  await one?.stop();
  await two?.stop();
  redis?.stop();
});

test("a reader on one process recovers what was sent through the other, and is told when Redis lost it", async () => {
  const proxy = await cuttableProxy(two.port);
  const reconnect = { initialDelayMs: 50, maxDelayMs: 100 };
  const reader = new client.RoomChatClient({ room_name: "fleet", name: "reader" }, { baseUrl: proxy.ws, WebSocket, reconnect });
  const writer = new client.RoomChatClient({ room_name: "fleet", name: "writer" }, { baseUrl: one.ws, WebSocket });
  const seen = [];
  const recoveries = [];
  reader.onRoomNotification((frame) => {
    if (frame.payload.message.startsWith("💬")) seen.push(frame.payload);
  });
  reader.onRecovery((event) => recoveries.push(event));
  const sent = [];
  const send = (text) => {
    sent.push(`💬 ${text}`);
    writer.sendRoomChat({ message: text });
  };
  const texts = () => seen.map((p) => p.message);
  try {
    await reader.requestPing();
    await writer.requestPing();
    send("before");
    await until(() => seen.length === 1, "the first message");
    assert.equal(seen[0].sender, "writer");
    assert.equal(typeof seen[0].offset, "number");

    // Off while ten messages go through the other process.
    proxy.cut();
    await until(() => reader.status !== "open", "the cut to be noticed");
    for (let i = 0; i < 10; i++) send(`while away ${i}`);
    await writer.requestPing();
    proxy.heal();
    await until(() => recoveries.length === 1, "the recovery");
    send("after");
    await until(() => texts().at(-1) === "💬 after", "the message after");
    assert.deepEqual(texts(), sent, "each once, in order");
    assert.deepEqual(recoveries[0], { recovered: true, missed: 10 });
    const offsets = seen.map((p) => p.offset);
    assert.ok(offsets.every((o, i) => i === 0 || o === offsets[i - 1] + 1), `offsets ${offsets}`);

    // Off again, and Redis forgets the room: the next message starts a new epoch.
    const epoch = seen.at(-1).epoch;
    proxy.cut();
    await until(() => reader.status !== "open", "the second cut to be noticed");
    assert.equal(await redis.command("FLUSHALL"), "+OK\r\n");
    send("after the flush");
    await writer.requestPing();
    proxy.heal();
    await until(() => recoveries.length === 2, "the second recovery");
    assert.equal(recoveries[1].recovered, false);
    assert.equal(recoveries[1].reason, "epoch");
    // What the new epoch holds is still delivered, and live messages go on.
    send("last");
    await until(() => texts().at(-1) === "💬 last", "the last message");
    const fresh = seen.filter((p) => p.epoch !== epoch);
    assert.deepEqual(fresh.map((p) => p.message), ["💬 after the flush", "💬 last"]);
    assert.deepEqual(fresh.map((p) => p.offset), [1, 2]);
  } finally {
    reader.close();
    writer.close();
    proxy.close();
  }
});
