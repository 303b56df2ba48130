// The chat page: joins the room named in the room box (`general` unless the address says
// `#room=<name>`) under the name in the name box (anonymous when empty; `#name=<name>` fills
// it), shows the room's last messages on entering, then its messages and join/leave notices
// with who sent them, the list of who is online (asked again on join and leave notices, at
// most once a second), and sends what is typed. After a reconnect the client fetches what was
// missed, and the page shows it; when that is not possible it says why in a warning line.
// It is built on the client generated from the AsyncAPI document (/asyncapi/client.js), so it
// speaks exactly the protocol the server implements. Every message is shown with
// `textContent`: text from other people is never parsed as HTML.
import { RoomChatClient } from "/asyncapi/client.js";

const roomForm = document.getElementById("room-form");
const roomInput = document.getElementById("room");
const nameForm = document.getElementById("name-form");
const nameInput = document.getElementById("name");
const members = document.getElementById("members");
const onlineCount = document.getElementById("online-count");
const statusEl = document.getElementById("status");
const list = document.getElementById("messages");
const sendForm = document.getElementById("send-form");
const messageInput = document.getElementById("message");
const sendButton = sendForm.querySelector("button");

/** @type {RoomChatClient | null} */
let client = null;
let currentRoom = null;
let currentName = null;
/** `epoch:offset` of every chat line shown, so a message in both the history and live is shown once. */
let shown = new Set();

/** Messages shown from the history on entering a room (the server keeps more). */
const HISTORY_ON_ENTRY = 50;
/** At most one presence request per this many ms (the server allows 2 per second by default). */
const PRESENCE_EVERY_MS = 1000;

/** Why a reconnect could not fill in what was missed, by the client's `onRecovery` reason. */
const RECOVERY_FAILURES = {
  epoch: "the server lost the room's history",
  gap: "the oldest of them are no longer kept",
  failed: "the server did not answer",
};

const STATUS_TEXT = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  closed: "disconnected",
};

function showStatus(status, text = STATUS_TEXT[status] ?? status) {
  statusEl.dataset.status = status;
  statusEl.textContent = text;
  sendButton.disabled = status !== "open";
}

/** Notices start with the tutorial's emoji; the kind only changes how a line looks. */
function kindOf(text) {
  if (text.startsWith("🚪")) return "join";
  if (text.startsWith("👋")) return "leave";
  return "chat";
}

/** A message line; `sender` is shown for notifications (`undefined`: none, e.g. a local warning). */
function line(text, kind, sender, earlier = false) {
  const item = document.createElement("li");
  item.className = earlier ? `${kind} earlier` : kind;
  const time = document.createElement("time");
  if (!earlier) {
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  item.append(time);
  if (sender !== undefined) {
    const who = document.createElement("span");
    who.className = sender === null ? "sender anonymous" : "sender";
    who.textContent = sender ?? "anonymous";
    item.append(who);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(body);
  return item;
}

function append(text, kind, sender) {
  const item = line(text, kind, sender);
  list.append(item);
  item.scrollIntoView({ block: "end" });
}

/** Whether a chat payload was shown already (and remembers it). */
function seen(payload) {
  if (typeof payload.offset !== "number") return false;
  const key = `${payload.epoch}:${payload.offset}`;
  if (shown.has(key)) return true;
  shown.add(key);
  return false;
}

function showNotification(payload) {
  if (seen(payload)) return;
  append(payload.message, kindOf(payload.message), payload.sender ?? null);
}

/** The room's last messages, above whatever arrived live meanwhile. */
async function showHistory(chat) {
  try {
    const result = await chat.requestHistory({ since: null, limit: HISTORY_ON_ENTRY });
    if (chat !== client) return;
    const earlier = result.payload.messages
      .filter((m) => !seen(m))
      .map((m) => line(m.message, "chat", m.sender ?? null, true));
    list.prepend(...earlier);
    list.lastElementChild?.scrollIntoView({ block: "end" });
  } catch (error) {
    if (chat === client) append(`⚠️ no history: ${error.message}`, "error");
  }
}

function showMembers(payload) {
  const items = payload.members.map((m) => {
    const item = document.createElement("li");
    item.className = m.name === null ? "anonymous" : "";
    item.textContent = m.name ?? "anonymous";
    return item;
  });
  if (payload.truncated) {
    const more = document.createElement("li");
    more.className = "anonymous";
    more.textContent = `and ${payload.count - payload.members.length} more`;
    items.push(more);
  }
  members.replaceChildren(...items);
  onlineCount.textContent = `(${payload.count})`;
}

let presenceTimer = null;
let presenceAskedAt = 0;
/**
 * Asks who is online, at most once per `PRESENCE_EVERY_MS` (a burst of join and leave notices
 * shares one request), so a busy room never runs into the server's `ROOM_QUERY_RATE`.
 */
function refreshPresence(chat) {
  if (presenceTimer !== null) return;
  const wait = Math.max(0, presenceAskedAt + PRESENCE_EVERY_MS - Date.now());
  presenceTimer = setTimeout(async () => {
    presenceTimer = null;
    presenceAskedAt = Date.now();
    try {
      const result = await chat.requestPresence();
      if (chat === client) showMembers(result.payload);
    } catch {
      // Dropped or refused: the next open or notice asks again.
    }
  }, wait);
}

/** The room rule of the server, checked here so a bad name is explained instead of retried. */
function roomProblem(room) {
  if (room.length === 0) return "enter a room name";
  if (room.includes("/")) return "no '/' in room names";
  if ([...room].length > 100) return "at most 100 characters";
  return null;
}

/** The display-name rule's length (the server checks the rest, and refuses with its reason). */
function nameProblem(name) {
  if ([...name.normalize("NFC")].length > 32) return "names have at most 32 characters";
  return null;
}

function addressFor(room, name) {
  const parts = [];
  if (room !== "general") parts.push(`room=${encodeURIComponent(room)}`);
  if (name) parts.push(`name=${encodeURIComponent(name)}`);
  return parts.length ? `#${parts.join("&")}` : location.pathname;
}

function join(room, name = nameInput.value) {
  room = room.trim();
  name = name.trim();
  if (room === currentRoom && name === currentName && client) return;
  const problem = roomProblem(room) ?? nameProblem(name);
  if (client) client.close();
  client = null;
  currentRoom = null;
  currentName = null;
  shown = new Set();
  list.replaceChildren();
  members.replaceChildren();
  onlineCount.textContent = "";
  if (problem) {
    showStatus("invalid", problem);
    return;
  }
  currentRoom = room;
  currentName = name;
  history.replaceState(null, "", addressFor(room, name));
  document.title = `${room} — Room Chat`;
  showStatus("connecting");
  const chat = new RoomChatClient({ room_name: room, name: name || undefined });
  client = chat;
  let entered = false;
  chat.onStatus((event) => {
    showStatus(event.status);
    if (event.status !== "open") return;
    if (!entered) {
      entered = true;
      showHistory(chat);
    }
    refreshPresence(chat);
  });
  chat.onRoomNotification((frame) => {
    showNotification(frame.payload);
    if (kindOf(frame.payload.message) !== "chat") refreshPresence(chat);
  });
  chat.onRecovery((event) => {
    if (!event.recovered) {
      const why = RECOVERY_FAILURES[event.reason] ?? event.reason;
      append(`⚠️ some messages sent while you were away may be missing (${why})`, "error");
    }
  });
  client.onError((frame) => {
    const payload = frame.payload;
    const text = Array.isArray(payload) ? payload.map((e) => e.msg).join("; ") : payload.detail;
    append(`⚠️ ${text}`, "error");
  });
}

/** `key` of the address's `#room=…&name=…`. */
function fromAddress(key) {
  const match = new RegExp(`(?:^#|&)${key}=([^&]*)`).exec(location.hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

roomForm.addEventListener("submit", (event) => {
  event.preventDefault();
  join(roomInput.value);
});
roomInput.addEventListener("change", () => join(roomInput.value));
nameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  join(roomInput.value, nameInput.value);
});
nameInput.addEventListener("change", () => join(roomInput.value, nameInput.value));

sendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const message = messageInput.value;
  if (!client || message.trim() === "") return;
  try {
    client.sendRoomChat({ message });
  } catch (error) {
    // The client keeps a bounded queue while reconnecting; say so rather than lose the text.
    append(`⚠️ not sent: ${error.message}`, "error");
    return;
  }
  messageInput.value = "";
  messageInput.focus();
});

roomInput.value = fromAddress("room") ?? "general";
nameInput.value = fromAddress("name") ?? "";
join(roomInput.value, nameInput.value);
