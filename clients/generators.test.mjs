// Other people's client generators on our contract, as a user runs them: the released tool,
// pinned, reads the document the live service serves, and the code it writes is used with no
// edits against that same service.
// - chanx 2.13.0 (`chanx generate-client`, the Python SDK generator of chanx) on the server view
//   `/asyncapi.json`: the package imports with a plain `import`, the import lines of its README
//   run, and two generated clients see the join notice, the 💬 broadcast, pong with and without
//   `ref`, a typed error and the leave notice (clients/python/chanx_live.py);
// - the AsyncAPI CLI (`@asyncapi/cli`, pinned in package.json) on the client view
//   `/asyncapi.client.yaml`: its Python WebSocket client compiles and imports, and receives
//   `room_notification` frames given the room's URL (clients/python/asyncapi_cli_live.py); its
//   JavaScript client is valid JavaScript with a class named `RoomChatClient`.
//
// Python comes from the virtualenv `make tool-deps` builds ($ROOM_CHAT_TOOLS_VENV, default
// target/tools/venv, with chanx and the CLI client's packages): a missing tool is a failure,
// never a skip. Run: `make test` (or `make tool-deps && node --test clients/generators.test.mjs`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { access, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startServer } from "./server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const venv = path.resolve(root, process.env.ROOM_CHAT_TOOLS_VENV ?? path.join("target", "tools", "venv"));
const python = path.join(venv, "bin", "python");
const chanx = path.join(venv, "bin", "chanx");
const asyncapi = path.join(root, "node_modules", ".bin", "asyncapi");
const run = promisify(execFile);

let server;
let work;

before(async () => {
  for (const tool of [python, chanx, asyncapi]) {
    await access(tool).catch(() => assert.fail(`${tool} is missing: \`make tool-deps\` installs it`));
  }
  server = await startServer();
  work = await mkdtemp(path.join(os.tmpdir(), "room-chat-generators-"));
});

after(async () => {
  await server?.stop();
});

/** Runs a command; a failure shows its output. */
async function must(what, file, args, options = {}) {
  try {
    return await run(file, args, { maxBuffer: 16 << 20, timeout: 120000, ...options });
  } catch (error) {
    assert.fail(`${what} failed:\n${error.stdout ?? ""}${error.stderr ?? error.message}`);
  }
}

/** The environment for the AsyncAPI CLI: its usage analytics are off (their config file is
 * ours), so a run sends nothing anywhere. */
async function cliEnv() {
  const config = path.join(work, "asyncapi-analytics.json");
  await writeFile(config, JSON.stringify({ analyticsEnabled: "false", infoMessageShown: "true", userID: "room-chat-tests" }));
  return { ...process.env, ASYNCAPI_METRICS_CONFIG_PATH: config };
}

test("chanx's generated Python client imports as it is and talks to the live service", async () => {
  const out = path.join(work, "chanx");
  const pkg = path.join(out, "room_chat_client");
  await must("chanx generate-client", chanx, ["generate-client", "--schema", `${server.base}/asyncapi.json`, "--output", pkg]);
  const channels = (await readdir(pkg, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  assert.ok(channels.includes("room_chat"), `a package per channel, named room_chat; got ${channels.join(", ")}`);
  const messages = await readFile(path.join(pkg, "room_chat", "messages.py"), "utf8");
  assert.match(messages, /room_name: str \| None = None/, "room_name is typed as an optional string");
  assert.match(await readFile(path.join(pkg, "room_chat", "client.py"), "utf8"), /class RoomChatClient\(/);

  const env = { ...process.env, PYTHONPATH: out, PYTHONDONTWRITEBYTECODE: "1" };
  // What the generated README tells its reader to import must run as written.
  const readme = await readFile(path.join(pkg, "README.md"), "utf8");
  const imports = [...new Set(readme.split("\n").filter((l) => /^(from \S+ import |import )/.test(l)))];
  assert.ok(imports.some((l) => l.startsWith("from room_chat_client.room_chat import RoomChatClient")), imports.join("\n"));
  await must("the generated README's imports", python, ["-c", imports.join("\n")], { env });

  const { stdout } = await must("two chanx clients in a room", python, [path.join(root, "clients", "python", "chanx_live.py"), server.ws, "chanx"], { env });
  assert.match(stdout, /: ok$/m);
});

test("the AsyncAPI CLI's Python client compiles with no edits and receives room notifications", async () => {
  const out = path.join(work, "cli-python");
  await must("asyncapi generate client python", asyncapi, [
    "generate", "client", "python", `${server.base}/asyncapi.client.yaml`,
    "-o", out, "-p", "server=local", "--no-interactive",
  ], { env: await cliEnv() });
  const files = (await readdir(out)).filter((f) => f.endsWith(".py"));
  assert.ok(files.includes("client.py"), `a client.py; got ${files.join(", ")}`);
  await must("py_compile on the generated client", python, ["-m", "py_compile", ...files.map((f) => path.join(out, f))]);
  const client = await readFile(path.join(out, "client.py"), "utf8");
  assert.match(client, /^class RoomChatClient\b/m);
  // The client view names operations from the client's side: it sends with send_*, and
  // registers handlers for what it receives.
  for (const method of ["def send_ping(", "def send_room_chat(", "def register_receive_room_notification_handler("]) {
    assert.ok(client.includes(method), method);
  }
  const env = { ...process.env, PYTHONPATH: out, PYTHONDONTWRITEBYTECODE: "1" };
  await must("import of the generated client", python, ["-c", "from client import RoomChatClient"], { env });
  const { stdout } = await must("the CLI's Python client in a room", python, [path.join(root, "clients", "python", "asyncapi_cli_live.py"), `${server.ws}/ws/room/cli`], { env });
  assert.match(stdout, /: ok$/m);
});

test("the AsyncAPI CLI's JavaScript client is valid JavaScript with a RoomChatClient class", async () => {
  const out = path.join(work, "cli-javascript");
  await must("asyncapi generate client javascript", asyncapi, [
    "generate", "client", "javascript", `${server.base}/asyncapi.client.yaml`,
    "-o", out, "-p", "server=local", "--no-interactive",
  ], { env: await cliEnv() });
  for (const file of (await readdir(out)).filter((f) => f.endsWith(".js"))) {
    await must(`node --check ${file}`, process.execPath, ["--check", path.join(out, file)]);
  }
  const client = await readFile(path.join(out, "client.js"), "utf8");
  assert.match(client, /^class RoomChatClient\b/m);
  assert.match(client, /async send_ping\(/);
});
