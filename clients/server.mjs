// Starts the room chat service binary for a Node test and stops it afterwards.
//
// The binary is `$ROOM_CHAT_BIN`, or `debug/room-chat` under `$CARGO_TARGET_DIR` (default
// `target`): `make test` builds it first with `cargo build -p room-chat`. It listens on a free
// loopback port (`--port 0`) and its log line `listening on http://ADDR` says which.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function binaryPath() {
  if (process.env.ROOM_CHAT_BIN) return process.env.ROOM_CHAT_BIN;
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
  return path.join(path.resolve(root, targetDir), "debug", "room-chat");
}

/**
 * A running service: `base` is `http://127.0.0.1:PORT`, `ws` is `ws://127.0.0.1:PORT`. On the
 * in-memory layers unless `redisUrl` is given (these tests are about the client and the page;
 * the caller's own REDIS_URL is never used).
 */
export async function startServer({ port = 0, env = {}, redisUrl = null } = {}) {
  const childEnv = { ...process.env, NO_COLOR: "1", RUST_LOG: "info", ...env };
  delete childEnv.REDIS_URL;
  if (redisUrl) childEnv.REDIS_URL = redisUrl;
  const child = spawn(binaryPath(), ["--host", "127.0.0.1", "--port", String(port)], {
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${log}`)), 20000);
    const onData = (chunk) => {
      log += chunk;
      const match = /listening on http:\/\/([0-9.]+:[0-9]+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${log}`));
    });
  });
  return {
    base: `http://${address}`,
    ws: `ws://${address}`,
    port: Number(address.split(":").pop()),
    log: () => log,
    /** SIGTERM, then wait for the process to finish its graceful shutdown. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
      await once(child, "exit");
      clearTimeout(timer);
    },
  };
}

/**
 * A TCP proxy on a free loopback port in front of `port` that can cut every connection through it
 * and refuse new ones until healed: a network failure between a client and the service, which
 * itself stays up. `base`/`ws` are its `http://` and `ws://` addresses.
 */
export async function cuttableProxy(port) {
  const sockets = new Set();
  let refusing = false;
  const proxy = net.createServer((downstream) => {
    if (refusing) {
      downstream.destroy();
      return;
    }
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(downstream);
    sockets.add(upstream);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    const end = () => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const address = `127.0.0.1:${proxy.address().port}`;
  return {
    base: `http://${address}`,
    ws: `ws://${address}`,
    /** Drops every connection and refuses new ones. */
    cut() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    /** Accepts connections again. */
    heal() {
      refusing = false;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      proxy.close();
    },
  };
}

/**
 * A `redis-server` of the test's own on a free loopback port, without persistence (`$REDIS_SERVER`
 * or the one on PATH; a missing one fails the test). `url` is its `redis://` address; `command`
 * sends one command (arguments without spaces) and resolves with the raw reply.
 */
export async function startRedis() {
  const port = await new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const child = spawn(process.env.REDIS_SERVER ?? "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const failed = new Promise((_, reject) => child.once("error", reject));
  const command = (text) =>
    new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => socket.write(`${text}\r\n`));
      socket.setEncoding("utf8");
      socket.once("data", (reply) => {
        socket.end();
        resolve(reply);
      });
      socket.once("error", reject);
    });
  const deadline = Date.now() + 10000;
  for (;;) {
    const reply = await Promise.race([command("PING").catch(() => null), failed]);
    if (reply === "+PONG\r\n") break;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}/`,
    command,
    stop() {
      child.kill("SIGKILL");
    },
  };
}

/**
 * Fetches the generated client a node serves at `${base}/asyncapi/client.js` and imports it as
 * an application would (from a file of its own, removed once loaded).
 */
export async function loadClient(base) {
  const response = await fetch(`${base}/asyncapi/client.js`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^text\/javascript/);
  const dir = await mkdtemp(path.join(os.tmpdir(), "room-chat-client-"));
  try {
    const file = path.join(dir, "client.mjs");
    await writeFile(file, await response.text());
    return await import(pathToFileURL(file).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Polls `check` every 10 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function until(check, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
