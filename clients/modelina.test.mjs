// Models for other languages come from the official AsyncAPI tools. Modelina
// (@asyncapi/modelina, pinned in package.json) generates models from our asyncapi.yaml, used as
// they come out, with no edits:
// - TypeScript: compile under `tsc --strict`, keep the wire's field names (`room_name` stays
//   `room_name`), and accept the document's own examples;
// - Java with the Jackson preset: compile with javac against Debian's Jackson jars
//   (libjackson2-databind-java; `$JACKSON_JARS` overrides where they are), and every example of
//   the document survives decoding into its class and encoding back (clients/java/RoundTrip.java);
// - plain Python: every module compiles and imports, and every example builds its model with the
//   wire's names (clients/python/modelina_models.py).
// In no language is there a union that mixes directions (a type named after the channel).
//
// Run: `make test` (or `node --test clients/modelina.test.mjs`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Parser } from "@asyncapi/parser";
import { JAVA_JACKSON_PRESET, JavaFileGenerator, PythonFileGenerator, TypeScriptFileGenerator } from "@asyncapi/modelina";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
const run = promisify(execFile);

async function parsed() {
  const text = await readFile(path.join(root, "asyncapi.yaml"), "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  assert.ok(document, `the official parser accepts the document: ${JSON.stringify(diagnostics)}`);
  return document;
}

/** Every example frame of the document with the name of its payload's model. */
function frames(document) {
  const cases = [];
  for (const message of document.allMessages()) {
    for (const example of message.examples().all()) {
      cases.push({ model: message.payload().title(), frame: example.payload() });
    }
  }
  assert.ok(cases.length >= 10, "the document has examples for its messages");
  return cases;
}

/** Runs a command; a failure shows its output. */
async function must(what, file, args, options = {}) {
  try {
    return await run(file, args, { maxBuffer: 16 << 20, ...options });
  } catch (error) {
    assert.fail(`${what} failed:\n${error.stdout ?? ""}${error.stderr ?? error.message}`);
  }
}

/** No model is a union of messages named after the channel (what one operation listing messages
 * of different meanings makes Modelina emit). */
function assertNoChannelUnion(names) {
  assert.ok(!names.includes("RoomChat"), `no RoomChat union; got ${names.join(", ")}`);
}

test("Modelina's TypeScript models of asyncapi.yaml compile strictly with the wire's names", async () => {
  const text = await readFile(path.join(root, "asyncapi.yaml"), "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  assert.ok(document, `the official parser accepts the document: ${JSON.stringify(diagnostics)}`);

  const dir = await mkdtemp(path.join(os.tmpdir(), "room-chat-modelina-"));
  // Interfaces with the raw property names: the models describe JSON as it is on the wire.
  const generator = new TypeScriptFileGenerator({ modelType: "interface", rawPropertyNames: true });
  const models = await generator.generateToFiles(document, dir, { exportType: "named" });
  const byName = new Map(models.map((m) => [m.modelName, m.result]));
  assertNoChannelUnion([...byName.keys()]);
  for (const name of ["RoomChatMessage", "RoomNotificationMessage", "RoomMessagePayload", "PingMessage", "PongMessage", "ErrorMessage", "ErrorItem"]) {
    assert.ok(byName.has(name), `a model for ${name}; got ${[...byName.keys()].join(", ")}`);
  }
  assert.match(byName.get("RoomMessagePayload"), /'room_name'\?: string \| null;/);
  assert.doesNotMatch(byName.get("RoomMessagePayload"), /roomName/);

  // The document's examples, typed with the models: they must fit as they are.
  const examples = {};
  for (const message of document.allMessages()) {
    examples[message.id()] = message.examples().all().map((e) => e.payload());
  }
  const check = `
import { RoomChatMessage } from "./RoomChatMessage";
import { RoomNotificationMessage } from "./RoomNotificationMessage";
import { PongMessage } from "./PongMessage";
import { ErrorMessage } from "./ErrorMessage";

export const sent: RoomChatMessage[] = ${JSON.stringify(examples.room_chat)};
export const notices: RoomNotificationMessage[] = ${JSON.stringify(examples.room_notification)};
export const pongs: PongMessage[] = ${JSON.stringify(examples.pong)};
export const errors: ErrorMessage[] = ${JSON.stringify(examples.error)};
export const room: string | null | undefined = notices[0].payload.room_name;
// @ts-expect-error the wire name is room_name; a camel-cased property would be a different field
export const camel = notices[0].payload.roomName;
`;
  await writeFile(path.join(dir, "check.ts"), check);
  const files = [...models.map((m) => `${m.modelName}.ts`), "check.ts"];
  try {
    await promisify(execFile)(
      process.execPath,
      [tsc, "--strict", "--noEmit", "--target", "ES2022", "--module", "esnext", "--moduleResolution", "bundler", ...files],
      { cwd: dir },
    );
  } catch (error) {
    assert.fail(`tsc --strict failed on Modelina's models:\n${error.stdout}${error.stderr}`);
  }
});

test("Modelina's Java models (Jackson) compile and round-trip every example of the document", async () => {
  const document = await parsed();
  const dir = await mkdtemp(path.join(os.tmpdir(), "room-chat-modelina-java-"));
  const generator = new JavaFileGenerator({ presets: [JAVA_JACKSON_PRESET] });
  const models = await generator.generateToFiles(document, path.join(dir, "roomchat"), { packageName: "roomchat" });
  const names = models.map((m) => m.modelName);
  assertNoChannelUnion(names);
  for (const name of ["RoomChatMessage", "RoomNotificationMessage", "RoomMessagePayload", "ErrorMessage", "ErrorItem"]) {
    assert.ok(names.includes(name), `a class ${name}; got ${names.join(", ")}`);
  }
  const jars = process.env.JACKSON_JARS ?? ["databind", "core", "annotations"].map((j) => `/usr/share/java/jackson-${j}.jar`).join(":");
  const classes = path.join(dir, "classes");
  const sources = [...names.map((n) => path.join(dir, "roomchat", `${n}.java`)), path.join(root, "clients", "java", "RoundTrip.java")];
  await must("javac on Modelina's Java models", "javac", ["-d", classes, "-cp", jars, ...sources]);
  const framesFile = path.join(dir, "frames.json");
  await writeFile(framesFile, JSON.stringify(frames(document)));
  const { stdout } = await must("the Java round trip", "java", ["-cp", `${classes}:${jars}`, "RoundTrip", framesFile]);
  assert.match(stdout, /round-tripped \d+ frames/);
});

test("Modelina's plain Python models compile, import and keep the wire's names", async () => {
  const document = await parsed();
  const dir = await mkdtemp(path.join(os.tmpdir(), "room-chat-modelina-python-"));
  const generator = new PythonFileGenerator();
  // The models import each other as `asyncapimodels.<module>`: the folder is that package.
  const models = await generator.generateToFiles(document, path.join(dir, "asyncapimodels"), {});
  const names = models.map((m) => m.modelName);
  assertNoChannelUnion(names);
  const files = (await readdir(path.join(dir, "asyncapimodels"))).filter((f) => f.endsWith(".py"));
  assert.ok(files.length >= 10, `one module per model; got ${files.join(", ")}`);
  await must("py_compile on Modelina's Python models", "python3", ["-m", "py_compile", ...files.map((f) => path.join(dir, "asyncapimodels", f))]);
  const framesFile = path.join(dir, "frames.json");
  await writeFile(framesFile, JSON.stringify(frames(document)));
  const { stdout } = await must("the Python models on the examples", "python3", [path.join(root, "clients", "python", "modelina_models.py"), framesFile], {
    env: { ...process.env, PYTHONPATH: dir },
  });
  assert.match(stdout, /built \d+ frames with their wire names/);
});
