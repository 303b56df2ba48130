// The chat page: joins the room named in the room box (`general` unless the address says
// `#room=<name>`), shows the room's messages and join/leave notices, and sends what is typed.
// It is built on the client generated from the AsyncAPI document (/asyncapi/client.js), so it
// speaks exactly the protocol the server implements. Every message is shown with
// `textContent`: text from other people is never parsed as HTML.
import { RoomChatClient } from "/asyncapi/client.js";

const roomForm = document.getElementById("room-form");
const roomInput = document.getElementById("room");
const statusEl = document.getElementById("status");
const list = document.getElementById("messages");
const sendForm = document.getElementById("send-form");
const messageInput = document.getElementById("message");
const sendButton = sendForm.querySelector("button");

/** @type {RoomChatClient | null} */
let client = null;
let currentRoom = null;

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

function append(text, kind) {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(time, body);
  list.append(item);
  item.scrollIntoView({ block: "end" });
}

/** The room rule of the server, checked here so a bad name is explained instead of retried. */
function roomProblem(room) {
  if (room.length === 0) return "enter a room name";
  if (room.includes("/")) return "no '/' in room names";
  if ([...room].length > 100) return "at most 100 characters";
  return null;
}

function join(room) {
  room = room.trim();
  if (room === currentRoom && client) return;
  const problem = roomProblem(room);
  if (client) client.close();
  client = null;
  currentRoom = null;
  list.replaceChildren();
  if (problem) {
    showStatus("invalid", problem);
    return;
  }
  currentRoom = room;
  history.replaceState(null, "", room === "general" ? location.pathname : `#room=${encodeURIComponent(room)}`);
  document.title = `${room} — Room Chat`;
  showStatus("connecting");
  client = new RoomChatClient({ room_name: room });
  client.onStatus((event) => showStatus(event.status));
  client.onRoomNotification((frame) => append(frame.payload.message, kindOf(frame.payload.message)));
  client.onError((frame) => {
    const payload = frame.payload;
    const text = Array.isArray(payload) ? payload.map((e) => e.msg).join("; ") : payload.detail;
    append(`⚠️ ${text}`, "error");
  });
}

function roomFromAddress() {
  const match = /^#room=(.*)$/.exec(location.hash);
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

roomInput.value = roomFromAddress() ?? "general";
join(roomInput.value);
