// Models for other languages come from the official AsyncAPI tools. This proves one path end to
// end: Modelina (@asyncapi/modelina, pinned in package.json) generates TypeScript models from
// our asyncapi.yaml, the models compile under `tsc --strict`, keep the wire's field names
// (`room_name` stays `room_name`), and accept the document's own examples.
//
// Run: `make test` (or `node --test clients/modelina.test.mjs`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Parser } from "@asyncapi/parser";
import { TypeScriptFileGenerator } from "@asyncapi/modelina";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");

test("Modelina's TypeScript models of asyncapi.yaml compile strictly with the wire's names", async () => {
  const text = await readFile(path.join(root, "asyncapi.yaml"), "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  assert.ok(document, `the official parser accepts the document: ${JSON.stringify(diagnostics)}`);

  const dir = await mkdtemp(path.join(os.tmpdir(), "room-chat-modelina-"));
  // Interfaces with the raw property names: the models describe JSON as it is on the wire.
  const generator = new TypeScriptFileGenerator({ modelType: "interface", rawPropertyNames: true });
  const models = await generator.generateToFiles(document, dir, { exportType: "named" });
  const byName = new Map(models.map((m) => [m.modelName, m.result]));
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
