// Compiled (never run) by `tsc -p clients/tsconfig.json`: the generated client's types used as
// an application would, including the mistakes they must refuse (`@ts-expect-error` fails the
// check when the line compiles after all).
import { WebSocket as NodeWebSocket } from "ws";
import {
  RoomChatClient,
  RequestTimeoutError,
  type HistoryResultMessage,
  type PongMessage,
  type RecoveryEvent,
  type RoomNotificationMessage,
  type StatusEvent,
} from "../target/client/room_chat/client.js";

export async function catchingUp(): Promise<number> {
  // The query parameter is an optional field beside the path's.
  const chat = new RoomChatClient({ room_name: "general", name: "ada" }, { recoveryLimit: 50 });
  // @ts-expect-error query parameters are text
  new RoomChatClient({ room_name: "general", name: 3 });
  chat.onRecovery((event: RecoveryEvent) => {
    if (!event.recovered && event.reason === "epoch") chat.close();
  });
  chat.onRoomNotification((frame) => {
    const offset: number | null | undefined = frame.payload.offset;
    const sender: string | null | undefined = frame.payload.sender;
    void [offset, sender];
  });
  const history: HistoryResultMessage = await chat.requestHistory({ since: 41, limit: 10 });
  // @ts-expect-error `since` is an offset, not text
  await chat.requestHistory({ since: "41" });
  const presence = await chat.requestPresence();
  return history.payload.messages.length + presence.payload.count;
}

export async function conversation(): Promise<string> {
  // Node 20: the `ws` package's WebSocket fits the client's constructor type...
  const chat = new RoomChatClient({ room_name: "general" }, { baseUrl: "ws://127.0.0.1:8000", WebSocket: NodeWebSocket });
  // ...and so does the browser's.
  const inBrowser = new RoomChatClient({ room_name: "café" }, { WebSocket: globalThis.WebSocket, reconnect: { maxAttempts: 3 } });
  inBrowser.close();

  chat.sendRoomChat({ message: "hi" });
  chat.sendRoomChat({ message: "hi", room_name: null }, { ref: "x" });
  chat.sendPing();
  // The untyped escape hatch takes any frame (what the error tests send).
  chat.sendFrame({ action: "shout", payload: {} });
  // @ts-expect-error `message` is required
  chat.sendRoomChat({});
  // @ts-expect-error `message` is a string
  chat.sendRoomChat({ message: 3 });
  // @ts-expect-error the parameter is `room_name`, on the wire and here
  new RoomChatClient({ roomName: "general" });

  const seen: string[] = [];
  const stop = chat.onRoomNotification((frame: RoomNotificationMessage) => {
    const roomName: string | null | undefined = frame.payload.room_name;
    seen.push(`${roomName}: ${frame.payload.message}`);
  });
  stop();
  chat.on("error", (frame) => {
    const payload = frame.payload;
    seen.push(Array.isArray(payload) ? payload.map((e) => e.loc.join(".")).join(",") : payload.detail);
  });
  // @ts-expect-error the server never sends `room_chat`
  chat.on("room_chat", () => {});
  chat.onStatus((event: StatusEvent) => seen.push(event.status));

  try {
    const pong: PongMessage = await chat.requestPing(undefined, { timeoutMs: 1000 });
    return pong.ref ?? "";
  } catch (error) {
    if (error instanceof RequestTimeoutError) return error.ref;
    throw error;
  } finally {
    chat.close();
  }
}
