/**
 * The chat inbox of anyone signed in: a tenant's conversations with their managers, a manager's
 * or landlord's conversations across their tenants, newest message first. Data:
 * `GET /conversations` (participants, my `unreadCount` and the `lastMessage` of each) and
 * `GET /conversations/{id}` to recount one. Live: the
 * topic `chat:messages:{id}` of each conversation listed (a socket may hold 200 topics):
 * - `chat.message` from someone else adds one unread (stored events reach `onEvent` once each,
 *   live or recovered after a reconnect), shows its text and moves the conversation to the top;
 * - `chat.read` by me (this page's conversation view, another device) recounts it over HTTP;
 * - `presence` moves the dots; `presence.query` asks again after every (re)connect;
 * - `chat.typing` shows "typing…" for 5 s;
 * - `recovered: false` recounts that conversation over HTTP.
 * A subscription refused as `rate_limited` (an inbox of more than ~40 conversations sends more
 * `subscribe` frames at once than the burst of 40 the server allows) is asked again a little
 * later, with jitter, and recounted over HTTP then (it may have missed events meanwhile).
 */
import { api, apiAll, handleApiFailure, requireSession, showMessage, startPage } from "./app.js";

const TYPING_SHOWN_MS = 5000;
const PRESENCE_RANK = { online: 2, away: 1, offline: 0 };
const UNREAD_CAP = 999;

const session = requireSession();
const me = session.user.id;
document.getElementById("home-link").href = session.user.userType === "tenant" ? "/requests/" : "/board/";

const list = document.getElementById("inbox");
const empty = document.getElementById("inbox-empty");
const pageMessage = document.getElementById("page-message");
const announce = document.getElementById("announce");

const rows = new Map(); // conversation id -> {conversation, element, unread, preview, typingTimer}
const presence = new Map(); // userId -> status
const names = new Map(); // userId -> name

function others(conversation) {
  return conversation.participants.filter((person) => person.userId !== me);
}

function bestPresence(conversation) {
  let best = "offline";
  for (const person of others(conversation)) {
    const status = presence.get(person.userId) || "offline";
    if ((PRESENCE_RANK[status] ?? 0) > PRESENCE_RANK[best]) best = status;
  }
  return best;
}

function rowElement(row) {
  const { conversation } = row;
  const item = document.createElement("li");
  item.className = "inbox-row";
  item.dataset.id = conversation.id;
  const link = document.createElement("a");
  link.href = `/chat/${conversation.id}/`;
  const status = bestPresence(conversation);
  const dot = document.createElement("span");
  dot.className = "dot";
  dot.dataset.status = status;
  dot.setAttribute("aria-hidden", "true");
  const who = document.createElement("span");
  who.className = "inbox-who";
  who.textContent = others(conversation).map((person) => names.get(person.userId)).join(", ") || "Only you";
  const state = document.createElement("span");
  state.className = "sr-only inbox-presence";
  state.textContent = ` (${status})`;
  const subject = document.createElement("span");
  subject.className = "inbox-subject";
  subject.textContent = conversation.subject || "";
  const preview = document.createElement("span");
  preview.className = "inbox-preview";
  preview.textContent = row.typing ? "typing…" : previewOf(row.last);
  const when = document.createElement("time");
  when.className = "inbox-time";
  if (row.last?.createdAt) {
    when.dateTime = row.last.createdAt;
    when.textContent = timeOf(row.last.createdAt);
  }
  link.append(dot, who, state, when, subject, preview);
  if (row.unread > 0) {
    const badge = document.createElement("span");
    badge.className = "unread";
    badge.textContent = row.unread >= UNREAD_CAP ? `${UNREAD_CAP}+` : String(row.unread);
    const hint = document.createElement("span");
    hint.className = "sr-only";
    hint.textContent = " unread";
    badge.append(hint);
    link.append(badge);
  }
  item.append(link);
  return item;
}

function previewOf(message) {
  if (!message) return "";
  const prefix = message.senderId === me ? "You: " : "";
  if (message.isDeleted) return `${prefix}Message deleted`;
  if (message.message) return `${prefix}${message.message}`;
  return `${prefix}${message.attachmentCount || message.attachments?.length ? "Attachment" : ""}`;
}

function timeOf(iso) {
  const when = new Date(iso);
  return when.toDateString() === new Date().toDateString()
    ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : when.toLocaleDateString([], { month: "short", day: "numeric" });
}

/** Newest message first (a conversation without messages by its last change). */
function recency(row) {
  return Date.parse(row.last?.createdAt || row.conversation.updatedAt || row.conversation.createdAt || 0) || 0;
}

function render(id) {
  const row = rows.get(id);
  const fresh = rowElement(row);
  const hadFocus = row.element && row.element.contains(document.activeElement);
  if (row.element?.isConnected) row.element.replaceWith(fresh);
  else list.append(fresh);
  row.element = fresh;
  if (hadFocus) fresh.querySelector("a").focus();
  empty.hidden = rows.size > 0;
}

function toTop(id) {
  const row = rows.get(id);
  if (list.firstElementChild !== row.element) {
    const hadFocus = row.element.contains(document.activeElement);
    list.prepend(row.element);
    if (hadFocus) row.element.querySelector("a").focus();
  }
}

function remember(conversation) {
  for (const person of conversation.participants) {
    names.set(person.userId, `${person.firstName} ${person.lastName}`.trim() || "Someone");
  }
}

/** One conversation's unread count again over HTTP (exact). */
async function recount(id) {
  try {
    const conversation = await api(`/conversations/${id}`);
    remember(conversation);
    const row = rows.get(id);
    if (!row) return;
    row.conversation = conversation;
    row.unread = conversation.unreadCount;
    if (conversation.lastMessage && !(row.last?.id > conversation.lastMessage.id)) row.last = conversation.lastMessage;
    render(id);
  } catch (error) {
    if (error.status === 404) {
      rows.get(id)?.element.remove();
      rows.delete(id);
      return;
    }
    handleApiFailure(error, pageMessage);
  }
}

function onEvent(id, frame) {
  const row = rows.get(id);
  if (!row) return;
  const data = frame.data || {};
  switch (frame.event) {
    case "chat.message":
      if (!(row.last?.id > data.id)) row.last = data; // ids are ObjectIds: hex order is stored order
      row.typing = false;
      if (data.senderId !== me && !data.isDeleted) {
        row.unread += 1;
        announce.textContent = `New message from ${names.get(data.senderId) || "someone"}.`;
      }
      render(id);
      toTop(id);
      return;
    case "chat.edited":
    case "chat.deleted":
      if (row.last?.id === data.id) {
        row.last = frame.event === "chat.edited" ? data : { ...row.last, isDeleted: true, message: null };
        render(id);
      }
      return;
    case "chat.read":
      if (data.userId === me) recount(id);
      return;
    case "chat.typing":
      if (data.userId === me) return;
      clearTimeout(row.typingTimer);
      row.typing = true;
      row.typingTimer = setTimeout(() => {
        row.typing = false;
        render(id);
      }, TYPING_SHOWN_MS);
      render(id);
      return;
    case "presence":
      presence.set(data.userId, data.status);
      render(id);
      return;
    default:
      return;
  }
}

async function askPresence() {
  const userIds = [...new Set([...rows.values()].flatMap((row) => others(row.conversation).map((p) => p.userId)))];
  if (!userIds.length) return;
  try {
    const answers = await client.command({ type: "presence.query", userIds: userIds.slice(0, 200) });
    for (const userId of userIds) presence.set(userId, answers[userId]?.status || "offline");
    for (const id of rows.keys()) render(id);
  } catch {
    // not connected: asked again after the reconnect
  }
}

const followed = new Map(); // topic -> conversation id

function follow(id, { recountFirst }) {
  let first = !recountFirst; // the list was just loaded: the first subscription needs no recount
  const topic = `chat:messages:${id}`;
  followed.set(topic, id);
  client.subscribe(topic, {
    onEvent: (frame) => onEvent(id, frame),
    onReset: () => {
      if (!first) recount(id);
      first = false;
    },
  }).catch(() => {}); // a refusal is reported to onUnsubscribed
}

function onUnsubscribed(topic, reason) {
  const id = followed.get(topic);
  if (!id) return;
  if (reason === "rate_limited" || reason === "unavailable") {
    setTimeout(() => follow(id, { recountFirst: true }), 1000 + Math.random() * 2000);
    return;
  }
  if (reason === "forbidden") {
    rows.get(id)?.element.remove(); // no longer in the conversation
    rows.delete(id);
    followed.delete(topic);
    empty.hidden = rows.size > 0;
  }
}

const client = startPage(session, { onConnected: askPresence, onUnsubscribed });

async function main() {
  try {
    const conversations = await apiAll("/conversations");
    for (const conversation of conversations) {
      remember(conversation);
      const row = { conversation, element: null, unread: conversation.unreadCount, last: conversation.lastMessage };
      rows.set(conversation.id, row);
    }
    for (const row of [...rows.values()].sort((a, b) => recency(b) - recency(a))) render(row.conversation.id);
    empty.hidden = rows.size > 0;
    askPresence();
    for (const conversation of conversations.slice(0, 200)) follow(conversation.id, { recountFirst: false });
    showMessage(pageMessage, "");
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

main();
