/**
 * One conversation, for any participant (a tenant with their manager, a manager with a tenant).
 *
 * Data: `GET /conversations/{id}` (participants and their read positions), history pages from
 * `GET /conversations/{id}/messages` (newest first time, older with `before` when the list is
 * scrolled to its top or "Load older messages" is pressed). Live: the socket topic
 * `chat:messages:{id}` (`chat.message`, `chat.edited`, `chat.deleted`, `chat.read`,
 * `chat.typing`, `presence`) and the commands `chat.send`, `chat.read`, `chat.typing`,
 * `presence.query`.
 *
 * What it guarantees:
 * - A message is shown once: stored messages are keyed by `id`; a message being sent is keyed by
 *   its `clientMessageId` until the `chat.send` reply or its own `chat.message` event (whichever
 *   comes first) replaces it by the stored message.
 * - A send shows "Sending…" until the server replied `ok` (stored). Not connected, dropped before
 *   the reply, or `unavailable`: it stays "Sending…" and is sent again after the reconnect (or
 *   shortly, for `unavailable`) with the SAME `clientMessageId`, so the server stores it once.
 *   The outbox is kept in sessionStorage too: a page reload sends what was still pending.
 *   A refused send (`bad_request`, `forbidden`, ...) shows "Not sent" with a Retry button.
 * - Reconnect: realtime.js resubscribes with `since`; recovered events go through the same
 *   id check (once each). `recovered: false` (or the first subscription) reloads the newest page
 *   and the read positions over HTTP (messages that arrived live meanwhile are kept, older ones
 *   are dropped: there may be a gap before the page). Presence is asked again after every
 *   (re)connect.
 * - Read receipts: the newest message of someone else that has been on screen while the page
 *   was visible is marked read (`chat.read`, only forward); my own messages show "Read" once
 *   another participant's read position reached them (`chat.read` events, `isRead`, the
 *   participants' `lastReadMessageId`).
 * - Typing: `chat.typing` at most every 3 s while typing; someone else's indicator is hidden 5 s
 *   after their last one, or when their message arrives.
 *
 * Message ids are MongoDB ObjectIds (24 lowercase hex digits): their string order is the order
 * the server stores them in (it pages and counts unread with `$gt` on them), so it orders the list.
 */
import { api, describeError, handleApiFailure, requireSession, showMessage, startPage } from "./app.js";

const PAGE = 30;
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
const UNAVAILABLE_RETRY_MS = 3000;
const RETRIED_AFTER = new Set(["disconnected", "unavailable", "rate_limited"]);

const session = requireSession();
const me = session.user.id;
const conversationId = document.getElementById("chat").dataset.conversationId;
const topic = `chat:messages:${conversationId}`;
const outboxKey = `pms.chat.outbox.${conversationId}`;

const scroller = document.getElementById("chat-scroll");
const log = document.getElementById("messages");
const olderButton = document.getElementById("older");
const typingLine = document.getElementById("typing");
const pageMessage = document.getElementById("page-message");
const form = document.getElementById("chat-form");
const input = document.getElementById("chat-input");
const title = document.getElementById("chat-title");
const people = document.getElementById("chat-people");

const stored = new Map(); // message id -> {message, element}
const pending = new Map(); // clientMessageId -> {text, element, inFlight, failed}
const participants = new Map(); // userId -> {name, lastRead}
const presence = new Map(); // userId -> status
const typingTimers = new Map(); // userId -> timeout
let hasMore = false;
let loadingOlder = false;
let myLastRead = null; // my read position (message id)
let seenNewest = null; // newest message of someone else that was on screen
let readInFlight = false;
let lastTypingSent = 0;

const newer = (a, b) => Boolean(a) && (!b || a > b); // is id `a` after `b` (ObjectId hex order, see above)

function nameOf(userId) {
  return participants.get(userId)?.name || "Someone";
}

// --- the outbox (what was sent but not yet confirmed stored) ---------------------------------

function saveOutbox() {
  const items = [...pending.entries()].map(([clientMessageId, item]) => ({ clientMessageId, text: item.text }));
  if (items.length) sessionStorage.setItem(outboxKey, JSON.stringify(items));
  else sessionStorage.removeItem(outboxKey);
}

function restoreOutbox() {
  let items = [];
  try {
    items = JSON.parse(sessionStorage.getItem(outboxKey)) || [];
  } catch {
    items = [];
  }
  for (const { clientMessageId, text } of items) queue(clientMessageId, text);
}

/** A new id for one message, reused on every retry of it. */
function newClientMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only (https, localhost)
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

// --- rendering -----------------------------------------------------------------------------

function timeOf(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  const sameDay = when.toDateString() === new Date().toDateString();
  return sameDay
    ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : when.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function bubble({ mine, who, text, createdAt, deleted }) {
  const item = document.createElement("li");
  item.className = `msg ${mine ? "mine" : "theirs"}`;
  const meta = document.createElement("p");
  meta.className = "msg-meta";
  const author = document.createElement("span");
  author.className = "msg-who";
  author.textContent = mine ? "You" : who;
  const time = document.createElement("time");
  if (createdAt) time.dateTime = createdAt;
  time.textContent = timeOf(createdAt);
  meta.append(author, " ", time);
  const body = document.createElement("p");
  body.className = deleted ? "msg-text deleted" : "msg-text";
  body.textContent = deleted ? "Message deleted" : text;
  item.append(meta, body);
  if (mine) {
    const status = document.createElement("p");
    status.className = "msg-status";
    item.append(status);
  }
  return item;
}

function setStatus(element, state, text) {
  const status = element.querySelector(".msg-status");
  if (!status) return;
  element.dataset.state = state;
  status.textContent = text;
}

/** Who read up to where: the newest read position among the others. */
function othersReadUpTo() {
  let upTo = null;
  for (const [userId, person] of participants) {
    if (userId !== me && newer(person.lastRead, upTo)) upTo = person.lastRead;
  }
  return upTo;
}

function receipt(entry) {
  if (entry.message.senderId !== me) return;
  const upTo = othersReadUpTo();
  const read = entry.message.isRead || (upTo && entry.message.id <= upTo);
  setStatus(entry.element, read ? "read" : "sent", read ? "Read" : "Sent");
}

function receipts() {
  for (const entry of stored.values()) receipt(entry);
}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

function toBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

/** Show a stored message (once: a known id is updated in place). */
function put(message) {
  const known = stored.get(message.id);
  const element = bubble({
    mine: message.senderId === me,
    who: nameOf(message.senderId),
    text: message.message ?? "",
    createdAt: message.createdAt,
    deleted: message.isDeleted,
  });
  element.dataset.id = message.id;
  if (message.clientMessageId) element.dataset.clientMessageId = message.clientMessageId;
  const entry = { message, element };
  if (known) {
    onScreen.unobserve(known.element);
    known.element.replaceWith(element);
  } else {
    // before the first stored message with a greater id, else before the pending ones
    let before = null;
    for (const other of log.children) {
      if (!other.dataset.id || other.dataset.id > message.id) {
        before = other;
        break;
      }
    }
    log.insertBefore(element, before);
  }
  stored.set(message.id, entry);
  receipt(entry);
  if (message.senderId !== me) watch(element);
  // This message may be one of mine still shown as pending (its event came before the reply).
  const waiting = message.clientMessageId && message.senderId === me && pending.get(message.clientMessageId);
  if (waiting) {
    waiting.element.remove();
    pending.delete(message.clientMessageId);
    saveOutbox();
  }
}

function landed(message) {
  const stick = nearBottom();
  put(message);
  if (stick || message.senderId === me) toBottom();
  markSeen();
}

// --- history -------------------------------------------------------------------------------

/** The newest page and the read positions over HTTP (first subscription, `recovered: false`). */
async function reload() {
  try {
    const [conversation, page] = await Promise.all([
      api(`/conversations/${conversationId}`),
      api(`/conversations/${conversationId}/messages?limit=${PAGE}`),
    ]);
    showPeople(conversation);
    // Older messages than the page may have a gap before it: they go (scrolling up loads them
    // again). Newer ones arrived live while the page was read: they stay.
    const oldest = page.messages[0]?.id;
    for (const [id, entry] of stored) {
      if (oldest && id < oldest) {
        onScreen.unobserve(entry.element);
        entry.element.remove();
        stored.delete(id);
      }
    }
    for (const message of page.messages) put(message);
    hasMore = page.hasMore;
    olderButton.hidden = !hasMore;
    log.setAttribute("aria-busy", "false"); // the history is in
    toBottom();
    showMessage(pageMessage, "");
    markSeen();
    askPresence();
  } catch (error) {
    if (error.status === 404) {
      showMessage(pageMessage, "This conversation does not exist or you are not in it.");
      form.hidden = true;
      return;
    }
    handleApiFailure(error, pageMessage);
  }
}

async function loadOlder() {
  if (loadingOlder || !hasMore) return;
  const oldest = [...stored.keys()].sort()[0];
  if (!oldest) return;
  loadingOlder = true;
  olderButton.disabled = true;
  try {
    const page = await api(`/conversations/${conversationId}/messages?limit=${PAGE}&before=${oldest}`);
    const height = scroller.scrollHeight;
    const top = scroller.scrollTop;
    for (const message of page.messages) put(message);
    scroller.scrollTop = top + (scroller.scrollHeight - height); // keep what was on screen in place
    hasMore = page.hasMore;
    olderButton.hidden = !hasMore;
  } catch (error) {
    handleApiFailure(error, pageMessage);
  } finally {
    loadingOlder = false;
    olderButton.disabled = false;
  }
}

olderButton.addEventListener("click", loadOlder);
scroller.addEventListener("scroll", () => {
  if (scroller.scrollTop < 40) loadOlder();
});

// --- people: names, read positions, presence -------------------------------------------------

function showPeople(conversation) {
  for (const person of conversation.participants) {
    const name = `${person.firstName} ${person.lastName}`.trim() || "Someone";
    const known = participants.get(person.userId);
    const lastRead = newer(known?.lastRead, person.lastReadMessageId) ? known.lastRead : person.lastReadMessageId;
    participants.set(person.userId, { name, lastRead, userType: person.userType });
  }
  if (participants.has(me)) myLastRead = newer(myLastRead, participants.get(me).lastRead) ? myLastRead : participants.get(me).lastRead;
  const others = conversation.participants.filter((person) => person.userId !== me);
  const names = others.map((person) => nameOf(person.userId)).join(", ") || "Only you";
  title.textContent = conversation.subject ? `${names} · ${conversation.subject}` : names;
  document.title = `${names} · Messages`;
  renderPeople();
  receipts();
}

const PRESENCE_TEXT = { online: "online", away: "away", offline: "offline" };

function renderPeople() {
  people.replaceChildren(
    ...[...participants.keys()]
      .filter((userId) => userId !== me)
      .map((userId) => {
        const status = presence.get(userId) || "offline";
        const item = document.createElement("li");
        item.className = "person";
        item.dataset.userId = userId;
        const dot = document.createElement("span");
        dot.className = "dot";
        dot.dataset.status = status;
        dot.setAttribute("aria-hidden", "true");
        item.append(dot, `${nameOf(userId)}: ${PRESENCE_TEXT[status] || status}`);
        return item;
      }),
  );
}

async function askPresence() {
  const others = [...participants.keys()].filter((userId) => userId !== me);
  if (!others.length) return;
  try {
    const answers = await client.command({ type: "presence.query", userIds: others });
    for (const userId of others) presence.set(userId, answers[userId]?.status || "offline");
    renderPeople();
  } catch {
    // not connected: asked again after the reconnect
  }
}

// --- reading ---------------------------------------------------------------------------------

const onScreen = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const id = entry.target.dataset.id;
      if (entry.isIntersecting && id && newer(id, seenNewest)) seenNewest = id;
    }
    markSeen();
  },
  { root: scroller, threshold: 0 },
);

function watch(element) {
  onScreen.observe(element);
}

/** Mark read up to the newest message of someone else seen on screen (forward only). */
async function markSeen() {
  if (document.visibilityState !== "visible" || readInFlight || !seenNewest || !newer(seenNewest, myLastRead)) return;
  if (client.state !== "connected") return; // done after the reconnect
  const target = seenNewest;
  readInFlight = true;
  try {
    await client.command({ type: "chat.read", conversationId, messageId: target });
    if (newer(target, myLastRead)) myLastRead = target;
  } catch (error) {
    if (!RETRIED_AFTER.has(error.code)) console.warn("chat.read failed", error);
  } finally {
    readInFlight = false;
  }
  if (newer(seenNewest, myLastRead)) markSeen(); // newer ones were seen meanwhile
}

document.addEventListener("visibilitychange", markSeen);

// --- typing ----------------------------------------------------------------------------------

function showTyping() {
  const names = [...typingTimers.keys()].map(nameOf);
  typingLine.textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}

function someoneTyping(userId) {
  clearTimeout(typingTimers.get(userId));
  typingTimers.set(
    userId,
    setTimeout(() => {
      typingTimers.delete(userId);
      showTyping();
    }, TYPING_SHOWN_MS),
  );
  showTyping();
}

function stoppedTyping(userId) {
  if (!typingTimers.has(userId)) return;
  clearTimeout(typingTimers.get(userId));
  typingTimers.delete(userId);
  showTyping();
}

input.addEventListener("input", () => {
  const now = Date.now();
  if (!input.value.trim() || now - lastTypingSent < TYPING_SEND_EVERY_MS || client.state !== "connected") return;
  lastTypingSent = now;
  client.command({ type: "chat.typing", conversationId }).catch(() => {}); // best effort, ephemeral
});

// --- sending ---------------------------------------------------------------------------------

function queue(clientMessageId, text) {
  const element = bubble({ mine: true, who: "You", text, createdAt: null });
  element.dataset.clientMessageId = clientMessageId;
  element.classList.add("pending");
  setStatus(element, "sending", "Sending…");
  log.append(element);
  const item = { text, element, inFlight: false, failed: false };
  pending.set(clientMessageId, item);
  saveOutbox();
  return item;
}

async function deliver(clientMessageId) {
  const item = pending.get(clientMessageId);
  if (!item || item.inFlight || item.failed) return;
  item.inFlight = true;
  let retryIn = null;
  try {
    const message = await client.command({ type: "chat.send", conversationId, message: item.text, clientMessageId });
    landed(message);
  } catch (error) {
    if (error.code === "unavailable") retryIn = UNAVAILABLE_RETRY_MS;
    else if (error.code === "rate_limited") retryIn = (error.retryAfter || 1) * 1000;
    else if (!RETRIED_AFTER.has(error.code)) failed(clientMessageId, item, error);
    // `disconnected`: still "Sending…"; sent again after the reconnect (onConnected)
  } finally {
    item.inFlight = false;
  }
  if (retryIn !== null) setTimeout(() => deliver(clientMessageId), retryIn);
}

function failed(clientMessageId, item, error) {
  item.failed = true;
  setStatus(item.element, "failed", `Not sent: ${describeError(error)} `);
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "link";
  retry.textContent = "Retry";
  retry.addEventListener("click", () => {
    item.failed = false;
    setStatus(item.element, "sending", "Sending…");
    deliver(clientMessageId);
  });
  item.element.querySelector(".msg-status").append(retry);
}

function deliverAll() {
  for (const clientMessageId of pending.keys()) deliver(clientMessageId);
}

form.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  const clientMessageId = newClientMessageId();
  queue(clientMessageId, text);
  input.value = "";
  lastTypingSent = 0;
  toBottom();
  deliver(clientMessageId);
  input.focus();
});

input.addEventListener("keydown", (pressed) => {
  // Enter sends, Shift+Enter starts a new line.
  if (pressed.key === "Enter" && !pressed.shiftKey && !pressed.isComposing) {
    pressed.preventDefault();
    form.requestSubmit();
  }
});

// --- live ------------------------------------------------------------------------------------

function onEvent(frame) {
  const data = frame.data || {};
  switch (frame.event) {
    case "chat.message":
    case "chat.edited":
      stoppedTyping(data.senderId);
      landed(data);
      return;
    case "chat.deleted": {
      const entry = stored.get(data.id);
      if (entry) put({ ...entry.message, isDeleted: true, message: null, deletedAt: data.deletedAt });
      return;
    }
    case "chat.read": {
      const person = participants.get(data.userId);
      if (person && newer(data.messageId, person.lastRead)) person.lastRead = data.messageId;
      if (data.userId === me && newer(data.messageId, myLastRead)) myLastRead = data.messageId;
      receipts();
      return;
    }
    case "chat.typing":
      if (data.userId !== me) someoneTyping(data.userId);
      return;
    case "presence":
      if (participants.has(data.userId) && data.userId !== me) {
        presence.set(data.userId, data.status);
        renderPeople();
      }
      return;
    default:
      return; // newer events: ignored
  }
}

const client = startPage(session, {
  onConnected: () => {
    askPresence();
    deliverAll();
    markSeen();
  },
  onUnsubscribed: (lost, reason) => {
    if (lost !== topic) return;
    if (reason === "rate_limited" || reason === "unavailable") {
      setTimeout(follow, 1000 + Math.random() * 2000); // again shortly; the reload fills any gap
      return;
    }
    showMessage(pageMessage, reason === "forbidden" ? "You are no longer in this conversation." : describeError({ code: reason }));
    form.hidden = true;
  },
});
function follow() {
  client.subscribe(topic, { onEvent, onReset: reload }).catch(() => {}); // a refusal is reported to onUnsubscribed
}

restoreOutbox();
follow();
